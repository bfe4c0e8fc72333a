"""A malformed swipe or tap keeps the transaction: the cardholder tries again, up to
settings.card_read_tries reads in all (issue 17)."""

from coredriver import VISA, Driver
from kapos.core import commands as C
from kapos.core import states as S
from kapos.core.settings import Settings

BROKEN = "%B4111111111111111^BROKEN TRACK^30?;4111111111111111=30?"


def test_a_malformed_swipe_asks_again_in_the_same_sale_and_a_good_one_goes_on():
    d = Driver().keys("1", "500", "ENTER")
    ref = d.ctx.txn.ref
    d.swipe(BROKEN)
    assert d.state == S.CARD and d.ctx.txn.ref == ref and d.ctx.txn.amount == 500
    shown = d.shown()
    assert shown["screen"] == "card" and shown["data"]["error"].startswith("Card read error")
    assert "4111111111111111" not in shown["data"]["error"]
    assert [c["timer"] for c in d.find(C.START_TIMER)] == ["card"]  # a fresh wait for the next swipe
    d.swipe(VISA)
    assert d.state == S.ACCOUNT and d.ctx.txn.ref == ref
    assert d.ctx.counters["read_errors"] == 1 and d.ctx.counters["errors"] == 0


def test_the_last_allowed_malformed_read_ends_the_sale_with_the_error():
    d = Driver(Settings(card_read_tries=2)).keys("1", "500", "ENTER")
    d.swipe(BROKEN)
    assert d.state == S.CARD
    d.swipe(BROKEN)
    assert d.state == S.IDLE and d.ctx.txn is None
    kind, message = d.ctx.notice
    assert kind == "error" and message.startswith("Card read error")
    assert d.ctx.counters["read_errors"] == 2 and d.ctx.counters["errors"] == 1


def test_a_malformed_tap_is_also_tried_again():
    d = Driver().keys("1", "500", "ENTER")
    d.tap(track2="4111111111111111=30?")  # no valid track 2 equivalent
    assert d.state == S.CARD and d.shown()["data"]["error"].startswith("Card read error")


def test_the_tries_count_per_transaction_not_per_terminal():
    d = Driver(Settings(card_read_tries=2)).keys("1", "500", "ENTER").swipe(BROKEN).keys("CANCEL")
    assert d.state == S.IDLE
    d.keys("1", "500", "ENTER").swipe(BROKEN)
    assert d.state == S.CARD  # a new sale starts with all its tries
