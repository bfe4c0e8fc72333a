"""Transaction flows through the pure machine: sale, refund, void, balance, cash, transfer,
limits, fees, PIN handling, card problems, host problems."""

from coredriver import (ATM_ONLY, DATE, EXPIRED, MC_CREDIT, TOKEN_UID, VISA, Driver, approved_sale, ev,
                      merchant, sale_to_pin)
from kapos.core import commands as C
from kapos.core import events as E
from kapos.core import states as S
from kapos.core.settings import Settings


def last_record(d):
    records = [c for c in d.all_commands if c.kind == C.RECORD]
    return records[-1]["record"]


def test_sale_with_pin_end_to_end():
    d = Driver()
    d.keys("1")
    assert d.state == S.AMOUNT
    d.keys("1235")
    assert d.ctx.txn.amount == 1235
    d.keys("ENTER")
    assert d.state == S.CARD
    d.swipe(VISA)
    assert d.state == S.ACCOUNT
    d.keys("1")
    assert d.state == S.PIN
    d.keys("1234")
    assert d.shown()["data"]["entered"] == 4
    d.keys("ENTER")
    assert d.state == S.SEALING
    seal = d.find(C.SEAL_PIN)[0]
    assert bytes(seal["pin"][:seal["length"]]) == b"1234"
    assert d.ctx.txn.pin is None, "the core drops its PIN buffer once handed over"
    d.sealed()
    request = d.authorize_command()["request"]
    assert request["amount"] == 1235 and request["type"] == "sale" and request["account"] == "debit"
    assert request["pin_block"] == b"\x11" * 16
    d.reply(True)
    assert d.state == S.RESULT
    record = last_record(d)
    assert record["outcome"] == "approved"
    assert record["card"] == "************1111"
    assert [c for c in d.commands if c.kind == C.PRINT][0]["record"] is record
    assert d.ctx.last_sale is record
    assert d.ctx.txn.card is None, "the card (clear PAN) is dropped after authorization"
    d.keys("ENTER")
    assert d.state == S.IDLE


def test_amount_correction_and_leading_zero():
    d = Driver().keys("1", "0", "0", "12", "CLEAR", "5")
    assert d.ctx.txn.amount == 15 and d.ctx.txn.digits == "15"
    d.keys("CLEAR", "CLEAR")
    assert d.ctx.txn.amount == 0
    d.keys("CLEAR")
    assert d.commands[0]["tone"] == "error"


def test_amount_digits_are_capped():
    d = Driver().keys("1", "9" * 9)
    d.keys("9")
    assert d.ctx.txn.digits == "9" * 9 and d.commands[0]["tone"] == "error"


def test_zero_amount_is_refused():
    d = Driver().keys("1", "ENTER")
    assert d.state == S.AMOUNT
    assert d.shown()["data"]["error"] == ("no_amount", 0)


def test_per_transaction_and_per_type_limits():
    settings = Settings(per_transaction=10000, per_type={"cash": 2000})
    d = Driver(settings).keys("1", "10001", "ENTER")
    assert d.state == S.AMOUNT and d.shown()["data"]["error"] == ("over_transaction_limit", 10000)
    d.keys("CLEAR", "ENTER")  # 1000.0 -> 10.00
    assert d.state == S.CARD
    d = Driver(settings).keys("5", "2001", "ENTER")
    assert d.state == S.AMOUNT and d.shown()["data"]["error"] == ("over_transaction_limit", 2000)


def test_daily_limit_accumulates_and_resets_next_day():
    settings = Settings(per_transaction=50000, daily=3000)
    d = Driver(settings)
    approved_sale(d, "2000").keys("ENTER")
    assert d.ctx.daily_total == 2000
    d.keys("1", "1001", "ENTER")
    assert d.state == S.AMOUNT and d.shown()["data"]["error"] == ("over_daily_limit", 1000)
    d.keys("CANCEL")
    d.keys("1", "1001")
    d.send(ev(E.KEY, key="ENTER").__class__(E.KEY, time=0.0, date="20261126", key="ENTER"))
    assert d.state == S.CARD, "a new day starts a new daily total"


