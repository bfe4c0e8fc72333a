"""An inserted card whose sale could not reach the host: the second GENERATE AC says so
(8A = "Z3", unable to go online, EMV Book 4) and the sale ends in error, whatever the card
answers -- kapos is online only (floor limit 0), a TC never approves without the host."""

from coredriver import ev
from kapos.core import commands as C
from kapos.core import events as E
from kapos.core import states as S

from test_core_chip import _to_complete, chip_driver


def test_host_unavailable_asks_the_card_with_z3_and_an_offline_tc_does_not_approve():
    d = _to_complete(chip_driver())
    d.send(ev(E.HOST_ERROR, ref=d.ctx.txn.ref, reason="Host unavailable"))
    assert d.state == S.CHIP_COMPLETE
    complete = d.find(C.COMPLETE_CHIP)[0]
    assert complete["code"] == "Z3" and complete["icc"] is None
    d.send(ev(E.CHIP_DONE, ref=d.ctx.txn.ref, cid=0x40))  # the card would accept offline
    assert d.state == S.RESULT and d.ctx.last_result == "error"
    assert d.ctx.last_record["outcome"] == "error" and not d.ctx.last_record.get("auth_code")
    assert d.find(C.CANCEL_AUTHORIZATION) == []  # nothing reached the host: nothing to reverse


def test_no_reply_in_time_keeps_its_one_reversal_and_the_aac_adds_none():
    d = _to_complete(chip_driver())
    d.send(ev(E.TIMEOUT, timer="host"))
    assert d.state == S.CHIP_COMPLETE and d.find(C.COMPLETE_CHIP)[0]["code"] == "Z3"
    cancels = d.find(C.CANCEL_AUTHORIZATION)
    assert [c["reason"] for c in cancels] == ["timeout"]  # the request may have arrived
    d.send(ev(E.CHIP_DONE, ref=d.ctx.txn.ref, cid=0x00))
    assert d.ctx.last_result == "error" and d.find(C.CANCEL_AUTHORIZATION) == []


def test_a_card_pulled_during_the_z3_generate_ac_is_an_error_too():
    d = _to_complete(chip_driver())
    d.send(ev(E.HOST_ERROR, ref=d.ctx.txn.ref, reason="Host unavailable"))
    d.send(ev(E.TIMEOUT, timer="card"))
    assert d.state == S.RESULT and d.ctx.last_result == "error" and d.find(C.CANCEL_AUTHORIZATION) == []
