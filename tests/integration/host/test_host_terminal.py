"""The whole terminal (sim board, core, runtime) authorizing through HostAuthorizer
against the reference host over TCP - the path `host.mode = "iso8583"` takes."""

import asyncio
import os

from hostkit import MERCHANT, TESTCARDS, agree, new_ledger, run
from kapos.harness import Harness
from kapos.io import journal as J
from kapos.io.host_link import HostAuthorizer
from kapos.io.journal import Journal
from kapos.io.transport import TcpTransport
from kapos_tools.host import HostServer


class Terminal:
    def __init__(self, directory, overrides=(), timeout=2.0):
        self.directory = str(directory)
        self.overrides = list(overrides)
        self.timeout = timeout

    async def __aenter__(self):
        self.ledger = new_ledger()
        self.server = HostServer(self.ledger)
        _, port = await self.server.start_tcp("127.0.0.1", 0)
        self.harness = Harness("sim", data_dir=os.path.join(self.directory, "var"), overrides=self.overrides,
                               default_timeout=5.0)
        settings = self.harness.assemble().settings
        self.journal = Journal(os.path.join(self.directory, "journal"))
        self.auth = HostAuthorizer(TcpTransport("127.0.0.1", port), self.journal,
                                   settings.terminal_id, settings.merchant_id or MERCHANT,
                                   timeout=self.timeout, retry_base=0.05, retry_max=0.2)
        self.harness.use_authorizer(self.auth)
        await self.harness.__aenter__()
        self.assembly = self.harness.assembly
        self.terminal = self.harness.terminal
        self.player = self.harness.player
        return self

    async def __aexit__(self, *exc):
        try:
            await self.harness.__aexit__(*exc)
        finally:
            await self.server.close()

    async def play(self, text):
        await self.harness.play(text)


SALE = """key 1
keys 1235
key ENTER
swipe visa-debit
key 1
keys 1234
key ENTER
expect screen "APPROVED"
expect result approved
expect receipt "Auth code"
key ENTER
expect state IDLE
"""


def test_sale_then_void_from_the_keypad(tmp_path):
    async def go():
        async with Terminal(tmp_path) as t:
            await t.play(SALE)
            assert t.ledger.balance(TESTCARDS["visa-debit"].pan) == 100000 - 1235
            await t.play('key 3\nkeys 5678\nkey ENTER\nexpect screen "VOID"\nkey ENTER\nexpect result approved\n'
                         'key ENTER\nexpect state IDLE\n')
            assert t.ledger.balance(TESTCARDS["visa-debit"].pan) == 100000
            await t.play('key 1\nkeys 500\nkey ENTER\nswipe visa-debit\nkey 1\nkeys 9999\n'
                         'key ENTER\nexpect result declined\nexpect screen "Incorrect PIN"\n')
            assert agree(t.journal, t.ledger, t.assembly.settings.terminal_id) == []
            # the technician functions that use the authorizer
            diagnostics = t.assembly.diagnostics
            title, lines = await diagnostics.run("settlement")
            assert title == "TOTALS AGREED", lines
            assert lines[0] == "Batch 000001" and any(l.startswith("Voids") for l in lines)
            assert all(len(line) <= 21 for line in lines)
            title, lines = await diagnostics.run("journal")
            assert lines[0] == "batch 000002"
            title, lines = await diagnostics.run("network")
            assert any("signed on yes" in line for line in lines)
            title, lines = await diagnostics.run("host_echo")
            assert title == "HOST ECHO OK"

    run(go())


def test_core_host_timeout_cancels_and_the_host_undoes(tmp_path):
    async def go():
        async with Terminal(tmp_path, overrides=[("timeouts.host", "0.3")], timeout=2.0) as t:
            t.server.response_delay = lambda message: 0.6 if message["mti"] == "0200" else 0
            await t.play('key 1\nkeys 100\nkey ENTER\nswipe visa-debit\nkey 1\nkeys 1234\n'
                         'key ENTER\nexpect result error\nexpect screen "No reply from host"\n')
            await asyncio.sleep(0.5)  # the host approves late; the terminal has cancelled
            await t.auth.wait_idle(5)
            row = t.journal.transactions()[-1]
            assert row["status"] == J.REVERSED
            assert t.ledger.balance(TESTCARDS["visa-debit"].pan) == 100000
            assert agree(t.journal, t.ledger, t.assembly.settings.terminal_id) == []

    run(go())