def test_fee_by_account_debit_vs_credit():
    settings = Settings(fees={"debit": {"fixed": 25, "rate_bp": 0}, "credit": {"fixed": 0, "rate_bp": 150}})
    d = Driver(settings)
    sale_to_pin(d, "10000")
    assert d.ctx.txn.fee == 25 and d.shown()["data"]["total"] == 10025
    d = Driver(settings).keys("1", "10000", "ENTER").swipe(MC_CREDIT).keys("2")
    assert d.state == S.CONFIRM
    assert d.ctx.txn.fee == 150 and d.shown()["data"]["total"] == 10150


def test_fee_rounds_half_up():
    from kapos.core.money import fee_for

    s = Settings(fees={"credit": {"fixed": 0, "rate_bp": 150}})
    assert fee_for(s, "credit", 33) == 0  # 0.495 -> 0
    assert fee_for(s, "credit", 34) == 1  # 0.51 -> 1
    assert fee_for(s, "credit", 100) == 2  # 1.5 -> 2


def test_credit_without_pin_gets_a_signature_line():
    d = Driver().keys("1", "500", "ENTER").swipe(MC_CREDIT).keys("2", "ENTER")
    assert d.state == S.AUTHORIZING
    assert d.authorize_command()["request"]["pin_block"] is None
    d.reply(True)
    assert last_record(d)["signature"] is True


def test_debit_always_needs_pin():
    d = Driver().keys("1", "500", "ENTER").swipe(MC_CREDIT).keys("1")
    assert d.state == S.PIN


def test_refund_needs_no_pin_and_no_fee():
    settings = Settings(fees={"debit": {"fixed": 99, "rate_bp": 0}})
    d = merchant(Driver(settings).keys("2")).keys("700", "ENTER").swipe(VISA).keys("1")
    assert d.state == S.CONFIRM and d.ctx.txn.fee == 0


def test_balance_skips_amount_and_needs_pin():
    d = Driver().keys("4")
    assert d.state == S.CARD
    d.swipe(MC_CREDIT).keys("2")
    assert d.state == S.PIN
    d.keys("4321", "ENTER").sealed().reply(True, balance=4200)
    assert last_record(d)["balance"] == 4200


def test_cash_always_needs_pin_even_on_credit():
    d = Driver().keys("5", "1000", "ENTER").swipe(MC_CREDIT).keys("2")
    assert d.state == S.PIN


def test_transfer_asks_for_target_account():
    d = Driver().keys("6", "2500", "ENTER")
    assert d.state == S.TARGET
    d.keys("12", "ENTER")
    assert d.state == S.TARGET and d.shown()["data"]["error"] == "too_short"
    d.keys("345678", "ENTER")
    assert d.state == S.CARD
    d.swipe(VISA).keys("1", "1234", "ENTER").sealed()
    assert d.authorize_command()["request"]["target"] == "12345678"
    d.reply(True)
    assert last_record(d)["target"] == "****5678"


def test_void_last_sale_then_nothing_to_void():
    d = approved_sale(Driver(), "1500").keys("ENTER")
    assert d.ctx.daily_total == 1500
    d.keys("3")
    assert d.state == S.MERCHANT_PIN
    merchant(d)
    assert d.state == S.VOID_CONFIRM
    d.keys("ENTER")
    request = d.authorize_command()["request"]
    assert request["type"] == "void" and request["original"]["amount"] == 1500
    d.reply(True)
    assert d.ctx.last_sale is None and d.ctx.daily_total == 0
    d.keys("ENTER", "3")
    assert d.state == S.IDLE and d.ctx.notice == ("info", "Nothing to void")


def test_declined_sale_is_not_voidable_and_prints():
    d = Driver()
    sale_to_pin(d).keys("1234", "ENTER").sealed().reply(False, code="51")
    assert d.state == S.RESULT and d.find(C.PRINT)
    assert last_record(d)["outcome"] == "declined" and d.ctx.last_sale is None


def test_pin_clear_too_short_and_max_length():
    d = sale_to_pin(Driver()).keys("12", "CLEAR")
    assert d.ctx.txn.pin_len == 0 and bytes(d.ctx.txn.pin) == bytes(12)
    d.keys("123", "ENTER")
    assert d.state == S.PIN and d.shown()["data"]["error"] == "too_short"
    d.keys("CLEAR", "123456789012", "3")
    assert d.ctx.txn.pin_len == 12 and d.commands[0]["tone"] == "error"


