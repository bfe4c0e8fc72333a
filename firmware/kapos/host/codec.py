"""ISO 8583 codec: message dict <-> bytes, driven by a Spec (see `kapos.host.spec`).

A message is a plain dict: key "mti" (4-digit str) and one int key per data element.
Values are str for n / an / ans / z / x+n elements and bytes for b elements; the codec
never converts numbers, pads or trims, so `decode(encode(m)) == m` for every valid m.

    encode(message, spec=DEFAULT_SPEC) -> bytes      LocalProtocolError if invalid
    decode(data, spec=DEFAULT_SPEC) -> dict           DecodeError(field, offset) if invalid
    mac_field(message) -> 64 or 128                   where this message's MAC goes
    mac_input(data) -> bytes                          the bytes the MAC is computed over
    with_mac(data, mac) -> bytes                      `data` with its MAC value replaced
    redacted(message, spec=DEFAULT_SPEC) -> dict      a copy safe to log

DecodeError.field is the field number, "mti" or "bitmap" (primary bitmap; the secondary
bitmap is field 1) or None (trailing bytes). DecodeError.offset is the index in `data`
of the byte where decoding failed: the first invalid byte for a character error, the
length prefix for a length error, the start of the element for a truncation, the bitmap
byte holding the offending bit for a bitmap error. Messages never contain values.
"""

from kapos.errors import DecodeError, LocalProtocolError
from kapos.host.spec import DEFAULT_SPEC, DIGITS, FIXED, MAC_LENGTH, XN

MTI = "mti"
_ZERO8 = bytes(8)


def _first_bad(raw, ftype, allowed):
    """Index of the first byte of `raw` not allowed for `ftype`, or -1 if all are fine."""
    if ftype == XN:
        if not raw or raw[0] not in b"CD":
            return 0
        rest = _first_bad(raw[1:], None, allowed)
        return rest + 1 if rest >= 0 else -1
    if not raw.strip(allowed):  # fast path: nothing left once allowed bytes are stripped
        return -1
    for i in range(len(raw)):
        if raw[i] not in allowed:
            return i
    return -1  # not reached


def _check_mti(message):
    try:
        mti = message[MTI]
    except KeyError:
        raise LocalProtocolError("message has no 'mti'")
    except TypeError:
        raise LocalProtocolError("a message is a dict")
    if type(mti) is not str or len(mti) != 4:
        raise LocalProtocolError("MTI must be a str of 4 digits")
    try:
        raw = mti.encode()
    except UnicodeError:
        raw = b"?"
    if _first_bad(raw, None, DIGITS) >= 0 or len(raw) != 4:
        raise LocalProtocolError("MTI must be a str of 4 digits")
    if mti[0] != "0":
        raise LocalProtocolError("MTI version must be 0 (ISO 8583:1987)")
    return mti


def encode(message, spec=DEFAULT_SPEC):
    """Encode a message dict to bytes; LocalProtocolError names the first bad field."""
    mti = _check_mti(message)
    fields = spec.fields
    numbers = []
    for key in message:
        if key == MTI:
            continue
        if type(key) is not int:
            raise LocalProtocolError("message keys are 'mti' and field numbers, not %s"
                                     % type(key).__name__)
        if key not in fields:
            raise LocalProtocolError("field %d is not in the %s dialect" % (key, spec.name))
        numbers.append(key)
    numbers.sort()
    secondary = bool(numbers) and numbers[-1] > 64
    if secondary and 64 in message:
        raise LocalProtocolError("field 64: a message with a secondary bitmap carries its "
                                 "MAC in field 128")
    bitmap = bytearray(16 if secondary else 8)
    if secondary:
        bitmap[0] = 0x80
    parts = [mti.encode(), b""]
    for number in numbers:
        field = fields[number]
        value = message[number]
        if field.binary:
            if not isinstance(value, (bytes, bytearray)):
                raise LocalProtocolError("field %d (%s) must be bytes"
                                         % (number, field.name))
            raw = bytes(value)
        else:
            if type(value) is not str:
                raise LocalProtocolError("field %d (%s) must be str" % (number, field.name))
            try:
                raw = value.encode()
            except UnicodeError:
                raise LocalProtocolError("field %d: not ASCII" % number)
            if raw.strip(field.allowed) and _first_bad(raw, field.type, field.allowed) >= 0:
                raise LocalProtocolError("field %d (%s): character not allowed in type %s"
                                         % (number, field.name, field.type))
        size = len(raw)
        if field.length_type == FIXED:
            if size != field.max_len:
                raise LocalProtocolError("field %d (%s): must be exactly %d bytes, not %d"
                                         % (number, field.name, field.max_len, size))
        else:
            if size > field.max_len:
                raise LocalProtocolError("field %d (%s): %d bytes over the maximum %d"
                                         % (number, field.name, size, field.max_len))
            parts.append((field.prefix_format % size).encode())
        parts.append(raw)
        bit = number - 1
        bitmap[bit >> 3] |= 0x80 >> (bit & 7)
    parts[1] = bytes(bitmap)
    return b"".join(parts)


