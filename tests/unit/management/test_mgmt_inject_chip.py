"""`inject` insert / remove: a test card into the chip slot over the management channel
(board sim-nfc's simulated slot), the same as the scenario step `insert ID [PROFILE]`.
Bad input gets a clear error and leaves the slot as it was."""

import asyncio

import pytest


def run(coro):
    return asyncio.run(coro)


async def until(h, what, condition, timeout=10.0):
    """Wait for the terminal to report a change (its observers) until `condition()` holds."""
    changed = asyncio.Event()

    def observe(kind, payload):
        changed.set()

    h.terminal.observers.append(observe)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while not condition():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError("%s: not within %.0f s (state %s, screen %r)"
                                     % (what, timeout, h.terminal.state, h.terminal.screen and h.terminal.screen.text()))
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass
    finally:
        h.terminal.observers.remove(observe)


def screen_has(h, text):
    return lambda: h.terminal.screen is not None and text in " ".join(h.terminal.screen.text().split())


def test_a_sale_by_insert_over_the_channel(mgmt):
    async def go():
        async with mgmt(board="sim-nfc") as h:
            hello = await h.ok({"cmd": "hello"})
            assert {"insert", "remove"} <= set(hello["injectable"])
            for key in ["1", "7", "8", "0", "0", "ENTER"]:
                await h.ok({"cmd": "inject", "key": key})
            await until(h, "card prompt", screen_has(h, "Insert, swipe or tap card"))
            reply = await h.ok({"cmd": "inject", "insert": "emv-tap", "profile": "mchip"})
            assert reply["injected"] == "insert" and reply["handled"] is True
            assert h.platform.get("chip").card is not None
            await until(h, "account choice", screen_has(h, "1 Debit"))
            assert "MASTERCARD" in h.terminal.screen.text()
            await h.ok({"cmd": "inject", "key": "1"})
            await until(h, "PIN prompt", screen_has(h, "PIN:"))
            for key in ["1", "2", "3", "4", "ENTER"]:
                await h.ok({"cmd": "inject", "key": key})
            await until(h, "approval", lambda: h.server.results_total == 1)
            assert list(h.server.results) == ["approved"]
            await until(h, "remove card", screen_has(h, "Remove card"))
            assert "CHIP" in h.terminal.receipts[-1][1].text()
            reply = await h.ok({"cmd": "inject", "remove": True})
            assert reply["injected"] == "remove" and reply["handled"] is True
            assert h.platform.get("chip").card is None
            await until(h, "idle without the notice",
                        lambda: h.terminal.state == "IDLE" and not screen_has(h, "Remove card")())
            # an empty slot: nothing comes out, said at once, still ok
            reply = await h.ok({"cmd": "inject", "remove": True})
            assert reply["handled"] is False and reply["state"] == "IDLE"

    run(go())


@pytest.mark.parametrize("request_fields, message", [
    ({"insert": "no-such-card"}, "unknown test card 'no-such-card'"),
    ({"insert": "token"}, "test card 'token' has no chip"),
    ({"insert": "emv-tap", "profile": "gold-plated"}, "no EMV card profile 'gold-plated'"),
    ({"insert": ""}, "insert needs a test card id"),
    ({"insert": 7}, "insert needs a test card id"),
    ({"insert": "emv-tap", "profile": 3}, "\"profile\" must be a non-empty string"),
    ({"remove": "yes"}, "inject remove needs \"remove\": true"),
    ({"tap": "emv-tap", "profile": "mchip"}, "\"profile\" goes with insert only"),
    ({"insert": "emv-tap", "remove": True}, "inject needs exactly one of"),
])
def test_bad_inserts_get_clear_errors_and_leave_the_inserted_card_in(mgmt, request_fields, message):
    async def go():
        async with mgmt(board="sim-nfc") as h:
            await h.ok({"cmd": "inject", "insert": "emv-tap", "profile": "mchip"})
            slot = h.platform.get("chip")
            card, insertions, handled = slot.card, slot.insertions, h.terminal.events_handled
            error = await h.error(dict({"cmd": "inject"}, **request_fields))
            assert message in error
            assert slot.card is card and card.inserted and slot.insertions == insertions
            assert h.terminal.events_handled == handled
            assert (await h.ok({"cmd": "status"}))["state"] == "IDLE"  # the loop is fine

    run(go())


def test_a_board_without_a_slot_says_so_and_offers_no_insert(mgmt):
    async def go():
        async with mgmt(board="sim") as h:
            assert h.platform.get("chip") is None
            hello = await h.ok({"cmd": "hello"})
            assert "insert" not in hello["injectable"] and "key" in hello["injectable"]
            for fields in ({"insert": "emv-tap"}, {"remove": True}):
                error = await h.error(dict({"cmd": "inject"}, **fields))
                assert "board sim has no chip slot" in error
            assert (await h.ok({"cmd": "status"}))["state"] == "IDLE"

    run(go())


def test_a_real_chip_reader_cannot_take_an_injected_card(mgmt):
    class RealReader:  # what ports/linux/pcsc.py's reader looks like here: no inject()
        card = None

    async def go():
        async with mgmt(board="sim") as h:
            h.platform.devices["chip"] = RealReader()
            try:
                assert "insert" not in (await h.ok({"cmd": "hello"}))["injectable"]
                error = await h.error({"cmd": "inject", "insert": "emv-tap"})
                assert "chip reader is a real one: insert and remove the card by hand" in error
            finally:
                del h.platform.devices["chip"]

    run(go())


def test_outside_test_mode_nothing_is_injectable(mgmt):
    async def go():
        async with mgmt(board="sim-nfc", test_mode=False) as h:
            assert (await h.ok({"cmd": "hello"}))["injectable"] == []
            error = await h.error({"cmd": "inject", "insert": "emv-tap"})
            assert "only available in test mode" in error
            assert h.platform.get("chip").card is None

    run(go())
