"""Data object lists (EMV Book 3 5.4): the concatenated values a PDOL, CDOL or UDOL asks
for, from a dict of terminal and card data. A tag nobody has is sent as zeros (Book 3
5.4 rule for unknown tags); numeric (n) values are cut or padded on the left, others
on the right."""

from kapos.nfc import tlv

# Numeric-format tags (right-justified, left zero padding) among those a terminal fills.
NUMERIC = (0x9F02, 0x9F03, 0x5F2A, 0x9F1A, 0x9A, 0x9C, 0x9F21, 0x9F35, 0x9F41, 0x5F36, 0x9F7C)


def fit(tag, value, length):
    value = bytes(value)
    if len(value) == length:
        return value
    if tag in NUMERIC:
        if len(value) > length:
            return value[len(value) - length:]
        return bytes(length - len(value)) + value
    if len(value) > length:
        return value[:length]
    return value + bytes(length - len(value))


def fill(dol, data):
    """Values for `dol` (the DOL bytes) from `data` {tag: bytes}; missing tags as zeros."""
    out = b""
    for tag, length in tlv.parse_dol(dol or b""):
        value = data.get(tag)
        out += fit(tag, value, length) if value is not None else bytes(length)
    return out


def tags(dol):
    return [t for t, _ in tlv.parse_dol(dol or b"")]
