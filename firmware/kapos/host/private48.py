"""Field 48, kapos private data: the one home of its tags, its codec and its checks.

Every item is TAG (2 characters A-Z 0-9) LLL (3 digits) VALUE (docs/protocol.md
section 3). The terminal packs with `pack`, the reference host reads with `parse`, which
length- and type-checks every item before any rule reads it:

    text = pack([(BATCH, "000001"), (FEE, "%012d" % 80)])
    items = parse(message)          # {tag: value}, or raises BadPrivateData
    check_required(items, "0200")   # BN is mandatory in every 0200

Errors name the tag and what is wrong, never the value.
"""

from kapos.errors import DecodeError, LocalProtocolError, RemoteProtocolError

BATCH = "BN"  # the terminal's batch number, n6 (0100, 0200 and 0500)
FEE = "FE"  # fee in minor units, n12
TOKEN = "TK"  # closed-loop token / card id (its UID), upper-case hex
TRANSFER_TARGET = "TA"  # account (closed-loop id or PAN) a transfer or a deposit credits
TOKEN_DATA = "TD"  # a token's anti-clone block (security/token.py), hex
ENCIPHERED_CARD = "EC"  # track 2 / PAN enciphered under the DUKPT data key, hex
ALERT_RULE = "AR"  # 0620: the anomaly rule that fired
ALERT_DETAIL = "AD"  # 0620: its detail text
PIN_VERIFIED = "PV"  # reply: "1" when the host verified the PIN of this request
SOFTWARE_VERSION = "SV"  # 0800: the terminal's software version (what it runs now)
SELFTEST = "ST"  # 0800: its self-test status, "P", "N" or "F:" + the failed checks

_DIGITS = "0123456789"
_HEX_UPPER = "0123456789ABCDEF"
_TAG_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_ALNUM = _DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HEX_ANY = _HEX_UPPER + "abcdef"

# Character checks strip the allowed characters and look for a remainder: one call in C
# instead of a Python step per character. Nothing is left exactly when every character is
# allowed (stripping stops at the first character outside the set, from either end).
# Every alphabet is ASCII, so MicroPython's byte-wise strip agrees for any text.


def _only(alphabet):
    return lambda value: not value.strip(alphabet)


def _printable(value):  # 0620 alerts only: not worth a 95-character table in RAM
    return all(" " <= c <= "~" for c in value)


_VERSION_CHARS = _ALNUM + ".+-_"
_CHECK_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
SELFTEST_PASSED, SELFTEST_NOT_RUN, SELFTEST_FAILED = "P", "N", "F:"
SELFTEST_MAX = 60


def _version(value):
    """A release version (0.1.0, 1.2.0rc1, 2026.12.01+pi): starts with a digit, no spaces."""
    return value != "" and value[0] in _DIGITS and not value.strip(_VERSION_CHARS)


def _selftest(value):
    """P (passed), N (not run yet) or F:name,name (the checks that failed, a-z 0-9 _)."""
    if value in (SELFTEST_PASSED, SELFTEST_NOT_RUN):
        return True
    if not value.startswith(SELFTEST_FAILED):
        return False
    names = value[2:].split(",")
    return all(name and not name.strip(_CHECK_NAME_CHARS) for name in names)


def selftest_value(failed):
    """The ST value of a self-test that found `failed` (check names; empty: passed). Names
    are cut to the alphabet and the list to SELFTEST_MAX characters (whole names only)."""
    if not failed:
        return SELFTEST_PASSED
    out = SELFTEST_FAILED
    for name in failed:
        name = "".join(c for c in str(name).lower() if c in _CHECK_NAME_CHARS)[:20] or "check"
        if len(out) + len(name) + (0 if out == SELFTEST_FAILED else 1) > SELFTEST_MAX:
            break
        out += name if out == SELFTEST_FAILED else "," + name
    return out


def _hex_bytes(value):
    return len(value) % 2 == 0 and not value.strip(_HEX_ANY)


