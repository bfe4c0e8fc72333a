"""The merchant PIN before a refund and a void: asked first, digits only counted on screen,
the buffer wiped after every check, three wrong PINs cancel, guessing across transactions
raises an alarm; and the salted-hash verifier the runtime injects (app/merchantpin.py)."""

import pytest

from coredriver import MERCHANT_PIN, VISA, Driver, FakeMerchantPin, approved_sale, ev, merchant
from kapos.app import config as config_mod
from kapos.app.merchantpin import MerchantPinCheck, hash_pin, main
from kapos.app.screens import ScreenRenderer
from kapos.core import commands as C
from kapos.core import events as E
from kapos.core import states as S
from kapos.core.settings import Settings
from kapos.errors import ConfigError


def shown_data(d):
    return d.shown()["data"]


def test_refund_asks_for_the_merchant_pin_first_and_shows_only_stars():
    d = Driver().keys("2")
    assert d.state == S.MERCHANT_PIN and d.shown()["screen"] == "merchant_pin"
    d.keys("567")
    assert shown_data(d)["entered"] == 3
    screen = ScreenRenderer(Settings()).render("merchant_pin", shown_data(d))
    assert "***" in screen.text() and "567" not in screen.text()
    d.keys("8", "ENTER")
    assert d.state == S.AMOUNT and d.ctx.txn.type == "refund"
    d.keys("700", "ENTER").swipe(VISA).keys("1", "ENTER")
    assert d.authorize_command()["request"]["type"] == "refund"


def test_void_asks_for_the_merchant_pin_only_when_there_is_a_sale():
    d = Driver().keys("3")
    assert d.state == S.IDLE and d.ctx.notice == ("info", "Nothing to void")
    d = approved_sale(Driver()).keys("ENTER", "3")
    assert d.state == S.MERCHANT_PIN
    merchant(d)
    assert d.state == S.VOID_CONFIRM and d.shown()["screen"] == "void_confirm"


def test_a_sale_needs_no_merchant_pin():
    assert Driver().keys("1").state == S.AMOUNT


def test_a_wrong_pin_stays_with_tries_left_and_the_buffer_is_wiped():
    check = FakeMerchantPin()
    d = Driver(Settings(merchant_pin_check=check)).keys("2", "1111", "ENTER")
    assert d.state == S.MERCHANT_PIN
    assert shown_data(d)["error"] == "wrong" and shown_data(d)["tries_left"] == 2
    assert d.ctx.txn.merchant_pin_len == 0
    assert check.seen and all(bytes(b) == bytes(len(b)) for b in check.seen), "digits left in memory"
    screen = ScreenRenderer(Settings()).render("merchant_pin", shown_data(d))
    assert "Wrong PIN, 2 left" in screen.text()
    merchant(d)
    assert d.state == S.AMOUNT
    assert all(bytes(b) == bytes(len(b)) for b in check.seen)


def test_three_wrong_pins_cancel_back_to_idle_with_a_clear_screen():
    d = Driver().keys("2")
    for _ in range(3):
        d.keys("1111", "ENTER")
    assert d.state == S.IDLE and d.ctx.txn is None
    assert d.ctx.notice == ("error", "Wrong merchant PIN 3 times: Refund cancelled")
    assert d.ctx.counters["merchant_pin_failures"] == 3 and d.ctx.counters["cancelled"] == 1
    assert d.ctx.last_result == "cancelled"
    screen = ScreenRenderer(Settings()).render("idle", shown_data(d))
    assert screen.title == "ERROR" and "Wrong merchant PIN" in screen.text()
    assert not [c for c in d.all_commands if c.kind == C.AUTHORIZE]
    # the next refund starts again with three tries
    d.keys("CANCEL", "2", "1111", "ENTER")
    assert d.state == S.MERCHANT_PIN and shown_data(d)["tries_left"] == 2


def test_a_too_short_pin_is_not_checked_and_costs_no_try():
    check = FakeMerchantPin()
    d = Driver(Settings(merchant_pin_check=check)).keys("2", "56", "ENTER")
    assert d.state == S.MERCHANT_PIN and shown_data(d)["error"] == "too_short"
    assert check.seen == [] and d.ctx.txn.merchant_pin_tries == 0
    d.keys("CLEAR")
    assert d.ctx.txn.merchant_pin_len == 0 and bytes(d.ctx.txn.merchant_pin) == bytes(8)


def test_the_entry_is_at_most_eight_digits():
    d = Driver().keys("2", "12345678")
    d.keys("9")
    assert [c.kind for c in d.commands] == [C.BEEP] and d.ctx.txn.merchant_pin_len == 8


@pytest.mark.parametrize("leave", ["cancel", "timeout", "tamper", "hardware"])
def test_leaving_the_entry_wipes_the_digits(leave):
    d = Driver().keys("2", "567")
    buffer = d.ctx.txn.merchant_pin
    event = {"cancel": ev(E.KEY, key="CANCEL"), "timeout": ev(E.TIMEOUT, timer="input"),
             "tamper": ev(E.TAMPER, source="switch"),
             "hardware": ev(E.HARDWARE_ERROR, device="keypad", reason="gone")}[leave]
    d.send(event)
    assert d.state in (S.IDLE, S.LOCKED)
    assert bytes(buffer) == bytes(len(buffer))


