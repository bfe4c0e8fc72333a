import asyncio
import contextlib
import json

import pytest

from kapos.app.management import ManagementServer
from kapos.harness import Harness as TerminalHarness

HARNESS_TOKEN = "harness-t0ken"


class Harness:
    """A sim terminal (kapos.harness) running in the current loop with a ManagementServer on it."""

    def __init__(self, assembly, server):
        self.assembly = assembly
        self.server = server
        self.terminal = assembly.terminal
        self.platform = assembly.platform

    async def send(self, request, session=None):
        line = request if isinstance(request, (str, bytes)) else json.dumps(request)
        return await self.server.handle_line(line, session)

    async def ok(self, request, session=None):
        reply = await self.send(request, session)
        assert reply["ok"] is True, reply
        return reply

    async def error(self, request, session=None):
        reply = await self.send(request, session)
        assert reply["ok"] is False, reply
        assert isinstance(reply["error"], str) and reply["error"]
        return reply["error"]

    async def sale(self, card="visa-debit", amount="100", pin="1234"):
        """A debit sale with PIN through `inject`, to the approved result."""
        for key in "1" + amount:
            await self.ok({"cmd": "inject", "key": key})
        await self.ok({"cmd": "inject", "key": "ENTER"})
        await self.ok({"cmd": "inject", "swipe": card})
        await self.ok({"cmd": "inject", "key": "1"})
        for key in pin:
            await self.ok({"cmd": "inject", "key": key})
        await self.ok({"cmd": "inject", "key": "ENTER"})
        for _ in range(200):
            if self.terminal.records and self.terminal.receipts and self.server.receipts_total:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the sale did not finish: %s" % self.terminal.status())


@contextlib.asynccontextmanager
async def running(token=None, test_mode=True, board="sim", log_buffer=None, **server_options):
    """Without `token` the harness uses its own and authenticates the direct session
    (handle_line without a session), as an in-process harness does; with one, nothing
    is authenticated yet."""
    async with TerminalHarness(board, overrides=[("host.reply_delay", "0")]) as terminal:
        assembly = terminal.assembly
        server = ManagementServer(assembly.terminal, assembly.diagnostics, assembly.testcards,
                                  token=token or HARNESS_TOKEN, test_mode=test_mode, log_buffer=log_buffer,
                                  **server_options)
        try:
            if token is None:
                reply = await server.handle_line(json.dumps({"cmd": "auth", "token": HARNESS_TOKEN}))
                assert reply["ok"], reply
            yield Harness(assembly, server)
        finally:
            await server.close()


@pytest.fixture
def mgmt():
    """`async with mgmt(token=..., test_mode=...) as h:` a running sim terminal + server."""
    return running