def test_pin_cancel_wipes_buffer_and_counts():
    d = sale_to_pin(Driver()).keys("1234")
    buffer = d.ctx.txn.pin
    d.keys("CANCEL")
    assert d.state == S.IDLE and bytes(buffer) == bytes(len(buffer))
    assert d.ctx.counters["pin_cancels"] == 1 and d.ctx.last_result == "cancelled"


def test_pin_timeout_returns_to_idle():
    d = sale_to_pin(Driver()).keys("12")
    d.send(ev(E.TIMEOUT, timer="pin"))
    assert d.state == S.IDLE and d.ctx.notice == ("info", "PIN entry timed out")


def test_card_timeout_returns_to_idle():
    d = Driver().keys("1", "100", "ENTER")
    d.send(ev(E.TIMEOUT, timer="card"))
    assert d.state == S.IDLE and d.ctx.notice == ("info", "No card presented")


def test_malformed_track_on_the_last_try_shows_error_and_returns_to_idle():
    d = Driver(Settings(card_read_tries=1)).keys("1", "100", "ENTER")
    d.swipe("%B4111111111111111^BROKEN TRACK^30?;4111111111111111=30?")
    assert d.state == S.IDLE
    kind, message = d.ctx.notice
    assert kind == "error" and message.startswith("Card read error")
    assert "4111111111111111" not in message
    assert d.ctx.counters["read_errors"] == 1


def test_garbage_swipe_never_raises():
    for raw in ("", "???", "\x00\xff", ";=?", "%B^^?", ";" + "9" * 50 + "?"):
        d = Driver(Settings(card_read_tries=1)).keys("1", "100", "ENTER").swipe(raw)
        assert d.state == S.IDLE and d.ctx.notice[0] in ("error", "declined")


def test_expired_card_is_declined_locally():
    d = Driver().keys("1", "100", "ENTER").swipe(EXPIRED)
    assert d.state == S.IDLE and d.ctx.notice == ("declined", "Card expired")
    assert not d.find(C.AUTHORIZE)


def test_atm_only_card_allows_cash():
    d = Driver().keys("5", "100", "ENTER").swipe(ATM_ONLY)
    assert d.state == S.ACCOUNT


def test_unknown_brand_refused_unless_private_bin():
    from kapos import card as cards

    raw = cards.build_track2("9999990000000006", "3012", "101")
    d = Driver().keys("1", "100", "ENTER").swipe(raw)
    assert d.state == S.IDLE and d.ctx.notice == ("declined", "Card not accepted")
    d = Driver(Settings(private_bins=("999999",))).keys("1", "100", "ENTER").swipe(raw)
    assert d.state == S.ACCOUNT


def test_token_tap_skips_account_and_pin_for_sale():
    d = Driver().keys("1", "300", "ENTER").tap(TOKEN_UID)
    assert d.state == S.CONFIRM and d.ctx.txn.account == "prepaid"


def test_emv_tap_reads_track2_equivalent():
    d = Driver().keys("1", "300", "ENTER").tap(bytes.fromhex("08A1B2C3"), track2="4761739001010010=30122010000")
    assert d.state == S.ACCOUNT and d.ctx.txn.card.source == "tap"


def test_host_timeout_cancels_authorization():
    d = sale_to_pin(Driver()).keys("1234", "ENTER").sealed()
    ref = d.ctx.txn.ref
    d.send(ev(E.TIMEOUT, timer="host"))
    assert d.state == S.RESULT
    cancels = d.find(C.CANCEL_AUTHORIZATION)
    assert cancels and cancels[0]["ref"] == ref
    assert last_record(d)["outcome"] == "error" and not d.find(C.PRINT)


def test_late_reply_after_timeout_is_ignored():
    d = sale_to_pin(Driver()).keys("1234", "ENTER").sealed()
    ref = d.ctx.txn.ref
    d.send(ev(E.TIMEOUT, timer="host")).keys("ENTER")
    d.send(ev(E.HOST_REPLY, ref=ref, reply={"approved": True}))
    assert d.state == S.IDLE and d.commands == [] and d.ctx.last_sale is None