def test_no_verifier_configured_refuses_refunds_and_voids():
    d = Driver()
    d.ctx.settings.merchant_pin_check = None
    d.keys("2")
    assert d.state == S.IDLE and "security.merchant_pin_hash" in d.ctx.notice[1]
    assert d.ctx.txn is None


def test_a_failing_verifier_is_an_error_without_its_message():
    class Broken:
        def verify(self, buffer, length):
            raise RuntimeError("secret 5678 inside")

    d = Driver(Settings(merchant_pin_check=Broken())).keys("2")
    buffer = d.ctx.txn.merchant_pin
    d.keys("5678", "ENTER")
    assert d.state == S.IDLE and d.ctx.notice == ("error", "Merchant PIN check failed")
    assert bytes(buffer) == bytes(len(buffer))


def test_the_digits_never_leave_the_entry_buffer():
    d = Driver(Settings(merchant_pin_check=FakeMerchantPin("97531"))).keys("2", "9753", "CLEAR", "97531", "ENTER")
    assert d.state == S.AMOUNT
    text = " ".join(repr(c) + repr(c.data) for c in d.all_commands)
    assert "97531" not in text and "9753" not in text
    assert "97531" not in repr(vars(d.ctx)) and "97531" not in repr(vars(d.ctx.txn))


def test_guessing_across_transactions_raises_an_alarm():
    d = Driver(Settings(monitor={"merchant_pin": {"count": 4, "window": 600}}))
    d.keys("2", "1111", "ENTER", "1111", "ENTER", "1111", "ENTER")
    assert not [c for c in d.all_commands if c.kind == C.ALERT]
    d.keys("CANCEL", "2", "1111", "ENTER")
    alerts = [c for c in d.all_commands if c.kind == C.ALERT]
    assert [a["rule"] for a in alerts] == ["merchant_pin"]
    assert d.ctx.notice[0] == "alarm"


# ---------------------------------------------------------------- the salted-hash verifier

def verify(check, digits):
    return check.verify(bytearray(digits.encode()), len(digits))


def test_hash_and_verify_with_a_salt():
    encoded = hash_pin("2468", iterations=1000)
    check = MerchantPinCheck(encoded)
    assert verify(check, "2468") and not verify(check, "2469") and not verify(check, "24680")
    assert "2468" not in encoded and hash_pin("2468", iterations=1000) != encoded  # salted
    assert "2468" not in repr(check) and encoded.split("$")[3] not in repr(check)
    assert not check.verify(bytearray(b"2468"), 2)


@pytest.mark.parametrize("bad", ["", "5678", "md5$1000$00$00", "pbkdf2-sha256$x$00$00",
                                 "pbkdf2-sha256$1000$zz$" + "00" * 32, "pbkdf2-sha256$10$" + "00" * 16 + "$" + "00" * 32,
                                 "pbkdf2-sha256$1000$" + "00" * 16 + "$" + "00" * 8])
def test_a_malformed_hash_is_a_config_error_naming_the_key(bad):
    with pytest.raises(ConfigError, match="security.merchant_pin_hash"):
        MerchantPinCheck(bad)


def test_hash_pin_refuses_what_is_not_a_merchant_pin():
    for bad in ("123", "123456789", "12a4"):
        with pytest.raises(ConfigError, match="4 to 8 digits"):
            hash_pin(bad, iterations=1000)


def test_the_default_config_holds_only_the_hash_of_the_test_pin():
    config = config_mod.load()
    assert MERCHANT_PIN not in config["security"]["merchant_pin_hash"]
    check = config_mod.settings_from(config).merchant_pin_check
    assert verify(check, MERCHANT_PIN) and not verify(check, "0000")


def test_config_turns_it_off_or_refuses_a_bad_hash():
    off = config_mod.load(overrides=[("security.merchant_pin_hash", '""')])
    assert config_mod.settings_from(off).merchant_pin_check is None
    with pytest.raises(ConfigError, match="security.merchant_pin_hash"):
        config_mod.load(overrides=[("security.merchant_pin_hash", '"plain1234"')])


def test_the_hash_command_asks_twice_and_prints_no_pin():
    out = []
    answers = iter(["86420", "86420"])
    assert main(ask=lambda prompt: next(answers), out=out.append) == 0
    assert "86420" not in out[0] and out[0].startswith("[security]\nmerchant_pin_hash = \"pbkdf2-sha256$")
    value = out[0].split('"')[1]
    assert verify(MerchantPinCheck(value), "86420")
    answers = iter(["1234", "1235"])
    assert main(ask=lambda prompt: next(answers), out=out.append) == 1 and "differ" in out[-1]
