"""Cardholder choice on a tap: a multi-AID contactless card (ports/sim/cards/emv_debit_multi.py)
whose directory asks for confirmation, or lists applications of equal priority, gets the
same APP_CHOICE as an inserted card; otherwise the kernel takes the top priority itself."""

import asyncio

import pytest

from kapos.emv import apdu, kernel
from kapos.emv.terminal import TerminalConfig, Transaction
from kapos.errors import CardRejected
from kapos.ports.sim.cards.emv_debit_multi import GIROCARD, MAESTRO, VISA_DEBIT, debit_multi

from test_emv_terminal_tap import Running, _icc, _spy

PAN = "6799998900000060018"
TXN = Transaction("purchase", 780, "261201", "120000")


def _config():
    return TerminalConfig(random_bytes=lambda n: b"\x5a" * n, cvm_limit=100000)


def _card(priorities):
    card = debit_multi(PAN, "3012")
    for app, priority in zip(card.apps, priorities):
        app.priority = priority
    return card


def _tap(card, pick=None):
    asked = []

    def choose(candidates):
        asked.append([c.aid for c in candidates])
        return pick(candidates) if pick else None

    result = kernel.run(apdu.Channel(card.respond), _config(), TXN, contactless=True, choose=choose)
    return result, asked


def test_distinct_priorities_take_the_first_without_asking():
    result, asked = _tap(_card([1, 2, 3]))
    assert asked == [] and result.aid == GIROCARD


def test_confirmation_bit_asks_the_cardholder_and_the_pick_is_used():
    result, asked = _tap(_card([0x81, 2, 3]), pick=lambda c: c[2])
    assert asked == [[GIROCARD, MAESTRO, VISA_DEBIT]]
    assert result.aid == VISA_DEBIT and result.path == "qvsdc"


def test_equal_top_priorities_ask_the_cardholder():
    result, asked = _tap(_card([1, 1, 3]), pick=lambda c: c[1])
    assert asked == [[GIROCARD, MAESTRO, VISA_DEBIT]] and result.aid == MAESTRO


def test_no_pick_cancels_the_tap():
    with pytest.raises(CardRejected, match="Cancelled"):
        _tap(_card([0x81, 2, 3]))


SALE = "key 1\nkeys 780\nkey ENTER\n"


def test_terminal_tap_of_a_card_asking_confirmation_shows_the_choice_and_pays_with_the_pick():
    async def go():
        async with Running(board="sim-nfc") as r:
            seen = _spy(r)
            await r.play(SALE + 'tap emv-tap multi-confirm\nexpect screen "CHOOSE APPLICATION"\n'
                         'expect screen "1 girocard"\nexpect screen "3 VISA DEBIT"\nkey 3\n'
                         'expect screen "1 Debit"\nkey 1\nkeys 1234\nkey ENTER\nexpect result approved\n')
            assert r.terminal.chip.last.label == "VISA DEBIT"
            request = seen["requests"][-1]
            assert request[22] == "071" and _icc(request)[0x84] == VISA_DEBIT
            assert seen["replies"][-1][39] == "00"  # the host verified the ARQC

    asyncio.run(go())


def test_cancel_during_a_tap_choice_ends_the_sale_and_frees_the_reader():
    async def go():
        async with Running(board="sim-nfc") as r:
            seen = _spy(r)
            await r.play(SALE + 'tap emv-tap multi-confirm\nexpect screen "CHOOSE APPLICATION"\n'
                         'key CANCEL\nexpect result cancelled\nexpect state IDLE\n'
                         # the reader is free again: the next sale's tap reads
                         + SALE + 'tap emv-tap mchip\nexpect screen "1 Debit"\n')
            assert seen["requests"] == []

    asyncio.run(go())
