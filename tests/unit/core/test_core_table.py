"""Every (state, event) pair of the transition table, driven through step()."""

import copy

import pytest

from coredriver import (ATM_ONLY, MC_CREDIT, VISA, Driver, approved_sale, chip_read, chip_result,
                      chip_sale, chip_settings, ev, key, merchant, sale_to_pin)
from kapos.core import commands as C
from kapos.core import events as E
from kapos.core import states as S
from kapos.core.table import IGNORE, REFUSE, TABLE


def reach(state):
    """A Driver brought into `state` by real events."""
    d = Driver()
    if state == S.IDLE:
        return d
    if state == S.AMOUNT:
        return d.keys("1", "12")
    if state == S.TARGET:
        return d.keys("6", "500", "ENTER")
    if state == S.VOID_CONFIRM:
        return merchant(approved_sale(d).keys("ENTER").keys("3"))
    if state == S.MERCHANT_PIN:
        return d.keys("2", "56")
    if state == S.CARD:
        return d.keys("1", "12", "ENTER")
    if state == S.ACCOUNT:
        return d.keys("1", "12", "ENTER").swipe(VISA)
    if state == S.PIN:
        return sale_to_pin(d).keys("12")
    if state == S.SEALING:
        return sale_to_pin(d).keys("1234", "ENTER")
    if state == S.CONFIRM:
        return d.keys("1", "12", "ENTER").swipe(MC_CREDIT).keys("2")
    if state == S.AUTHORIZING:
        return sale_to_pin(d).keys("1234", "ENTER").sealed()
    if state == S.RESULT:
        return sale_to_pin(d).keys("1234", "ENTER").sealed().reply(True)
    if state == S.TECH_PIN:
        return d.keys("MENU", "00")
    if state == S.TECH_MENU:
        return d.keys("MENU", "0000", "ENTER")
    if state == S.TECH_WAIT:
        return d.keys("MENU", "0000", "ENTER", "1")
    if state == S.TECH_INFO:
        return d.keys("MENU", "0000", "ENTER", "3")
    if state == S.KEY_TEST:
        return d.keys("MENU", "0000", "ENTER", "2", "7")
    if state == S.CARD_TEST:
        return d.keys("MENU", "0000", "ENTER", "5")
    if state == S.LOCKED:
        return d.send(ev(E.TAMPER, source="switch"))
    chip = Driver(chip_settings())
    if state == S.CHIP_READ:
        return chip_sale(chip)
    if state == S.APP_CHOICE:
        chip_sale(chip)
        return chip.send(ev(E.CHIP_CHOICE, ref=chip.ctx.txn.ref, names=["Maestro", "VISA DEBIT"]))
    if state == S.CHIP_COMPLETE:
        chip_read(chip_sale(chip)).keys("1", "1234", "ENTER").sealed()
        return chip.send(ev(E.HOST_REPLY, ref=chip.ctx.txn.ref, reply={"approved": True, "code": "00"}))
    raise AssertionError(state)


OWN_TIMER = {S.IDLE: "notice", S.MERCHANT_PIN: "input", S.AMOUNT: "input", S.TARGET: "input", S.VOID_CONFIRM: "input",
             S.CARD: "card", S.ACCOUNT: "input", S.PIN: "pin", S.SEALING: "pin", S.CONFIRM: "input",
             S.AUTHORIZING: "host", S.RESULT: "notice", S.TECH_PIN: "input", S.TECH_MENU: "input",
             S.TECH_WAIT: "host", S.TECH_INFO: "input", S.KEY_TEST: "input", S.CARD_TEST: "card",
             S.LOCKED: "notice", S.CHIP_READ: "card", S.APP_CHOICE: "input", S.CHIP_COMPLETE: "card"}


