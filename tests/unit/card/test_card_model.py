"""The Card model: validation, masking, the clear-PAN accessors, expiry, tap and tokens."""

import pytest

from kapos.card import Card, card_from_track2, token_card, ServiceCode, check_expiry, luhn_check_digit
from kapos.errors import CardReadError, CardRejected

PAN = "4111111111111111"


def make(**kw):
    args = dict(pan=PAN, expiry="2712", service_code="201", name="DOE/JOHN")
    args.update(kw)
    return Card(args.pop("pan"), args.pop("expiry"), **args)


def test_attributes():
    card = make()
    assert card.brand == "visa"
    assert card.expiry == "2712"
    assert card.service_code == ServiceCode("201")
    assert card.name == "DOE/JOHN"
    assert card.source == "swipe"
    assert card.uid is None
    assert card.masked() == "************1111"
    assert card.short_masked() == "**** 1111"
    assert card.last4 == "1111"
    assert card.pan_for_host() == PAN
    assert card.track2_for_host() is None
    assert card.token_id() is None


@pytest.mark.parametrize("pan", ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"])
def test_repr_and_str_show_only_masked_pan_and_brand(pan):
    card = make(pan=pan)
    for text in (repr(card), str(card), "%s" % card, "%r" % [card]):
        assert pan not in text
        assert pan[:6] not in text
        assert card.masked() in text and card.brand in text
        assert "DOE" not in text


def test_wipe_drops_clear_data_keeps_display():
    card = Card(PAN, "2712", "201", track2=PAN + "=27122010000")
    card.wipe()
    assert card.pan_for_host() is None and card.track2_for_host() is None
    assert card.masked() == "************1111" and card.last4 == "1111"


@pytest.mark.parametrize(
    "expiry, now, expired",
    [
        ("2712", "2711", False),
        ("2712", "2712", False),  # valid through the end of the expiry month
        ("2712", "2801", True),
        ("2701", "2612", False),
        ("2701", "2702", True),
    ],
)
def test_is_expired(expiry, now, expired):
    assert make(expiry=expiry).is_expired(now) is expired


@pytest.mark.parametrize("now", ["271", "2713", "2700", "27-1", 2712, None])
def test_is_expired_rejects_bad_now(now):
    with pytest.raises(ValueError):
        make().is_expired(now)


@pytest.mark.parametrize("expiry, msg", [("2713", "month out of range"), ("2700", "month out of range"),
                                         ("27", "not YYMM"), ("27AB", "not YYMM"), (None, "not YYMM")])
def test_bad_expiry(expiry, msg):
    with pytest.raises(CardReadError, match=msg):
        make(expiry=expiry)
    with pytest.raises(CardReadError, match=msg):
        check_expiry(expiry)


def test_pan_validation():
    with pytest.raises(CardReadError, match="^PAN fails Luhn check$"):
        make(pan="4111111111111112")
    with pytest.raises(CardReadError, match="length must be 12-19"):
        make(pan="41111111113")
    # Luhn-valid but 15 digits: not a Visa length
    with pytest.raises(CardReadError, match="PAN length invalid for card brand"):
        make(pan="411111111111116")


def test_private_prefix_makes_closed_loop():
    pan = "999000000000000" + luhn_check_digit("999000000000000")
    assert make(pan=pan).brand == "unknown"
    assert make(pan=pan, private_prefixes=("999",)).brand == "closed-loop"


def test_rules_delegate_to_service_code():
    atm = make(service_code="120")  # '0': PIN required, no restriction
    assert atm.pin_required() and atm.pin_required(has_pin_pad=False)
    goods = make(service_code="226")
    assert goods.pin_required() and not goods.pin_required(has_pin_pad=False)
    assert make(service_code="101").allows("cash")
    assert not make(service_code="102").allows("cash")
    assert make(service_code=None).pin_required() is False
    with pytest.raises(CardRejected, match="unknown transaction type"):
        make().allows("purchase")


def test_bad_source():
    with pytest.raises(ValueError):
        make(source="chip")


# --- EMV track 2 equivalent (tag 57) ---

def test_card_from_track2_str_and_bytes():
    for t2 in ["4111111111111111D27122010000000F", "4111111111111111=2712201000000",
               bytes.fromhex("4111111111111111D27122010000000F"), "4111111111111111d2712201"]:
        card = card_from_track2(t2)
        assert card.source == "tap"
        assert card.brand == "visa" and card.expiry == "2712"
        assert card.service_code.code == "201"
        assert card.pan_for_host() == PAN
        assert card.track2_for_host().startswith(PAN + "=2712201")
    assert card_from_track2("5555555555554444D2712201", source="swipe").source == "swipe"


@pytest.mark.parametrize(
    "t2, msg",
    [
        ("", "empty"),
        ("F", "empty"),
        ("4111111111111111", "exactly one field separator"),
        ("4111111111111111D2712D201", "exactly one field separator"),
        ("4111111111111111D27122", "expiry or service code missing"),
        ("4111111111111111D2712201X", "invalid character at position 24"),
        ("4111111111111111D2712201" + "0" * 14, "longer than 37"),
        ("4111111111111112D2712201", "PAN fails Luhn check"),
        ("4111111111111111D2713201", "month out of range"),
    ],
)
def test_card_from_track2_malformed(t2, msg):
    with pytest.raises(CardReadError, match=msg) as info:
        card_from_track2(t2)
    assert str(info.value).startswith("track 2 equivalent: ")
    assert "411111" not in str(info.value)


def test_card_from_track2_reserved_service_code():
    with pytest.raises(CardRejected, match="track 2 equivalent: service code"):
        card_from_track2("4111111111111111D2712301")


# --- closed-loop tokens ---

@pytest.mark.parametrize("uid", [bytes.fromhex("DEA1B2C3"), bytes.fromhex("04112233A1B2C3"),
                                 bytearray.fromhex("0411223344556677A1B2C3"[:20])])
def test_token_card(uid):
    card = token_card(uid)
    hex_uid = bytes(uid).hex().upper()
    assert card.source == "token" and card.uid == bytes(uid)
    assert card.token_id() == hex_uid
    assert card.masked() == "TOKEN .." + hex_uid[-6:]
    assert card.short_masked() == card.masked()
    assert card.last4 == hex_uid[-4:]
    assert card.pan_for_host() is None and card.track2_for_host() is None
    assert card.expiry is None and card.service_code is None
    assert not card.is_expired("9912")
    assert card.pin_required() is False
    for t in ("sale", "refund", "void", "balance", "transfer", "cash"):
        assert card.allows(t)
    assert hex_uid not in repr(card)


def test_token_masked_example():
    assert token_card(bytes.fromhex("11A1B2C3")).masked() == "TOKEN ..A1B2C3"


@pytest.mark.parametrize("uid", [b"", b"\x01\x02\x03", b"\x01" * 5, b"\x01" * 8, b"\x01" * 11, "DEADBEEF", None, 1234])
def test_token_bad_uid(uid):
    with pytest.raises(CardReadError, match="UID must be 4, 7 or 10 bytes"):
        token_card(uid)
