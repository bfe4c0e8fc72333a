"""ISO/IEC 7813 track 1 / track 2 parsing, LRC and the builders."""

import pytest

from kapos.card import (build_track1, build_track2, parse_track1, parse_track2,
                        track1_lrc, track2_lrc)
from kapos.errors import CardReadError

# Well-known processor test PANs, with made-up names, dates and service codes.
GOOD = [
    ("4111111111111111", "DOE/JOHN", "2712", "201", "0000000"),
    ("5555555555554444", "ROE/JANE M.MS", "3001", "101", "123456789"),
    ("378282246310005", "AMEX TEST", "2905", "201", ""),
    ("6011111111111117", "CARDHOLDER/A", "2802", "120", "99"),
]


def test_lrc_worked_examples():
    # DataCard CP80/CP80 Plus service manual p. 2-23 "LRC" table: track 1 data
    # '%7C^SZ?' has LRC bits 011001 (0x19) -> ASCII 0x19 + 0x20 = '9'.
    assert track1_lrc("%7C^SZ?") == "9"
    # MagTek "I/O Interface for TTL Magnetic Stripe Readers", section 3: start
    # sentinel B, data 0 0, end sentinel F -> LRC 0100 = 4.
    assert track2_lrc(";00?") == "4"


@pytest.mark.parametrize("pan, name, yymm, sc, disc", GOOD)
@pytest.mark.parametrize("lrc", [True, False])
def test_round_trip(pan, name, yymm, sc, disc, lrc):
    t1 = build_track1(pan, name, yymm, sc, disc, lrc=lrc)
    t2 = build_track2(pan, yymm, sc, disc, lrc=lrc)
    assert len(t1) == len("%B^^?") + len(pan + name + yymm + sc + disc) + (1 if lrc else 0)
    c1, c2 = parse_track1(t1), parse_track2(t2)
    for card in (c1, c2):
        assert card.pan_for_host() == pan
        assert card.expiry == yymm and card.service_code.code == sc
        assert card.source == "swipe"
    assert c1.name == name and c2.name == ""
    assert c1.track2_for_host() is None
    assert c2.track2_for_host() == pan + "=" + yymm + sc + disc


def test_name_padding_is_stripped():
    assert parse_track1(build_track1("4111111111111111", "DOE/JOHN      ", "2712", "201")).name == "DOE/JOHN"


def test_builders_refuse_unencodable_characters():
    with pytest.raises(ValueError):
        build_track1("4111111111111111", "doe/john", "2712", "201")  # lower case: not 6-bit
    with pytest.raises(ValueError):
        build_track2("4111111111111111", "2712", "201", "AB")


def _pad_to(total, builder, *args):
    """Discretionary data making the built track exactly `total` chars long (with LRC)."""
    base = len(builder(*args))
    return "0" * (total - base)


def test_length_limits_count_the_lrc():
    pan, yymm, sc = "4111111111111111", "2712", "201"
    disc = _pad_to(79, build_track1, pan, "DOE/JOHN", yymm, sc)
    assert parse_track1(build_track1(pan, "DOE/JOHN", yymm, sc, disc)).expiry == yymm
    t1 = build_track1(pan, "DOE/JOHN", yymm, sc, disc + "0")
    with pytest.raises(CardReadError, match="^track 1: longer than 79 characters$"):
        parse_track1(t1)
    with pytest.raises(CardReadError, match="longer than 79"):  # LRC stripped: still too long
        parse_track1(t1[:-1])
    disc = _pad_to(40, build_track2, pan, yymm, sc)
    assert parse_track2(build_track2(pan, yymm, sc, disc)).expiry == yymm
    with pytest.raises(CardReadError, match="^track 2: longer than 40 characters$"):
        parse_track2(build_track2(pan, yymm, sc, disc + "0"))


T1 = build_track1("4111111111111111", "DOE/JOHN", "2712", "201", "0000", lrc=False)
T2 = build_track2("4111111111111111", "2712", "201", "0000", lrc=False)

