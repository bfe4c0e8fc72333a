"""A tiny BER-TLV reader (ISO/IEC 7816-4 / EMV Book 3 Annex B), enough for EMV responses.

Tags are ints of their encoded bytes (0x9F38, 0xBF0C, ...). Values are bytes. Bytes 0x00
and 0xFF between objects are padding and skipped. Malformed input raises DecodeError
naming the byte offset, never the content.
"""

from kapos.errors import DecodeError

MAX_DEPTH = 8  # constructed objects nested deeper than this are not searched


def _read_tag(data, i, end):
    first = data[i]
    tag = first
    i += 1
    if first & 0x1F == 0x1F:
        while True:
            if i >= end:
                raise DecodeError("TLV tag runs past the end", offset=i)
            b = data[i]
            tag = (tag << 8) | b
            i += 1
            if not b & 0x80:
                break
            if tag > 0xFFFFFF:
                raise DecodeError("TLV tag longer than 3 bytes", offset=i)
    return tag, i


def _read_length(data, i, end):
    if i >= end:
        raise DecodeError("TLV length missing", offset=i)
    n = data[i]
    i += 1
    if n < 0x80:
        return n, i
    count = n & 0x7F
    if count == 0 or count > 3:
        raise DecodeError("TLV length form 0x%02X not supported" % n, offset=i - 1)
    if i + count > end:
        raise DecodeError("TLV length runs past the end", offset=i)
    n = 0
    for k in range(count):
        n = (n << 8) | data[i + k]
    return n, i + count


def iter_tlv(data, start=0, end=None):
    """Yield (tag, constructed, value_start, value_end) for each object in data[start:end]."""
    if end is None:
        end = len(data)
    i = start
    while i < end:
        if data[i] == 0x00 or data[i] == 0xFF:
            i += 1
            continue
        constructed = bool(data[i] & 0x20)
        tag, i = _read_tag(data, i, end)
        length, i = _read_length(data, i, end)
        if i + length > end:
            raise DecodeError("TLV value of tag %X runs past the end" % tag, offset=i)
        yield tag, constructed, i, i + length
        i += length


def parse(data):
    """Top-level objects as a list of (tag, value bytes)."""
    return [(t, bytes(data[a:b])) for t, _, a, b in iter_tlv(data)]


def find(data, tag, depth=0, start=0, end=None):
    """The value (bytes) of the first object `tag`, searching constructed objects depth-first;
    None when absent."""
    for t, constructed, a, b in iter_tlv(data, start, end):
        if t == tag:
            return bytes(data[a:b])
        if constructed and depth < MAX_DEPTH:
            found = find(data, tag, depth + 1, a, b)
            if found is not None:
                return found
    return None


def find_all(data, tag, depth=0, start=0, end=None, out=None):
    """Values of every object `tag` (constructed objects searched), in order."""
    if out is None:
        out = []
    for t, constructed, a, b in iter_tlv(data, start, end):
        if t == tag:
            out.append(bytes(data[a:b]))
        elif constructed and depth < MAX_DEPTH:
            find_all(data, tag, depth + 1, a, b, out)
    return out


def parse_dol(data):
    """A data object list (PDOL, CDOL): [(tag, length), ...] (tags and lengths, no values)."""
    out = []
    i = 0
    end = len(data)
    while i < end:
        tag, i = _read_tag(data, i, end)
        length, i = _read_length(data, i, end)
        out.append((tag, length))
    return out


def encode(tag, value):
    """One primitive or constructed object: tag bytes, length, value."""
    t = []
    while True:
        t.insert(0, tag & 0xFF)
        tag >>= 8
        if not tag:
            break
    n = len(value)
    if n < 0x80:
        head = bytes(t) + bytes((n,))
    elif n < 0x100:
        head = bytes(t) + bytes((0x81, n))
    else:
        head = bytes(t) + bytes((0x82, n >> 8, n & 0xFF))
    return head + bytes(value)