def sample_event(kind, d, state):
    ref = d.ctx.txn.ref if d.ctx.txn is not None else 0
    samples = {
        E.DIGIT: lambda: key("1"),
        E.ENTER: lambda: key("ENTER"),
        E.CLEAR: lambda: key("CLEAR"),
        E.CANCEL: lambda: key("CANCEL"),
        E.MENU: lambda: key("MENU"),
        E.SWIPE: lambda: ev(E.SWIPE, raw=VISA),
        E.TAP: lambda: ev(E.TAP, tap=__import__("kapos.hal", fromlist=["Tap"]).Tap(bytes.fromhex("04A2B3C4D5E6F7"))),
        E.PIN_SEALED: lambda: ev(E.PIN_SEALED, block=b"\x22" * 16, ksn=None),
        E.PIN_FAILED: lambda: ev(E.PIN_FAILED, reason="test"),
        E.HOST_REPLY: lambda: ev(E.HOST_REPLY, ref=ref, reply={"approved": True, "code": "00"}),
        E.HOST_ERROR: lambda: ev(E.HOST_ERROR, ref=ref, reason="down"),
        E.TIMEOUT: lambda: ev(E.TIMEOUT, timer=OWN_TIMER[state]),
        E.PRINTED: lambda: ev(E.PRINTED),
        E.PRINT_FAILED: lambda: ev(E.PRINT_FAILED, reason="paper-out"),
        E.HARDWARE_ERROR: lambda: ev(E.HARDWARE_ERROR, device="nfc", reason="gone"),
        E.DIAG_RESULT: lambda: ev(E.DIAG_RESULT, function=d.ctx.tech_function, title="T", lines=["x"]),
        E.TAMPER: lambda: ev(E.TAMPER, source="switch"),
        E.KEYS_LOADED: lambda: ev(E.KEYS_LOADED),
        E.INSERT: lambda: ev(E.INSERT),
        E.REMOVE: lambda: ev(E.REMOVE),
        E.CHIP_CHOICE: lambda: ev(E.CHIP_CHOICE, ref=ref, names=["A", "B"]),
        E.CHIP_READ: lambda: ev(E.CHIP_READ, ref=ref, result=chip_result()),
        E.CHIP_DONE: lambda: ev(E.CHIP_DONE, ref=ref, cid=0x40),
    }
    return samples[kind]()


def snapshot(ctx):
    """Everything observable in the context, for 'nothing changed' checks."""
    view = {k: v for k, v in vars(ctx).items() if k not in ("settings", "txn")}
    if ctx.txn is not None:
        txn = {k: v for k, v in vars(ctx.txn).items() if k != "card"}
        txn["pin"] = bytes(ctx.txn.pin) if ctx.txn.pin is not None else None
        txn["card"] = repr(ctx.txn.card)
        view["txn"] = txn
    return copy.deepcopy(view)


def test_table_covers_every_state_and_event():
    for state in S.ALL:
        assert state in TABLE, state
        missing = [k for k in E.TABLE_KINDS if k not in TABLE[state]]
        assert not missing, "%s lacks %s" % (state, missing)
        extra = [k for k in TABLE[state] if k not in E.TABLE_KINDS]
        assert not extra, "%s has unknown events %s" % (state, extra)


def test_table_targets_are_states():
    for state, row in TABLE.items():
        for kind, (handler, targets) in row.items():
            assert all(t in S.ALL for t in targets), (state, kind, targets)
            if handler is not None and (handler, targets) != REFUSE:
                assert targets, "%s/%s: a handler cell must list where it may go" % (state, kind)


@pytest.mark.parametrize("state", S.ALL)
def test_reach_helper_reaches_state(state):
    assert reach(state).state == state


@pytest.mark.parametrize("state,kind", [(s, k) for s in S.ALL for k in E.TABLE_KINDS])
def test_every_pair(state, kind):
    d = reach(state)
    before = snapshot(d.ctx)
    handler, targets = TABLE[state][kind]
    d.send(sample_event(kind, d, state))
    if (handler, targets) == IGNORE:
        assert d.state == state
        assert d.commands == []
        assert snapshot(d.ctx) == before, "an ignored event changed the context"
    elif (handler, targets) == REFUSE:
        assert d.state == state
        assert [c.kind for c in d.commands] == [C.BEEP]
        assert d.commands[0]["tone"] == "error"
        assert snapshot(d.ctx) == before, "a refused event changed the context"
    else:
        assert d.state == state or d.state in targets


def test_illegal_target_raises():
    from kapos.core import machine

    d = reach(S.AMOUNT)
    row = TABLE[S.AMOUNT]
    saved = row[E.MENU]
    row[E.MENU] = (lambda ctx, event: (S.RESULT, []), (S.IDLE,))
    try:
        with pytest.raises(machine.IllegalTransition):
            d.send(key("MENU"))
    finally:
        row[E.MENU] = saved


def test_key_event_with_unknown_name_is_ignored():
    d = reach(S.AMOUNT)
    before = snapshot(d.ctx)
    d.send(key("F13"))
    assert d.state == S.AMOUNT and d.commands == [] and snapshot(d.ctx) == before


def test_stale_timeout_of_other_timer_is_ignored():
    d = reach(S.PIN)
    d.send(ev(E.TIMEOUT, timer="card"))
    assert d.state == S.PIN and d.commands == []


def test_reply_for_another_ref_is_ignored():
    d = reach(S.AUTHORIZING)
    d.send(ev(E.HOST_REPLY, ref=d.ctx.txn.ref + 99, reply={"approved": True}))
    assert d.state == S.AUTHORIZING and d.commands == []


def test_atm_only_card_is_refused_for_a_sale():
    d = Driver().keys("1", "500", "ENTER").swipe(ATM_ONLY)
    assert d.state == S.IDLE
    assert d.ctx.notice[0] == "declined"
