"""Field 48 and the small text checks use str.strip() in place of a per-character loop:
these compare them with the straightforward per-character reference on tricky and
random input (non-ASCII digits, control characters, letters of the wrong case). Portable:
run by pytest on CPython and by the MicroPython gate, whose strip() works on bytes."""

import pytest

from kapos.errors import DecodeError, KaposError
from kapos.host import messages, private48, sale_messages

DIGITS = "0123456789"
TAG_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
HEX = "0123456789ABCDEF"

# characters next to, inside and outside every alphabet (U+0663 is an Arabic-Indic 3)
TRICKY = DIGITS + "ABCDEFZaefz .+-_,:~=\x1f\x7f\x00\xe9\u0663\u00b2\uff11"


def reference_unpack(text):
    """The per-character field 48 reader the fast one must equal."""
    if type(text) is not str:
        raise DecodeError("private data is text", 48, 0)
    items = {}
    pos = 0
    while pos < len(text):
        if pos + 5 > len(text):
            raise DecodeError("truncated private data tag", 48, pos)
        tag, size = text[pos:pos + 2], text[pos + 2:pos + 5]
        if not all(c in TAG_CHARS for c in tag):
            raise DecodeError("bad private data tag", 48, pos)
        if not all(c in DIGITS for c in size):
            raise DecodeError("bad private data length", 48, pos + 2)
        stop = pos + 5 + int(size)
        if stop > len(text):
            raise DecodeError("private data value runs past the field", 48, pos)
        if tag in items:
            raise DecodeError("private data tag %s twice" % tag, 48, pos)
        items[tag] = text[pos + 5:stop]
        pos = stop
    return items


def reference_value_ok(tag, value):
    """The per-character value rules of private48.TAGS."""
    def only(alphabet):
        return all(c in alphabet for c in value)
    printable = all(" " <= c <= "~" for c in value)
    version_chars = DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.+-_"
    names = value[2:].split(",")
    return {
        "BN": only(DIGITS), "FE": only(DIGITS), "TK": only(HEX), "TD": only(HEX),
        "TA": only(DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
        "EC": len(value) % 2 == 0 and only(HEX + "abcdef"),
        "AR": printable, "AD": printable, "PV": only("01"),
        "SV": value != "" and value[0] in DIGITS and only(version_chars),
        "ST": value in ("P", "N") or value.startswith("F:") and all(
            name and all(c in "abcdefghijklmnopqrstuvwxyz0123456789_" for c in name)
            for name in names),
    }[tag]


def reference_is_digits(text):
    return type(text) is str and text != "" and all(c in DIGITS for c in text)


def reference_card(track2):
    pos = 0
    while pos < len(track2) and track2[pos] in DIGITS:
        pos += 1
    expiry = track2[pos + 1:pos + 5]
    if not track2[:pos]:
        return "no PAN"
    return track2[:pos], (expiry if len(expiry) == 4 and reference_is_digits(expiry) else None)


def outcome(function, *args):
    """What a call gives: its result, or its error class, text, field and offset."""
    try:
        return ("ok", function(*args))
    except KaposError as exc:
        return (type(exc).__name__, str(exc), getattr(exc, "field", None),
                getattr(exc, "offset", None))


class Rng:
    """A small seeded generator (MicroPython's random has no Random class)."""

    def __init__(self, seed):
        self.state = seed

    def random(self):
        self.state = (self.state * 1103515245 + 12345) % 2147483648
        return self.state / 2147483648

    def randint(self, low, high):
        return low + int(self.random() * (high - low + 1))

    def choice(self, sequence):
        return sequence[self.randint(0, len(sequence) - 1)]


def random_text(rng, alphabet, longest):
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest)))


def random_field48(rng):
    """Mostly well-formed items, with a character or a length here and there wrong."""
    out = ""
    for _ in range(rng.randint(0, 3)):
        tag = rng.choice(list(private48.TAGS) + ["ZZ", "b1", "\u0663A"])
        value = random_text(rng, rng.choice((DIGITS, HEX, TRICKY)), 12)
        size = "%03d" % len(value)
        if rng.random() < 0.2:
            size = rng.choice(("\u06630" + size[2], " 1" + size[2], "+0" + size[2], "00"))
        out += tag + size + value
    if out and rng.random() < 0.2:
        cut = rng.randint(0, len(out))
        out = out[:cut] + rng.choice(TRICKY) + out[cut + 1:]
    return out


@pytest.mark.parametrize("text", ["", "BN006000001", "BN00600000\u0663", "B\u0663006000001",
                                  "BN0\u06636000001", "BN 06000001", "bn006000001", "BN00",
                                  "BN006000001BN006000002", "EC004abCDEC004", "AD001\x7f"])
def test_unpack_equals_the_per_character_reader(text):
    assert outcome(private48.unpack, text) == outcome(reference_unpack, text)


def test_unpack_and_parse_equal_the_reference_on_random_field_48():
    rng = Rng(48)
    for _ in range(1500):
        text = random_field48(rng)
        assert outcome(private48.unpack, text) == outcome(reference_unpack, text), repr(text)
        try:
            items = reference_unpack(text)
        except DecodeError:
            continue
        expected = "ok"
        for tag in items:
            low, high = private48.TAGS[tag][:2] if tag in private48.TAGS else (0, -1)
            if not low <= len(items[tag]) <= high or not reference_value_ok(tag, items[tag]):
                expected = "BadPrivateData"
                break
        assert outcome(private48.parse, {48: text})[0] == expected, repr(text)


def test_every_value_rule_equals_the_per_character_rule():
    rng = Rng(7)
    for tag, (low, high, check, what) in private48.TAGS.items():
        for _ in range(300):
            value = random_text(rng, rng.choice((TRICKY, DIGITS + "F:,_ab", HEX + "abc")), 24)
            if tag == "ST" and rng.random() < 0.5:
                value = "F:" + value
            assert bool(check(value)) == bool(reference_value_ok(tag, value)), (tag, value)


def test_digit_checks_and_track2_equal_the_per_character_reference():
    rng = Rng(35)
    for _ in range(1000):
        text = random_text(rng, rng.choice((DIGITS, DIGITS + "=", TRICKY)), 20)
        assert sale_messages._is_digits(text) == reference_is_digits(text), repr(text)
        fast = outcome(messages._card_from_track2, text)
        assert (fast[0] == "ok") == (reference_card(text) != "no PAN"), repr(text)
        if fast[0] == "ok":
            assert fast[1] == reference_card(text), repr(text)
    assert not sale_messages._is_digits(5) and not sale_messages._is_digits("")
