"""The runtime loop on the simulated board: faults in drivers, the printer, the host."""

import asyncio

from kapos.errors import HardwareError


def run(coro):
    return asyncio.run(coro)


def test_driver_exception_is_reported_and_terminal_returns_to_idle(running):
    async def go():
        async with running() as r:
            await r.play("key 1\nkeys 100\nkey ENTER\nexpect state CARD\n")
            r.platform.magstripe.inject(HardwareError("reader unplugged"))
            await r.play('expect screen "magstripe error"\nexpect state IDLE\n')
            # the reader task keeps going after the failure
            await r.play("key 1\nkeys 100\nkey ENTER\nswipe visa-debit\nexpect state ACCOUNT\n")

    run(go())


def test_unexpected_exception_type_from_a_driver_is_contained(running):
    async def go():
        async with running() as r:
            r.platform.nfc.inject(ZeroDivisionError("bug"))
            await r.play('expect screen "nfc error: ZeroDivisionError"\nexpect state IDLE\n')

    run(go())


def test_printer_out_of_paper_still_completes_and_warns(running):
    async def go():
        async with running() as r:
            r.platform.printer.paper_out = True
            await r.play("key 2\nkeys 5678\nkey ENTER\nkeys 100\nkey ENTER\nswipe visa-debit\nkey 1\nkey ENTER\n"
                         'expect result approved\nexpect screen "Receipt not printed"\nexpect receipts 0\n')
            assert r.terminal.receipts, "the receipt is kept for a reprint"

    run(go())


def test_display_failure_is_logged_once_and_the_loop_survives(running):
    async def go():
        async with running() as r:
            r.platform.display.fail = OSError("i2c write failed")
            await r.play("key 1\n")
            await asyncio.sleep(0.05)
            assert r.terminal.state == "IDLE"  # the hardware error sent it back
            assert r.terminal.ctx.notice == ("error", "display error: OSError: i2c write failed")
            assert r.terminal.ctx.counters["errors"] == 1, "reported once, not in a loop"
            r.platform.display.fail = None
            await r.play('key 1\nexpect screen "SALE"\n')

    run(go())


def test_host_unreachable_is_an_error_result(running):
    async def go():
        async with running() as r:
            r.assembly.authorizer.online = False
            await r.play("key 2\nkeys 5678\nkey ENTER\nkeys 100\nkey ENTER\nswipe visa-debit\nkey 1\nkey ENTER\n"
                         'expect result error\nexpect screen "Host unavailable"\n')
            assert r.assembly.authorizer.engine.ledger.transactions() == []  # nothing sent

    run(go())


def test_host_timeout_cancels_and_bank_undoes(running):
    async def go():
        async with running(overrides=[("timeouts.host", "0.2"), ("host.reply_delay", "0.5")]) as r:
            link = r.assembly.authorizer
            ledger = link.engine.ledger  # the reference host's, in process
            before = ledger.balance("4111111111111111")
            await r.play("key 1\nkeys 100\nkey ENTER\nswipe visa-debit\nkey 1\nkeys 1234\nkey ENTER\n"
                         'expect result error\nexpect screen "No reply from host"\n')
            # the late approval arrives after the terminal gave up: it is reversed
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while not ledger.reversals() and loop.time() < deadline:
                await asyncio.sleep(0.02)
            await link.wait_idle(5)
            (sale,) = ledger.transactions()
            assert sale["code"] == "00" and sale["status"] == "reversed"
            assert ledger.balance("4111111111111111") == before, "no money moved for a timed-out sale"
            assert ledger.check() == []

    run(go())


def test_frames_are_real_luma_images(running):
    async def go():
        async with running() as r:
            image = r.platform.display.image
            assert image.size == (128, 64)
            assert image.getbbox() is not None, "the idle screen drew pixels"
            first = image.copy()
            await r.play('key 1\nexpect screen "SALE"\n')
            assert r.platform.display.image.tobytes() != first.tobytes()

    run(go())


def test_printer_emits_escpos_bytes(running):
    async def go():
        async with running() as r:
            await r.play("key 2\nkeys 5678\nkey ENTER\nkeys 100\nkey ENTER\nswipe visa-debit\nkey 1\nkey ENTER\nexpect receipts 2\n")
            receipt, data = r.platform.printer.last()
            assert data.startswith(b"\x1b") and b"REFUND" in data
            assert b"\x1bE\x01" in data, "bold on (ESC E 1) for the title"
            assert b"************1111" in data and b"4111111111111111" not in data

    run(go())


def test_start_up_self_test_names_a_missing_printer_and_the_terminal_still_sells(running):
    async def go():
        r = running()
        r.platform.printer.paper_out = True
        async with r:
            await r.play('expect screen "Self-test: printer"\n')
            await r.play("key 1\nkeys 100\nkey ENTER\nswipe visa-debit\nkey 1\nkeys 1234\nkey ENTER\n"
                         'expect result approved\nexpect screen "Receipt not printed"\n')

    run(go())


def test_settlement_from_the_technician_menu_prints_its_result(running):
    async def go():
        async with running() as r:
            await r.play("key MENU\nkeys 0000\nkey ENTER\nkey MENU\nkey 5\n")
            await r.play('expect screen "TOTALS AGREED"\n')

    run(go())


def test_the_simulated_terminal_meets_the_real_bank_three_wrong_pins_lock_the_card(running):
    """One bank: the in-process host is the reference host's engine, so the PIN-try lock
    holds on the sim too (the old test double let a script guess PINs for ever)."""
    async def go():
        async with running() as r:
            wrong = ("key 1\nkeys 100\nkey ENTER\nswipe visa-debit\nkey 1\nkeys 9999\nkey ENTER\n"
                     "expect result declined\nkey ENTER\nexpect state IDLE\n")
            for _ in range(3):
                await r.play(wrong)
            await r.play("key 1\nkeys 100\nkey ENTER\nswipe visa-debit\nkey 1\nkeys 1234\nkey ENTER\n"
                         "expect result declined\n")
            ledger = r.assembly.authorizer.engine.ledger
            assert [t["code"] for t in ledger.transactions()] == ["55", "55", "75", "75"]
            assert ledger.balance("4111111111111111") == 100000

    run(go())


def test_a_tamper_alert_reaches_the_host_although_the_keys_are_erased(running):
    """The 0620 is built and MACed with the last key before the erase, so the host hears
    of the opened case (before, the alert found no keys and was never sent)."""
    async def go():
        async with running() as r:
            await r.play('tamper "case opened"\nexpect state LOCKED\n')
            ledger = r.assembly.authorizer.engine.ledger
            for _ in range(100):
                if ledger.alerts():
                    break
                await asyncio.sleep(0.02)
            assert [(a["rule"], a["detail"]) for a in ledger.alerts()] == [("tamper", "case opened")]
            assert not r.assembly.keystore.loaded

    run(go())