# tag -> (minimum length, maximum length, character check, what it is)
TAGS = {
    BATCH: (6, 6, _only(_DIGITS), "batch number, n6"),
    FEE: (12, 12, _only(_DIGITS), "fee, n12"),
    TOKEN: (8, 20, _only(_HEX_UPPER), "token UID, 4-10 bytes upper-case hex"),
    TRANSFER_TARGET: (1, 28, _only(_ALNUM), "transfer target, an..28"),
    TOKEN_DATA: (32, 32, _only(_HEX_UPPER), "token block, 16 bytes upper-case hex"),
    ENCIPHERED_CARD: (32, 992, _hex_bytes, "enciphered card data, hex"),
    ALERT_RULE: (1, 40, _printable, "alert rule, ans..40"),
    ALERT_DETAIL: (0, 200, _printable, "alert detail, ans..200"),
    PIN_VERIFIED: (1, 1, _only("01"), "PIN verified flag, 0 or 1"),
    SOFTWARE_VERSION: (1, 32, _version, "software version, a digit then 0-9 A-Z a-z . + - _, up to 32"),
    SELFTEST: (1, SELFTEST_MAX, _selftest, "self-test status, P, N or F:check,check (a-z 0-9 _), up to 60"),
}

# tags a message type must carry
REQUIRED = {"0200": (BATCH,), "0100": (BATCH,), "0500": (BATCH,), "0620": (ALERT_RULE,)}


class BadPrivateData(RemoteProtocolError):
    """Field 48 does not parse, or one of its items has the wrong length or characters."""


def _tag_ok(tag):
    return not tag.strip(_TAG_CHARS)


def pack(items):
    """Field 48 from {tag: value} or [(tag, value)]: TAG(2) LLL(3 digits) VALUE, in order."""
    if isinstance(items, dict):
        items = sorted(items.items())
    out = []
    seen = []
    for tag, value in items:
        if type(tag) is not str or len(tag) != 2 or not _tag_ok(tag):
            raise LocalProtocolError("field 48: a tag is 2 characters A-Z 0-9")
        if tag in seen:
            raise LocalProtocolError("field 48: tag %s twice" % tag)
        seen.append(tag)
        if type(value) is not str or len(value) > 999:
            raise LocalProtocolError("field 48: tag %s value must be a str up to 999" % tag)
        out.append("%s%03d%s" % (tag, len(value), value))
    text = "".join(out)
    if len(text) > 999:
        raise LocalProtocolError("field 48: %d characters over the maximum 999" % len(text))
    return text


def unpack(text):
    """Field 48 -> {tag: value}. DecodeError offsets are within the field's value."""
    if type(text) is not str:
        raise DecodeError("private data is text", 48, 0)
    items = {}
    pos = 0
    end = len(text)
    while pos < end:
        value_at = pos + 5
        if value_at > end:
            raise DecodeError("truncated private data tag", 48, pos)
        tag = text[pos:pos + 2]
        if tag.strip(_TAG_CHARS):
            raise DecodeError("bad private data tag", 48, pos)
        size = text[pos + 2:value_at]
        if size.strip(_DIGITS):
            raise DecodeError("bad private data length", 48, pos + 2)
        stop = value_at + int(size)
        if stop > end:
            raise DecodeError("private data value runs past the field", 48, pos)
        if tag in items:
            raise DecodeError("private data tag %s twice" % tag, 48, pos)
        items[tag] = text[value_at:stop]
        pos = stop
    return items


def parse(message):
    """The checked items of the message's field 48 ({} when there is none)."""
    text = message.get(48)
    if text is None:
        return {}
    try:
        items = unpack(text)
    except DecodeError as exc:
        raise BadPrivateData("field 48: %s" % exc)
    for tag, value in items.items():
        rule = TAGS.get(tag)
        if rule is None:
            raise BadPrivateData("field 48: unknown tag %s" % tag)
        low, high, chars, what = rule
        if not low <= len(value) <= high or not chars(value):
            raise BadPrivateData("field 48: tag %s must be %s" % (tag, what))
    return items


def check_required(items, mti):
    for tag in REQUIRED.get(mti, ()):
        if tag not in items:
            raise BadPrivateData("field 48: tag %s missing" % tag)