TRACK1_BAD = [
    ("", "missing start sentinel"),
    (T1[1:], "missing start sentinel"),
    (T1[:-1], "missing end sentinel"),
    (T1 + "::", "data after end sentinel"),
    (T1 + "X", "LRC mismatch"),
    (T1.replace("B", "A", 1), "format code is not B"),
    ("%?", "format code is not B"),
    (T1.replace("^", "", 1), "missing field separator"),
    (T1.replace("^", "=", 1), "missing field separator"),
    (T1.replace("DOE/JOHN", "D"), "name must be 2-26 characters"),
    (T1.replace("DOE/JOHN", "A" * 27), "name must be 2-26 characters"),
    (T1.replace("DOE/JOHN", "doe/john"), "character outside 6-bit set at position 19"),
    (T1.replace("DOE/JOHN", "DOE;JOHN"), "missing end sentinel"),
    (T1.replace("4111111111111111", "41111111111111111111"), "PAN longer than 19 digits"),
    (T1.replace("4111111111111111", "4111111111111112"), "PAN fails Luhn check"),
    (T1.replace("4111111111111111", "4111111111"), "PAN length must be 12-19"),
    (T1.replace("4111111111111111", ""), "PAN is not all digits"),
    (T1.replace("4111111111111111", "4111 1111 1111 1111"), "PAN is not all digits"),
    (T1.replace("27122010000", "271320"), "expiry or service code missing"),
    (T1.replace("2712", "2713"), "expiry month out of range"),
    (T1.replace("2712", "2700"), "expiry month out of range"),
    (T1.replace("2712", "27/2"), "expiry is not YYMM"),
    (T1.replace("2712201", "27122X1"), "service code must be 3 digits"),
]

TRACK2_BAD = [
    ("", "missing start sentinel"),
    (T2[1:], "missing start sentinel"),
    (T2[:-1], "missing end sentinel"),
    (T2 + "0", "LRC mismatch"),
    (T2.replace("=", ""), "missing field separator"),
    (T2.replace("=", "D"), "invalid character at position 17"),
    (T2.replace("0000?", "0=00?"), "extra field separator"),
    (T2.replace("2712", "27:2"), "invalid character at position 20"),
    (T2.replace("2712", "2;12"), "missing end sentinel"),
    (T2 + "0" * 30, "data after end sentinel"),
    (T2.replace("0000", "0" * 20), "longer than 40"),
    (T2.replace("4111111111111111", "4111111111111112"), "PAN fails Luhn check"),
    (T2.replace("4111111111111111", "41111111111111111111"), "PAN longer than 19 digits"),
    (T2.replace("4111111111111111", "41111111117"), "PAN length must be 12-19"),
    (T2.replace("27122010000", "271220"), "expiry or service code missing"),
    (T2.replace("2712", "2713"), "expiry month out of range"),
]


@pytest.mark.parametrize("text, msg", TRACK1_BAD)
def test_track1_malformed(text, msg):
    with pytest.raises(CardReadError, match=msg) as info:
        parse_track1(text)
    assert str(info.value).startswith("track 1: ")
    assert "411111" not in str(info.value) and "DOE" not in str(info.value)


@pytest.mark.parametrize("text, msg", TRACK2_BAD)
def test_track2_malformed(text, msg):
    with pytest.raises(CardReadError, match=msg) as info:
        parse_track2(text)
    assert str(info.value).startswith("track 2: ")
    assert "411111" not in str(info.value)


def test_bad_lrc_on_otherwise_good_tracks():
    t1 = build_track1("4111111111111111", "DOE/JOHN", "2712", "201")
    t2 = build_track2("4111111111111111", "2712", "201")
    bad1 = t1[:-1] + chr(((ord(t1[-1]) - 0x20 + 1) & 0x3F) + 0x20)
    bad2 = t2[:-1] + chr(((ord(t2[-1]) - 0x30 + 1) & 0x0F) + 0x30)
    with pytest.raises(CardReadError, match="^track 1: LRC mismatch$"):
        parse_track1(bad1)
    with pytest.raises(CardReadError, match="^track 2: LRC mismatch$"):
        parse_track2(bad2)