def decode(data, spec=DEFAULT_SPEC):
    """Decode bytes to a message dict; DecodeError names the field and the byte offset."""
    if type(data) is not bytes:
        data = bytes(data)
    end = len(data)
    if end < 4:
        raise DecodeError("truncated MTI", MTI, 0)
    bad = _first_bad(data[:4], None, DIGITS)
    if bad >= 0:
        raise DecodeError("MTI is not 4 digits", MTI, bad)
    if data[0] != 0x30:
        raise DecodeError("MTI version is not 0 (ISO 8583:1987)", MTI, 0)
    if end < 12:
        raise DecodeError("truncated primary bitmap", "bitmap", 4)
    if data[4] & 0x80:
        if end < 20:
            raise DecodeError("truncated secondary bitmap", 1, 12)
        if data[12:20] == _ZERO8:
            raise DecodeError("bit 1 set but the secondary bitmap is empty", 1, 12)
        if data[11] & 0x01:
            raise DecodeError("field 64 MAC in a message with a secondary bitmap", 64, 11)
        pos = 20
    else:
        pos = 12
    known = spec.known_bits
    for i in range(pos - 4):
        unknown = data[4 + i] & ~known[i] & 0xFF
        if unknown:
            bit = 0
            while not unknown & (0x80 >> bit):
                bit += 1
            raise DecodeError("bit set for a field the dialect does not define",
                              i * 8 + bit + 1, 4 + i)

    message = {MTI: data[:4].decode()}
    fields = spec.fields
    for i in range(pos - 4):
        byte = data[4 + i]
        if not byte:
            continue
        for bit in range(8):
            if not byte & (0x80 >> bit):
                continue
            number = i * 8 + bit + 1
            if number == 1:
                continue
            field = fields[number]
            start = pos
            prefix_digits = field.length_type
            if prefix_digits:
                value_at = pos + prefix_digits
                if value_at > end:
                    raise DecodeError("truncated length prefix", number, pos)
                length = 0
                for j in range(pos, value_at):
                    digit = data[j] - 48
                    if not 0 <= digit <= 9:
                        raise DecodeError("length prefix is not %d digits" % prefix_digits,
                                          number, j)
                    length = length * 10 + digit
                if length > field.max_len:
                    raise DecodeError("declared length %d over the maximum %d"
                                      % (length, field.max_len), number, pos)
                pos = value_at
            else:
                length = field.max_len
            stop = pos + length
            if stop > end:
                raise DecodeError("field needs %d bytes, %d left" % (length, end - pos),
                                  number, start)
            raw = data[pos:stop]
            if field.binary:
                message[number] = raw
            else:
                if raw.strip(field.allowed):  # fast path: empty when every byte is allowed
                    bad = _first_bad(raw, field.type, field.allowed)
                    if bad >= 0:
                        raise DecodeError("byte not allowed in type %s" % field.type,
                                          number, pos + bad)
                message[number] = raw.decode()
            pos = stop
    if pos != end:
        raise DecodeError("%d trailing bytes after the last field" % (end - pos), None, pos)
    return message


def mac_field(message):
    """64, or 128 when the message has (or will have) a secondary bitmap."""
    for key in message:
        if type(key) is int and 64 < key < 128:
            return 128
    return 64


def _mac_header(data):
    """(MAC field number, header length) of an encoded message; checks the MAC bit."""
    if len(data) < 12:
        raise DecodeError("truncated MTI or bitmap", "bitmap", 0)
    if data[4] & 0x80:
        if len(data) < 20:
            raise DecodeError("truncated secondary bitmap", 1, 12)
        number, flag, header = 128, data[19] & 0x01, 20
    else:
        number, flag, header = 64, data[11] & 0x01, 12
    if not flag:
        raise DecodeError("message has no MAC", number, header - 1)
    if len(data) < header + MAC_LENGTH:
        raise DecodeError("truncated MAC", number, header)
    return number, header


def mac_input(data):
    """The bytes the MAC covers: the whole message except the MAC value (its last 8 bytes).

    MTI and bitmaps are included, with the MAC bit set. Only the header is checked here:
    decode() a received message before verifying its MAC.
    """
    if type(data) is not bytes:
        data = bytes(data)
    _mac_header(data)
    return data[:-MAC_LENGTH]


def with_mac(data, mac):
    """`data` (encoded with a placeholder MAC) with the MAC value replaced by `mac`."""
    if not isinstance(mac, (bytes, bytearray)) or len(mac) != MAC_LENGTH:
        raise LocalProtocolError("a MAC is %d bytes" % MAC_LENGTH)
    try:
        return mac_input(data) + bytes(mac)
    except DecodeError as exc:
        raise LocalProtocolError("cannot set the MAC: %s" % exc)


def redacted(message, spec=DEFAULT_SPEC):
    """A copy of `message` safe for logs: PAN shown as BIN + last 4, other sensitive
    values replaced by their length."""
    out = {}
    for key in message:
        value = message[key]
        if type(key) is int and key in spec.fields and spec.fields[key].sensitive:
            if key == 2 and type(value) is str and len(value) >= 13:
                value = value[:6] + "*" * (len(value) - 10) + value[-4:]
            else:
                value = "<%d bytes>" % len(value)
        out[key] = value
    return out
