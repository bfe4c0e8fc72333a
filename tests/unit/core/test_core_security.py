"""Tamper lock and anomaly alarms in the core."""

from coredriver import VISA, Driver, approved_sale, ev, sale_to_pin
from kapos.core import commands as C
from kapos.core import events as E
from kapos.core import states as S
from kapos.core.settings import Settings


def kinds(d):
    return [c.kind for c in d.commands]


def test_tamper_erases_keys_alerts_and_locks_until_rekeyed():
    d = sale_to_pin(Driver()).keys("12")
    buffer = d.ctx.txn.pin
    d.send(ev(E.TAMPER, source="enclosure opened"))
    assert d.state == S.LOCKED
    assert C.ZEROIZE in kinds(d) and C.ALERT in kinds(d)
    assert kinds(d).index(C.ALERT) < kinds(d).index(C.ZEROIZE), "alert MACed before the erase"
    assert bytes(buffer) == bytes(len(buffer)), "PIN digits wiped"
    for k in ("1", "ENTER", "CANCEL", "MENU"):
        d.keys(k)
        assert d.state == S.LOCKED
    d.swipe(VISA)
    assert d.state == S.LOCKED
    d.send(ev(E.KEYS_LOADED))
    assert d.state == S.IDLE and d.ctx.notice[0] == "info"


def test_tamper_during_authorization_cancels_it():
    d = sale_to_pin(Driver()).keys("1234", "ENTER").sealed()
    ref = d.ctx.txn.ref
    d.send(ev(E.TAMPER, source="x"))
    cancels = d.find(C.CANCEL_AUTHORIZATION)
    assert cancels and cancels[0]["ref"] == ref and cancels[0]["reason"] == "tamper"


def test_tamper_before_sending_needs_no_cancel():
    d = sale_to_pin(Driver()).keys("12")
    d.send(ev(E.TAMPER, source="x"))
    assert not d.find(C.CANCEL_AUTHORIZATION)


def swipe_bad(d, t):
    d.keys("1", "100", "ENTER")
    d.send(E.Event(E.SWIPE, time=t, date="20261125", raw="%B12^X^?"))


def test_repeated_read_failures_raise_an_alarm():
    d = Driver()
    swipe_bad(d, 1000.0)
    swipe_bad(d, 1010.0)
    assert not d.find(C.ALERT)
    swipe_bad(d, 1020.0)
    alerts = d.find(C.ALERT)
    assert alerts and alerts[0]["rule"] == "read_error"
    assert d.ctx.notice == ("alarm", "ALARM: Repeated card read failures")
    assert d.shown()["data"]["notice"][0] == "alarm"


def test_failures_outside_the_window_do_not_add_up():
    d = Driver()
    for t in (1000.0, 1070.0, 1140.0):
        swipe_bad(d, t)
    assert not d.find(C.ALERT)


def test_repeated_pin_cancels_raise_an_alarm():
    d = Driver()
    for i in range(3):
        sale_to_pin(d).keys("1")
        d.send(E.Event(E.KEY, time=2000.0 + i, date="20261125", key="CANCEL"))
    assert d.find(C.ALERT)[0]["rule"] == "pin_cancel"


def test_rapid_transactions_alarm_after_the_result():
    d = Driver(Settings(monitor={"rapid_txn": {"count": 2, "window": 60}}))
    approved_sale(d).keys("ENTER")
    assert not [c for c in d.all_commands if c.kind == C.ALERT]
    approved_sale(d)
    assert d.state == S.RESULT and d.find(C.ALERT)[0]["rule"] == "rapid_txn"
    d.keys("ENTER")
    assert d.ctx.notice[0] == "alarm", "the alarm shows once the result is dismissed"
