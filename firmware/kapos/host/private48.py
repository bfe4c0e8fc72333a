"""Field 48 (kapos private data) as the reference host accepts it: every item length-
and type-checked before any rule reads it (docs/protocol.md section 3).

    items = parse(message)          # {tag: value}, or raises BadPrivateData
    check_required(items, "0200")   # BN is mandatory in every 0200

Bad input is a BadPrivateData (the ledger answers 30); nothing here raises anything else.
The error names the tag and what is wrong, never the value.
"""

from kapos.errors import DecodeError, KaposError
from kapos.host import messages as m

_DIGITS = "0123456789"
_HEX_UPPER = "0123456789ABCDEF"
_ALNUM = _DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _only(alphabet):
    return lambda value: all(c in alphabet for c in value)


def _printable(value):
    return all(" " <= c <= "~" for c in value)


def _hex_bytes(value):
    return len(value) % 2 == 0 and all(c in _HEX_UPPER + "abcdef" for c in value)


# tag -> (minimum length, maximum length, character check, what it is)
TAGS = {
    "BN": (6, 6, _only(_DIGITS), "batch number, n6"),
    m.PRIVATE_FEE: (12, 12, _only(_DIGITS), "fee, n12"),
    m.PRIVATE_TOKEN: (8, 20, _only(_HEX_UPPER), "token UID, 4-10 bytes upper-case hex"),
    m.PRIVATE_TRANSFER_TARGET: (1, 28, _only(_ALNUM), "transfer target, an..28"),
    "TD": (32, 32, _only(_HEX_UPPER), "token block, 16 bytes upper-case hex"),
    "EC": (32, 992, _hex_bytes, "enciphered card data, hex"),
    m.PRIVATE_ALERT_RULE: (1, 40, _printable, "alert rule, ans..40"),
    m.PRIVATE_ALERT_DETAIL: (0, 200, _printable, "alert detail, ans..200"),
}

# tags a message type must carry
REQUIRED = {"0200": ("BN",), "0100": ("BN",), "0500": ("BN",), "0620": (m.PRIVATE_ALERT_RULE,)}


class BadPrivateData(KaposError):
    """Field 48 does not parse, or one of its items has the wrong length or characters."""


def parse(message):
    """The checked items of the message's field 48 ({} when there is none)."""
    text = message.get(48)
    if text is None:
        return {}
    try:
        items = m.unpack_private(text)
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
