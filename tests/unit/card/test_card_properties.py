"""Properties: parse_swipe never fails in an unplanned way and never leaks digits."""

import re

from hypothesis import given, settings, strategies as st

from kapos.card import Card, build_track1, build_track2, parse_swipe, card_from_track2
from kapos.errors import CardReadError, CardRejected

TEST_PANS = ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"]
TRACK_CHARS = "%;+!?^=EB0123456789 /ABCDEFGHIJKLMNOPQRSTUVWXYZ:<>\r\n"


def _digit_windows(text):
    """Every 6-digit window of every run of 6+ ASCII digits in `text`."""
    out = set()
    for run in re.findall("[0-9]{6,}", text):
        for i in range(len(run) - 5):
            out.add(run[i : i + 6])
    return out


def _check(raw):
    text = raw if isinstance(raw, str) else bytes(raw).decode("latin-1")
    try:
        card = parse_swipe(raw)
    except (CardReadError, CardRejected) as e:
        message = str(e)
        for window in _digit_windows(text):
            assert window not in message, "error message leaks input digits"
        return
    assert isinstance(card, Card)
    pan = card.pan_for_host()
    assert pan and pan not in repr(card) and pan not in str(card)


@st.composite
def valid_swipes(draw):
    pan = draw(st.sampled_from(TEST_PANS))
    yymm = "%02d%02d" % (draw(st.integers(0, 99)), draw(st.integers(1, 12)))
    sc = draw(st.sampled_from(["101", "120", "201", "221", "520", "601", "702", "906"]))
    disc = draw(st.text("0123456789", max_size=8))
    name = draw(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ /.", min_size=2, max_size=26))
    lrc = draw(st.booleans())
    parts = []
    if draw(st.booleans()):
        parts.append(build_track1(pan, name, yymm, sc, disc, lrc=lrc))
    parts.append(build_track2(pan, yymm, sc, disc, lrc=lrc))
    return draw(st.sampled_from(["", "\r", "\n"])).join(parts) + draw(st.sampled_from(["", "\r\n"]))


@st.composite
def mutated_swipes(draw):
    """A valid swipe with a few characters replaced, inserted or deleted."""
    chars = list(draw(valid_swipes()))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(chars)))
        op = draw(st.sampled_from(["replace", "insert", "delete"]))
        c = draw(st.sampled_from(TRACK_CHARS))
        if op == "insert" or i == len(chars):
            chars.insert(i, c)
        elif op == "replace":
            chars[i] = c
        else:
            del chars[i]
    return "".join(chars)


@settings(max_examples=300)
@given(st.text())
def test_arbitrary_text(raw):
    _check(raw)


@settings(max_examples=300)
@given(st.text(TRACK_CHARS, max_size=120))
def test_track_alphabet_text(raw):
    _check(raw)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes(raw):
    _check(raw)


@settings(max_examples=300)
@given(valid_swipes())
def test_valid_swipes_parse(raw):
    card = parse_swipe(raw)
    assert card.pan_for_host() in TEST_PANS


@settings(max_examples=500)
@given(mutated_swipes())
def test_mutated_swipes(raw):
    _check(raw)


@settings(max_examples=300)
@given(st.text("0123456789DF=", max_size=40))
def test_track2_equivalent_fails_cleanly(t2):
    try:
        card = card_from_track2(t2)
    except (CardReadError, CardRejected) as e:
        for window in _digit_windows(t2):
            assert window not in str(e)
        return
    assert card.pan_for_host() not in repr(card)
