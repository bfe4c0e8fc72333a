"""A terminal with a primary and a secondary host (kapos.io.failover): two host servers
over one ledger, as two `kapos host` processes on one PostgreSQL database are (the
ledger is what they share; test_host_multi_process runs real processes)."""

import os

import pytest

from hostkit import agree, new_ledger, request, run, swipe
from kapos.errors import HostUnavailable
from kapos.io.failover import FailoverTransport
from kapos.io.host_link import HostAuthorizer
from kapos.io.journal import Journal
from kapos.io.transport import TcpTransport
from kapos_tools.host import HostServer

TID, MID = "KAPOS001", "KAPOS-MERCHANT1"


def closed_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once it is closed


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class TwoHosts:
    def __init__(self, directory, primary_up=True, failback_after=60.0, timeout=0.5):
        self.directory = str(directory)
        self.ledger = new_ledger()
        self.primary_up = primary_up
        self.failback_after = failback_after
        self.timeout = timeout
        self.clock = Clock()

    async def __aenter__(self):
        self.servers = [HostServer(self.ledger), HostServer(self.ledger)]
        ports = []
        for i, server in enumerate(self.servers):
            if i == 0 and not self.primary_up:
                ports.append(closed_port())
            else:
                ports.append((await server.start_tcp("127.0.0.1", 0))[1])
        self.ports = ports
        self.transport = FailoverTransport(
            TcpTransport("127.0.0.1", ports[0], connect_timeout=0.5),
            TcpTransport("127.0.0.1", ports[1], connect_timeout=0.5),
            failback_after=self.failback_after, clock=self.clock)
        self.journal = Journal(os.path.join(self.directory, "journal"))
        self.auth = HostAuthorizer(self.transport, self.journal, TID, MID, timeout=self.timeout,
                                   retry_base=0.02, retry_max=0.1)
        await self.auth.start()
        return self

    async def __aexit__(self, *exc):
        await self.auth.aclose()
        for server in self.servers:
            await server.close()

    def answered(self, i):
        return self.servers[i].stats["responses"]

    def check(self):
        journal = Journal(os.path.join(self.directory, "journal"))
        try:
            return agree(journal, self.ledger, TID)
        finally:
            journal.close()


def test_a_primary_that_refuses_connections_sends_the_sale_to_the_secondary(tmp_path):
    async def go():
        async with TwoHosts(tmp_path, primary_up=False) as h:
            reply = await h.auth.authorize(request(1, "sale", 1500, swipe("visa-debit")))
            assert reply["approved"]
            assert h.transport.active == 1 and h.answered(1) >= 1
            await h.auth.wait_idle(10)
        assert h.check() == []
        assert [t["total"] for t in h.ledger.transactions() if t["status"] == "approved"] == [1500]

    run(go())


def test_a_primary_that_applied_it_and_went_silent_gets_its_reversal_once_from_the_secondary(tmp_path):
    async def go():
        async with TwoHosts(tmp_path) as h:
            h.servers[0].response_delay = lambda message: 2.0 if message.get("mti") == "0200" else None
            with pytest.raises(HostUnavailable):  # applied there, never answered
                await h.auth.authorize(request(1, "sale", 800, swipe("visa-debit")))
            assert [t["status"] for t in h.ledger.transactions()] == ["approved"]
            assert h.transport.active == 1  # the next message goes to the secondary
            await h.auth.wait_idle(10)  # the reversal of the sale the primary applied
            again = await h.auth.authorize(request(2, "sale", 900, swipe("visa-debit")))
            assert again["approved"]
        reversals = h.ledger.reversals()
        assert len(reversals) == 1 and reversals[0]["applied"] == 1  # undone exactly once
        assert h.check() == []

    run(go())


def test_the_terminal_fails_back_to_the_primary_after_failback_after(tmp_path):
    async def go():
        async with TwoHosts(tmp_path, failback_after=30.0) as h:
            h.transport._switch(1, "test: the primary was down")
            before = h.answered(0)  # the sign-on
            await h.auth.authorize(request(1, "sale", 100, swipe("visa-debit")))
            assert h.transport.active == 1 and h.answered(0) == before
            h.clock.now += 29
            await h.auth.authorize(request(2, "sale", 200, swipe("visa-debit")))
            assert h.transport.active == 1 and h.answered(0) == before
            h.clock.now += 2
            await h.auth.authorize(request(3, "sale", 300, swipe("visa-debit")))
            assert h.transport.active == 0 and h.answered(0) == before + 1
            await h.auth.wait_idle(10)
        assert h.check() == []

    run(go())
