"""Card insert in the core: insert-first, fallback to the stripe, the second GENERATE AC's
answer, the card pulled early, the cardholder's application choice (no runtime: events in,
commands out)."""

from coredriver import MC_CREDIT, VISA, Driver, chip_read, chip_result, chip_sale, chip_settings, ev
from kapos.core import commands as C
from kapos.core import events as E
from kapos.core import states as S
from kapos.errors import CardReadError, CardRejected


def chip_driver():
    return Driver(chip_settings())


def test_card_screen_asks_to_insert_where_the_board_has_a_chip_reader():
    d = chip_driver().keys("1", "500", "ENTER")
    assert d.shown()["data"]["chip"] is True
    assert Driver().keys("1", "500", "ENTER").shown()["data"]["chip"] is False


def test_swipe_of_a_chip_card_asks_for_the_chip():
    d = chip_driver().keys("1", "500", "ENTER").swipe(MC_CREDIT)  # service code 201
    assert d.state == S.CARD and d.find(C.AUTHORIZE) == []
    assert d.shown()["data"]["error"] == "Chip card: insert card"
    assert d.ctx.txn.card is None and d.ctx.txn.read_failures == 0


def test_swipe_of_a_stripe_only_card_is_read_as_before():
    d = chip_driver().keys("1", "500", "ENTER").swipe(VISA)  # service code 101
    assert d.state == S.ACCOUNT and d.ctx.txn.card.chip_entry is None


def test_after_a_chip_failure_the_swipe_is_a_marked_fallback():
    d = chip_sale(chip_driver())
    assert d.state == S.CHIP_READ and d.find(C.READ_CHIP)[0]["amount"] == 7800
    chip_read(d, error=CardReadError("EMV: the card has no application this terminal supports"))
    assert d.state == S.CARD and d.shown()["data"]["fallback"] is True
    d.send(ev(E.REMOVE)).swipe(MC_CREDIT)
    assert d.state == S.ACCOUNT
    assert d.ctx.txn.card.chip_entry == "fallback" and d.ctx.txn.card.icc_for_host() is None


def test_card_declined_by_the_chip_is_not_offered_the_stripe():
    d = chip_read(chip_sale(chip_driver()), error=CardRejected("Declined by the card"))
    assert d.state == S.IDLE and d.ctx.last_result == "declined"


def _to_complete(d, completion=True):
    chip_read(chip_sale(d), chip_result(completion))
    assert d.state == S.ACCOUNT and d.ctx.txn.chip
    d.keys("1")
    assert d.state == S.PIN  # the kernel's CVM: online PIN
    d.keys("1234", "ENTER").sealed()
    assert d.state == S.AUTHORIZING
    request = d.find(C.AUTHORIZE)[0]["request"]
    assert request["card"].chip_entry == "chip" and request["card"].icc_for_host()
    return d


def test_host_approval_goes_to_the_card_and_a_tc_approves():
    d = _to_complete(chip_driver())
    d.reply(True, icc=b"\x91\x0a" + bytes(10))
    assert d.state == S.CHIP_COMPLETE
    complete = d.find(C.COMPLETE_CHIP)[0]
    assert complete["code"] == "00" and complete["icc"] == b"\x91\x0a" + bytes(10)
    d.send(ev(E.CHIP_DONE, ref=d.ctx.txn.ref, cid=0x40))
    assert d.state == S.RESULT and d.ctx.last_result == "approved"
    assert d.shown()["data"]["remove"] is True  # "Remove card"
    assert d.find(C.CANCEL_AUTHORIZATION) == []
    d.send(ev(E.REMOVE))
    assert d.state == S.IDLE and d.ctx.notice is None


def test_an_aac_after_host_approval_declines_and_reverses():
    d = _to_complete(chip_driver()).reply(True)
    d.send(ev(E.CHIP_DONE, ref=d.ctx.txn.ref, cid=0x00))
    assert d.state == S.RESULT and d.ctx.last_result == "declined"
    assert d.find(C.CANCEL_AUTHORIZATION)[0]["reason"] == "card declined"


def test_card_pulled_during_the_second_generate_ac_reverses():
    d = _to_complete(chip_driver()).reply(True)
    d.send(ev(E.REMOVE))
    assert d.state == S.CHIP_COMPLETE
    d.send(ev(E.CHIP_DONE, ref=d.ctx.txn.ref, error=CardReadError("chip: the card was removed")))
    assert d.ctx.last_result == "error" and d.find(C.CANCEL_AUTHORIZATION)
    assert d.ctx.last_record["outcome"] == "error"


def test_card_pulled_while_waiting_for_the_host_cancels_and_reverses():
    d = _to_complete(chip_driver())
    d.send(ev(E.REMOVE))
    assert d.state == S.IDLE and d.ctx.last_result == "cancelled"
    assert d.find(C.CANCEL_AUTHORIZATION)[0]["reason"] == "card removed"


def test_card_pulled_before_the_host_was_asked_just_cancels():
    d = chip_read(chip_sale(chip_driver()), chip_result())
    d.send(ev(E.REMOVE))
    assert d.state == S.IDLE and d.find(C.CANCEL_AUTHORIZATION) == []
    assert d.find(C.END_CHIP) and d.ctx.notice[1] == "Card removed: cancelled"
    d = chip_sale(chip_driver()).send(ev(E.REMOVE))  # during the chip read
    assert d.state == S.IDLE and d.ctx.last_result == "cancelled"


def test_a_late_kernel_answer_after_removal_is_ignored():
    d = chip_sale(chip_driver())
    ref = d.ctx.txn.ref
    d.send(ev(E.REMOVE)).send(ev(E.CHIP_READ, ref=ref, result=chip_result()))
    assert d.state == S.IDLE and d.commands == []


def test_a_host_decline_needs_no_tc():
    d = _to_complete(chip_driver()).reply(False)
    assert d.state == S.CHIP_COMPLETE
    d.send(ev(E.CHIP_DONE, ref=d.ctx.txn.ref, cid=0x00))
    assert d.ctx.last_result == "declined" and d.find(C.CANCEL_AUTHORIZATION) == []


def test_card_inserted_before_the_sale_is_read_when_the_card_is_asked_for():
    d = chip_driver().send(ev(E.INSERT))
    assert d.state == S.IDLE and d.ctx.card_inserted
    d.keys("1", "500", "ENTER")
    assert d.state == S.CHIP_READ and d.find(C.READ_CHIP)


def test_cardholder_picks_the_application():
    d = chip_sale(chip_driver())
    ref = d.ctx.txn.ref
    d.send(ev(E.CHIP_CHOICE, ref=ref, names=["Maestro", "VISA DEBIT"]))
    assert d.state == S.APP_CHOICE and d.shown()["data"]["names"] == ["Maestro", "VISA DEBIT"]
    d.keys("3")  # not offered
    assert d.state == S.APP_CHOICE and d.commands[0].kind == C.BEEP
    d.keys("2")
    assert d.state == S.CHIP_READ and d.find(C.CHOOSE_APP)[0]["index"] == 1


def test_cancel_during_the_choice_tells_the_kernel():
    d = chip_sale(chip_driver())
    d.send(ev(E.CHIP_CHOICE, ref=d.ctx.txn.ref, names=["A", "B"])).keys("CANCEL")
    assert d.state == S.IDLE and d.find(C.END_CHIP)
