"""Card insert in the terminal (board sim-nfc's chip slot: emulated EMV cards with real keys,
contact interface): the kernel on a worker thread, the reference host's engine in process.
What the host saw is asserted on the 0200 it received."""

import asyncio
import os

from kapos.app import scenario as scenario_mod
from kapos.nfc import tlv

from test_emv_terminal_tap import SCENARIOS, Running, _spy

SALE = "key 1\nkeys 7800\nkey ENTER\n"


def _run(text, check=None, path=None):
    scenario = scenario_mod.load(path) if path else scenario_mod.parse(text)

    async def go():
        async with Running(overrides=scenario.config, board="sim-nfc", clock=scenario.clock) as r:
            seen = _spy(r)
            await r.player.play(scenario)
            if check is not None:
                check(r, seen)

    asyncio.run(go())


def test_insert_sale_with_pin_arpc_and_a_tc_from_the_second_generate_ac():
    def check(r, seen):
        request = seen["requests"][-1]
        assert request[22] == "051" and request[23] == "001"  # chip, PIN capable
        assert 0x9F26 in dict(tlv.parse(request[55])) and request.get(52)
        reply = seen["replies"][-1]
        assert reply[39] == "00" and 0x91 in dict(tlv.parse(reply[55]))
        app = r.platform.chip.insertions and r.terminal.contact.last
        assert app.path == "mchip" and app.data[0x9F27][0] & 0xC0 == 0x40  # TC
        assert r.terminal.records[-1]["entry"] == "chip"

    _run(None, check, os.path.join(SCENARIOS, "insert-emv.scenario"))


def test_swipe_of_a_chip_card_asks_for_the_chip():
    def check(r, seen):
        assert seen["requests"] == []

    _run(SALE + 'swipe emv-tap\nexpect screen "Chip card: insert card"\nexpect state CARD\n'
         'key CANCEL\nexpect result cancelled\n', check)


def test_fallback_after_a_chip_failure_is_marked_80_in_field_22():
    def check(r, seen):
        request = seen["requests"][-1]
        assert request[22] == "801" and 55 not in request
        assert seen["replies"][-1][39] == "00"

    _run(SALE + 'insert emv-tap mute\nexpect screen "Swipe card"\nremove\nswipe emv-tap\n'
         'expect screen "1 Debit"\nkey 1\nkeys 1234\nkey ENTER\nexpect result approved\n', check)


def test_card_pulled_early_cancels_cleanly():
    def check(r, seen):
        assert seen["requests"] == [] and r.terminal.state == "IDLE"

    _run(SALE + 'insert emv-tap mchip\nexpect screen "1 Debit"\nremove\nexpect result cancelled\n'
         'expect screen "Card removed"\n', check)


def test_cardholder_chooses_between_two_applications():
    def check(r, seen):
        assert r.terminal.contact.last.label == "VISA DEBIT"
        assert seen["replies"][-1][39] == "00"

    _run(SALE + 'insert emv-tap two-apps\nexpect screen "CHOOSE APPLICATION"\nexpect screen "1 Maestro"\n'
         'expect screen "2 VISA DEBIT"\nkey 2\nexpect screen "1 Debit"\nkey 1\nkeys 1234\nkey ENTER\n'
         'expect result approved\nremove\n', check)


def test_host_unreachable_the_card_gets_z3_and_the_sale_ends_in_error_without_a_reversal(monkeypatch):
    from kapos.emv import kernel

    second = []
    real = kernel.second_generate_ac

    def spy(channel, result, arc, issuer_auth):
        cid = real(channel, result, arc, issuer_auth)
        second.append((arc, issuer_auth, cid))
        return cid

    monkeypatch.setattr(kernel, "second_generate_ac", spy)

    async def go():
        async with Running(board="sim-nfc") as r:
            seen = _spy(r)
            r.terminal.authorizer.online = False  # the link is down: HostUnavailable
            await r.player.play(scenario_mod.parse(
                SALE + 'insert emv-tap mchip\nexpect screen "1 Debit"\nkey 1\nexpect screen "PIN:"\n'
                'keys 1234\nkey ENTER\nexpect result error\nexpect screen "Remove card"\nremove\n'))
            assert seen["requests"] == []  # nothing reached the host
            assert second == [(b"Z3", None, 0x00)]  # unable to go online: the card closes with an AAC
            assert r.terminal.records[-1]["outcome"] == "error"
            assert r.terminal.authorizer.journal.pending_count() == 0  # no reversal queued

    asyncio.run(go())
