"""kapos.harness: the one way a terminal is started (CLI, console, diag, HIL, tests) -
the scenario clock holds on both sides, a fresh data directory leaves nothing behind, a
terminal that cannot start says why, and the CLI's run ends with its UI or a restart."""

import argparse
import asyncio
import calendar
import os
import time

import pytest

from kapos.errors import KaposError, StartupError
from kapos.harness import Harness
from kapos.wiring import Assembly

SALE = ("key 1\nkeys 1235\nkey ENTER\nswipe visa-debit\nkey 1\nkeys 1234\nkey ENTER\n"
        "expect result approved\nkey ENTER\nexpect state IDLE\n")


def test_a_fresh_data_directory_holds_the_run_and_is_removed_when_it_stops():
    async def go():
        async with Harness(overrides=[("host.reply_delay", "0")]) as h:
            await h.play(SALE)
            data_dir = h.data_dir
            assert sorted(os.listdir(data_dir))  # keys, journal and the in-process host's ledger
            return data_dir

    data_dir = asyncio.run(go())
    assert not os.path.exists(data_dir)


def test_the_scenario_clock_holds_for_the_receipt_the_cards_and_the_host():
    """Ten years ahead: the test cards' expiry follows the simulated clock, the receipt
    and the in-process host's ledger carry its date."""
    when = "2036-03-04T10:15:00"

    async def go():
        async with Harness(overrides=[("host.reply_delay", "0")], clock=when) as h:
            await h.play(SALE)
            receipt = h.terminal.receipts[-1][1].text()
            created = h.assembly.authorizer.engine.ledger.transactions()[-1]["created"]
            return receipt, created

    receipt, created = asyncio.run(go())
    assert "2036-03-04" in receipt
    start = calendar.timegm(time.strptime(when, "%Y-%m-%dT%H:%M:%S"))
    assert start <= created < start + 3600


def _start_with(start, error, match, ready_timeout=None):
    """Enter a harness whose host link starts with `start`: the error it must raise; returns
    the data directory it had."""
    async def go():
        h = Harness(overrides=[("host.reply_delay", "0")], ready_timeout=ready_timeout)
        h.assemble().authorizer.start = start
        with pytest.raises(error, match=match):
            async with h:
                raise AssertionError("never ready")
        return h.data_dir

    return asyncio.run(go())


def test_a_terminal_that_cannot_start_says_why_and_leaves_nothing_behind():
    async def refuse():
        raise KaposError("the host link refused to start")

    assert not os.path.exists(_start_with(refuse, KaposError, "refused to start"))


def test_a_start_that_never_gets_ready_is_cancelled_after_ready_timeout():
    cancelled = []

    async def hang():
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    assert not os.path.exists(_start_with(hang, StartupError, "not ready", ready_timeout=0.2))
    assert cancelled == [True]


def test_an_assembly_with_fresh_storage_removes_it_on_close():
    assembly = Assembly("sim", fresh_storage=True)
    data_dir = assembly.config["storage"]["data_dir"]
    assert os.path.isdir(data_dir)
    assembly.close()
    assert not os.path.exists(data_dir)


def _args():
    return argparse.Namespace(manage=None, manage_serial=None)


def test_the_cli_run_stops_the_terminal_when_its_ui_ends():
    from kapos.cli import run_with_management

    async def go():
        h = Harness(overrides=[("host.reply_delay", "0")])
        assembly = h.assemble()
        idle = asyncio.Event()
        assembly.terminal.observers.append(lambda kind, payload: idle.set() if kind == "screen" else None)

        async def ui():  # the console: the user quits once the terminal shows its screen
            await idle.wait()

        try:
            await asyncio.wait_for(run_with_management(assembly, _args(), main=ui()), 30)
            await asyncio.wait_for(assembly.terminal.stopped(), 5)  # the loop has ended
        finally:
            h.close()

    asyncio.run(go())


def test_the_cli_run_ends_when_the_terminal_asks_for_a_restart():
    from kapos.cli import run_with_management

    async def go():
        h = Harness(overrides=[("host.reply_delay", "0")])
        assembly = h.assemble()
        terminal = assembly.terminal
        terminal.observers.append(
            lambda kind, payload: terminal.request_restart("new release") if kind == "screen" else None)
        try:
            await asyncio.wait_for(run_with_management(assembly, _args()), 30)
        finally:
            h.close()
        return terminal.restart_requested

    assert asyncio.run(go()) == "new release"
