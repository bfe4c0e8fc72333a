"""parse_swipe: what a magstripe reader sends for one swipe."""

import pytest

from kapos.card import build_track1, build_track2, parse_swipe, track1_lrc, track2_lrc
from kapos.errors import CardReadError, CardRejected

PAN = "4111111111111111"
T1 = build_track1(PAN, "DOE/JOHN", "2712", "201", "0000000")
T2 = build_track2(PAN, "2712", "201", "0000000")
T3 = ";011234567890123445=0000000000?"
_body = T1[:-1].replace("^", "=", 1)  # '=' is in the 6-bit set, but no separator
T1_BAD_SEP = _body + track1_lrc(_body)


@pytest.mark.parametrize(
    "raw",
    [
        T1 + T2,
        T1 + T2 + "\r\n",
        T1 + "\r" + T2 + "\r",
        T1 + "\n" + T2 + "\n" + T3 + "\n",
        T1[:-1] + T2[:-1],  # reader strips the LRCs
        T1 + T2 + T3,
        T1 + T2 + "+E?",  # track 3 read error: track 3 is not used
        (T1 + T2 + "\r\n").encode("ascii"),
        bytearray((T1 + T2).encode("ascii")),
    ],
)
def test_good_swipes(raw):
    card = parse_swipe(raw)
    assert card.pan_for_host() == PAN
    assert card.name == "DOE/JOHN"  # from track 1
    assert card.track2_for_host() == PAN + "=27122010000000"  # from track 2
    assert card.expiry == "2712" and card.service_code.code == "201"
    assert card.brand == "visa" and card.source == "swipe"


@pytest.mark.parametrize(
    "pan, name, yymm, sc, brand",
    [
        ("5555555555554444", "ROE/JANE", "3001", "101", "mastercard"),
        ("378282246310005", "AMEX/TEST", "2905", "201", "amex"),
        ("6011111111111117", "DISC/TEST", "2802", "120", "discover"),
    ],
)
def test_other_test_pans(pan, name, yymm, sc, brand):
    card = parse_swipe(build_track1(pan, name, yymm, sc) + build_track2(pan, yymm, sc) + "\n")
    assert (card.brand, card.masked(), card.name) == (brand, "*" * (len(pan) - 4) + pan[-4:], name)


def test_single_track_swipes():
    only2 = parse_swipe(T2 + "\r\n")
    assert only2.pan_for_host() == PAN and only2.name == ""
    only1 = parse_swipe(T1 + "\r\n")
    assert only1.pan_for_host() == PAN and only1.name == "DOE/JOHN"
    assert only1.track2_for_host() is None  # track 1 cannot stand in for track 2


def test_reader_error_markers():
    # one unreadable track: the other carries everything needed
    assert parse_swipe("%E?" + T2 + "\r").pan_for_host() == PAN
    assert parse_swipe(T1 + ";E?\r").name == "DOE/JOHN"
    for raw, msg in [("%E?;E?\r", "^track 1 and track 2: reader error$"),
                     ("%E?", "^track 1: reader error$"),
                     (";E?+E?\r\n", "^track 2: reader error$")]:
        with pytest.raises(CardReadError, match=msg):
            parse_swipe(raw)


def test_private_prefix_passed_through():
    assert parse_swipe(T2, private_prefixes=("411111",)).brand == "closed-loop"


def _name_with_track1_lrc(char):
    """A name whose track 1 (PAN above) has LRC `char`: a start sentinel look-alike."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 /"
    for a in alphabet:
        for b in alphabet:
            t1 = build_track1(PAN, "TEST/" + a + b, "2712", "201", "0000000", lrc=False)
            if track1_lrc(t1) == char:
                return t1
    raise AssertionError("no such name")


@pytest.mark.parametrize("char", [";", "%", "+", "?"])
def test_lrc_that_looks_like_a_sentinel(char):
    t1 = _name_with_track1_lrc(char)
    for raw in (t1 + track1_lrc(t1) + T2, t1 + T2, t1 + track1_lrc(t1) + "\r\n" + T2, t1 + track1_lrc(t1)):
        assert parse_swipe(raw).name.startswith("TEST/")


def test_track2_lrc_semicolon_before_track3():
    for disc in range(1000):
        t2 = build_track2(PAN, "2712", "201", "%03d" % disc, lrc=False)
        if track2_lrc(t2) == ";":
            break
    for raw in (t2 + ";" + T3, t2 + T3, t2 + ";"):
        assert parse_swipe(raw).track2_for_host() == t2[1:-1]


BAD = [
    ("", "^no track data$"),
    ("\r\n", "^no track data$"),
    ("+" + T3[1:], "^no track 1 or track 2 data$"),
    (PAN + "=27122010000000?", "missing start sentinel \\(offset 0\\)"),
    (T1 + "xx" + T2, "missing start sentinel \\(offset %d\\)" % len(T1)),  # 'x' after the LRC
    (T1 + T1, "track 1 appears twice"),
    (T1 + T2 + T3 + T3, "track 3 appears twice"),
    (T1[:-2] + T2, "track 1: missing end sentinel"),
    (T1 + T2[:-2], "track 2: missing end sentinel"),
    (T1 + T2[:-2] + "\r\n", "track 2: missing end sentinel"),
    (T1[:-1] + "X" + T2, "track 1: LRC mismatch"),
    (T1 + T2[:-1] + "0", "track 2: LRC mismatch"),
    (T1.replace("^", "|", 1) + T2, "track 1: character outside 6-bit set at position 18"),
    (T1_BAD_SEP + T2, "track 1: missing field separator"),
    (T1 + T2.replace("=", ":"), "track 2: invalid character"),
    (T1 + build_track2("5555555555554444", "2712", "201", "0000000"), "PAN differs between track 1 and track 2"),
    (T1 + build_track2(PAN, "2711", "201", "0000000"), "expiry differs"),
    (T1 + build_track2(PAN, "2712", "101", "0000000"), "service code differs"),
    (build_track1("4111111111111112", "DOE/JOHN", "2712", "201") + T2, "track 1: PAN fails Luhn check"),
    (build_track2("4111111111111112", "2712", "201"), "track 2: PAN fails Luhn check"),
    (build_track2(PAN, "2713", "201"), "track 2: expiry month out of range"),
    (build_track2("411111111111", "2712", "201"), "track 2: PAN fails Luhn check"),
    (build_track2("41111111116", "2712", "201"), "track 2: PAN length must be 12-19"),
    ("%E?" + T2[:-1].replace("=", ""), "track 2: missing field separator"),  # a good track must still parse
    (T1 + "\x00" + T2, "non-printable character at offset %d" % len(T1)),
    (b"\xff\xfe\x00garbage\x1b[0m", "non-printable character at offset 0"),
    (T1 + "é" + T2, "non-printable character"),
    (T1 * 12, "longer than 512"),
]


@pytest.mark.parametrize("raw, msg", BAD)
def test_malformed_swipes(raw, msg):
    with pytest.raises(CardReadError, match=msg) as info:
        parse_swipe(raw)
    text = str(info.value)
    assert "411111" not in text and "555555" not in text and "DOE" not in text


def test_reserved_service_code_is_rejected_not_malformed():
    with pytest.raises(CardRejected, match="^track 2: service code: reserved value in position 1$"):
        parse_swipe(build_track2(PAN, "2712", "301"))


def test_non_text_input_is_a_programming_error():
    with pytest.raises(TypeError):
        parse_swipe(None)