def test_host_error_is_an_error_result():
    d = sale_to_pin(Driver()).keys("1234", "ENTER").sealed()
    d.send(ev(E.HOST_ERROR, ref=d.ctx.txn.ref, reason="Host unavailable"))
    assert d.state == S.RESULT and last_record(d)["outcome"] == "error"


def test_hardware_error_while_authorizing_cancels_it():
    d = sale_to_pin(Driver()).keys("1234", "ENTER").sealed()
    d.send(ev(E.HARDWARE_ERROR, device="display", reason="i2c"))
    assert d.state == S.IDLE and d.find(C.CANCEL_AUTHORIZATION)


def test_print_failure_shows_warning():
    d = approved_sale(Driver())
    d.send(ev(E.PRINT_FAILED, reason="printer paper-out"))
    assert d.state == S.RESULT and "paper-out" in d.shown()["data"]["warning"]


def test_no_pin_digit_leaves_the_pin_buffer():
    """Nothing the core emits (screens, records, requests) carries PIN digits or the PAN,
    except the SEAL_PIN buffer and the Card object inside the request."""
    d = Driver()
    sale_to_pin(d).keys("9087", "ENTER").sealed(block=b"\xaa" * 16).reply(True)
    for command in d.all_commands:
        if command.kind in (C.SEAL_PIN, C.AUTHORIZE):
            continue
        text = repr(command.data)
        assert "9087" not in text
        assert "4111111111111111" not in text
    assert "4111111111111111" not in repr(d.find(C.RECORD)[0].data)


def test_event_and_command_reprs_hide_values():
    e = ev(E.SWIPE, raw=VISA)
    assert "4111" not in repr(e)
    assert repr(ev(E.KEY, key="7")) == "Event(key)"


def test_counters_track_outcomes():
    d = approved_sale(Driver()).keys("ENTER")
    d.keys("1", "CANCEL")
    assert d.ctx.counters["approved"] == 1 and d.ctx.counters["cancelled"] == 1


def test_idle_swipe_asks_for_a_transaction():
    d = Driver().swipe(VISA)
    assert d.state == S.IDLE and d.ctx.notice == ("info", "Choose a transaction first")


def test_date_is_used_for_expiry():
    d = Driver()
    d.keys("1", "100")
    d.send(ev(E.KEY, key="ENTER"))
    raw = VISA
    d.send(E.Event(E.SWIPE, time=0.0, date="20310101", raw=raw))
    assert d.ctx.notice == ("declined", "Card expired"), "3012 expiry is past in Jan 2031"
    assert DATE.startswith("2026")


def test_void_shows_and_records_the_total_with_the_fee():
    """A void gives back amount and fee: screen and receipt show what the ledger voids."""
    settings = Settings(fees={"debit": {"fixed": 0, "rate_bp": 200}, "credit": {"fixed": 0, "rate_bp": 0}})
    d = approved_sale(Driver(settings), "4000").keys("ENTER")
    sale = last_record(d)
    assert sale["fee"] > 0 and sale["total"] == 4000 + sale["fee"]
    d.keys("3")
    merchant(d)
    assert d.shown()["data"]["record"]["total"] == sale["total"]
    d.keys("ENTER").reply(True)
    voided = last_record(d)
    assert voided["type"] == "void" and voided["total"] == sale["total"]
    assert voided["fee"] == sale["fee"]


def test_pin_verified_only_when_the_host_verified_it():
    d = Driver()
    sale_to_pin(d).keys("1234", "ENTER").sealed().reply(False, code="55")
    assert last_record(d)["pin_verified"] is False  # a wrong PIN is not a verified one
    d = Driver()
    sale_to_pin(d).keys("1234", "ENTER").sealed().reply(True, pin_verified=True)
    assert last_record(d)["pin_verified"] is True


def test_receipt_record_carries_the_daily_amount_left():
    d = approved_sale(Driver(), "1500")
    assert last_record(d)["daily_left"] == d.ctx.settings.daily - 1500
