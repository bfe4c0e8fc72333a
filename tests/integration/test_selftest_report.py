"""The start-up self-test's result reaches the host (48 ST of an 0800, docs/protocol.md
section 3), so the dashboard's terminals view shows a terminal whose printer is out."""

import asyncio

from kapos.host import private48
from kapos_tools.host.server import HostServer
from terminalrig import Running


def spy_on_reports(monkeypatch):
    seen = []  # ST of every 0800 the in-process reference host checked
    check = HostServer._terminal_status

    def spy(server, message):
        if message.get(48):
            seen.append(private48.parse(message).get(private48.SELFTEST))
        return check(server, message)

    monkeypatch.setattr(HostServer, "_terminal_status", spy)
    return seen


async def reported(seen, limit=10.0):
    """Wait (bounded) for a report other than N (not run yet)."""
    deadline = asyncio.get_running_loop().time() + limit
    while not any(st and st != "N" for st in seen):
        assert asyncio.get_running_loop().time() < deadline, "no self-test report: %r" % seen
        await asyncio.sleep(0.02)
    return [st for st in seen if st and st != "N"][-1]


def test_a_healthy_start_reports_passed(monkeypatch):
    seen = spy_on_reports(monkeypatch)

    async def go():
        async with Running():
            return await reported(seen)

    assert asyncio.run(go()) == "P"


def test_a_failed_check_is_named_in_the_report(monkeypatch):
    seen = spy_on_reports(monkeypatch)

    async def go():
        r = Running()
        printer = r.platform.get("printer")
        monkeypatch.setattr(printer, "selftest", lambda: (False, "out of paper"))
        async with r:
            return await reported(seen)

    assert asyncio.run(go()) == "F:printer"
