"""Screens and receipts: what the core's data reads like, on the OLED and on paper."""

from escpos.printer import Dummy

from kapos.app.money import format_amount
from kapos.app.receipts import build_receipt, build_receipts, duplicate
from kapos.app.screens import WIDTH_CHARS, ScreenRenderer, wrap
from kapos.core.settings import Settings
from kapos.ports.shared import escpos_receipt, receipt_png

RECORD = {
    "ref": 7, "type": "sale", "outcome": "approved", "amount": 1235, "fee": 25, "total": 1260,
    "currency": "EUR", "account": "credit", "card": "************4444", "brand": "mastercard",
    "entry": "swipe", "target": None, "code": "00", "text": "Approved", "auth_code": "654321",
    "rrn": "000000000042", "stan": "000042", "balance": None, "pin_verified": False, "signature": True,
    "original_ref": None, "time": 1795000000.0, "date": "20261125",
    "terminal_id": "KAPOS001", "merchant_id": "KAPOS-MERCHANT1", "merchant_name": "Kapos test shop",
}


def test_format_amount():
    assert format_amount(1235) == "12.35"
    assert format_amount(5, 2, "EUR") == "EUR 0.05"
    assert format_amount(-100) == "-1.00"
    assert format_amount(1000, 0, "JPY") == "JPY 1000"
    assert format_amount(12345, 3) == "12.345"


def test_wrap_keeps_lines_within_the_display():
    lines = wrap("Card read error: track 2: LRC mismatch in a really long message")
    assert all(len(line) <= WIDTH_CHARS for line in lines)
    assert " ".join(lines) == "Card read error: track 2: LRC mismatch in a really long message"
    assert wrap("ab " + "x" * 30) == ["ab", "x" * 10 + ".." + "x" * 9]


def test_wrap_never_splits_a_word_a_long_one_is_shortened_with_a_marker():
    # a 24-digit KSN was shown as `...6500000` on one page and `00C` on the next
    lines = wrap("OK  keys: AES DUKPT ksn FFFF9876543210E00000000C, 3 keys")
    assert lines == ["OK keys: AES DUKPT", "ksn", "FFFF987654..0000000C,", "3 keys"]
    assert all(len(line) <= WIDTH_CHARS for line in lines)


def test_every_screen_fits_the_oled():
    r = ScreenRenderer(Settings())
    screens = [
        r.render("idle", {"menu": [("1", "Sale"), ("2", "Refund"), ("3", "Void")], "notice": None}),
        r.render("idle", {"notice": ("error", "Card read error: track 1: missing end sentinel"), "menu": []}),
        r.render("amount", {"type": "sale", "amount": 123456789, "limit": 50000, "error": None}),
        r.render("pin", {"type": "cash", "amount": 100, "fee": 5, "total": 105, "entered": 12}),
        r.render("result", {"record": RECORD}),
    ]
    for screen in screens:
        for line in [screen.title] + screen.lines + [screen.footer]:
            assert len(line) <= WIDTH_CHARS, line
        assert len(screen.lines) <= 4


def test_pin_screen_shows_only_stars():
    screen = ScreenRenderer(Settings()).render("pin", {"type": "sale", "amount": 1, "fee": 0, "total": 1, "entered": 3})
    assert "PIN: ***" in screen.text() and "PIN: ****" not in screen.text()


def test_receipt_text_has_what_a_cardholder_expects():
    customer, merchant = [r.text() for r in build_receipts(RECORD, Settings())]
    for text in (merchant, customer):
        for expected in ("Kapos test shop", "Terminal KAPOS001", "Ref 000007", "SALE", "************4444",
                         "EUR 12.35", "Fee", "EUR 0.25", "EUR 12.60", "APPROVED", "654321"):
            assert expected in text, expected
        assert all(len(line) <= 32 for line in text.splitlines())
    # the signature line only on the copy the merchant keeps
    assert "Cardholder signature" in merchant and "Merchant copy" in merchant
    assert "Cardholder signature" not in customer and "Customer copy" in customer


def test_pin_verified_only_when_the_host_said_so():
    assert "PIN VERIFIED" in build_receipt(dict(RECORD, pin_verified=True), Settings()).text()
    assert "PIN VERIFIED" not in build_receipt(dict(RECORD, pin_verified=False), Settings()).text()


def test_daily_amount_left_not_the_configured_limit():
    text = build_receipt(dict(RECORD, daily_left=187640), Settings(daily=200000)).text()
    assert "Daily left" in text and "1876.40" in text and "2000.00" not in text


def test_a_reprint_is_marked_duplicate():
    receipt = build_receipt(RECORD, Settings())
    again = duplicate(receipt).text()
    assert "DUPLICATE" not in receipt.text()
    assert again.startswith("*** DUPLICATE ***".center(32).rstrip()) and again.count("DUPLICATE") == 2


def test_declined_receipt_shows_response():
    record = dict(RECORD, outcome="declined", code="51", text="Insufficient funds", auth_code=None, signature=False)
    text = build_receipt(record, Settings()).text()
    assert "DECLINED" in text and "Insufficient funds" in text and "51" in text and "signature" not in text


def test_receipt_renders_to_escpos_and_png():
    receipt = build_receipt(RECORD, Settings(), "merchant")
    printer = Dummy(profile="POS-5890")
    escpos_receipt.print_receipt(printer, receipt)
    data = printer.output
    assert b"APPROVED" in data and b"\x1bE\x01" in data and b"\x1bE\x00" in data
    image = receipt_png.render(receipt)
    assert image.width == 400 and image.height > 600
    assert image.getextrema() == (0, 255)
