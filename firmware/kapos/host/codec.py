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
from kapos.host.spec import DEFAULT_SPEC, DIGITS, MAC_LENGTH, PLAN_CACHE, XN

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
    """The message's MTI as 4 ASCII bytes; LocalProtocolError when it is not valid."""
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
    if len(raw) != 4 or raw.strip(DIGITS):
        raise LocalProtocolError("MTI must be a str of 4 digits")
    if raw[0] != 0x30:
        raise LocalProtocolError("MTI version must be 0 (ISO 8583:1987)")
    return raw


def _remember(spec, key, plan):
    """Keep a plan in the spec's small cache (emptied when full: a host sees few layouts)."""
    if PLAN_CACHE:
        if len(spec.plans) >= PLAN_CACHE:
            spec.plans.clear()
        spec.plans[key] = plan
    return plan


def _encode_plan(spec, numbers, mac):
    """(bitmap bytes, rows) for sorted field `numbers`; rows are (number, allowed or None
    for binary, prefix format or "" for fixed, length, Field). `mac`: add the MAC bit."""
    secondary = bool(numbers) and numbers[-1] > 64
    if secondary and 64 in numbers:
        raise LocalProtocolError("field 64: a message with a secondary bitmap carries its "
                                 "MAC in field 128")
    bitmap = bytearray(16 if secondary else 8)
    if secondary:
        bitmap[0] = 0x80
    rows = []
    fields = spec.fields
    for number in numbers + ([128 if secondary else 64] if mac else []):
        bit = number - 1
        bitmap[bit >> 3] |= 0x80 >> (bit & 7)
    for number in numbers:
        field = fields[number]
        rows.append((number, None if field.binary else field.allowed,
                     field.prefix_format, field.max_len, field))
    return bytes(bitmap), tuple(rows)


def encode(message, spec=DEFAULT_SPEC, mac=False):
    """Encode a message dict to bytes; LocalProtocolError names the first bad field.

    mac=True: fields 64 and 128 of `message` are left out and the MAC field (64, or 128
    with a secondary bitmap) carries 8 zero bytes, for mac_input() and with_mac()."""
    parts = [_check_mti(message), b""]
    fields = spec.fields
    numbers = []
    for key in message:
        if type(key) is int:
            if key not in fields:
                raise LocalProtocolError("field %d is not in the %s dialect" % (key, spec.name))
            if not mac or (key != 64 and key != 128):
                numbers.append(key)
        elif key != MTI:
            raise LocalProtocolError("message keys are 'mti' and field numbers, not %s"
                                     % type(key).__name__)
    numbers.sort()
    key = tuple(numbers) + (0,) if mac else tuple(numbers)  # 0 is never a field number
    plan = spec.plans.get(key)
    if plan is None:
        plan = _remember(spec, key, _encode_plan(spec, numbers, mac))
    parts[1] = plan[0]
    for number, allowed, prefix_format, size_max, field in plan[1]:
        value = message[number]
        if allowed is None:
            if not isinstance(value, (bytes, bytearray)):
                raise LocalProtocolError("field %d (%s) must be bytes" % (number, field.name))
            raw = bytes(value)
        else:
            if type(value) is not str:
                raise LocalProtocolError("field %d (%s) must be str" % (number, field.name))
            try:
                raw = value.encode()
            except UnicodeError:
                raise LocalProtocolError("field %d: not ASCII" % number)
            if raw.strip(allowed) and _first_bad(raw, field.type, allowed) >= 0:
                raise LocalProtocolError("field %d (%s): character not allowed in type %s"
                                         % (number, field.name, field.type))
        size = len(raw)
        if not prefix_format:
            if size != size_max:
                raise LocalProtocolError("field %d (%s): must be exactly %d bytes, not %d"
                                         % (number, field.name, size_max, size))
        else:
            if size > size_max:
                raise LocalProtocolError("field %d (%s): %d bytes over the maximum %d"
                                         % (number, field.name, size, size_max))
            parts.append((prefix_format % size).encode())
        parts.append(raw)
    if mac:
        parts.append(_ZERO8)  # the MAC is always the last element
    return b"".join(parts)


def _decode_plan(spec, bitmap):
    """(fast rows, plain rows) of the fields `bitmap` (8 or 16 bytes) sets; DecodeError
    for a bad bitmap. A plain row is (number, length prefix digits, max length, allowed or
    None for binary, Field). The fast rows join each run of fixed-length text fields of one
    character class into one row (number, -1, run length, allowed, ((number, from, to),
    ...)): one check and one bytes-to-str for the run."""
    if len(bitmap) == 16:
        if bitmap[8:] == _ZERO8:
            raise DecodeError("bit 1 set but the secondary bitmap is empty", 1, 12)
        if bitmap[7] & 0x01:
            raise DecodeError("field 64 MAC in a message with a secondary bitmap", 64, 11)
    known = spec.known_bits
    for i in range(len(bitmap)):
        unknown = bitmap[i] & ~known[i] & 0xFF
        if unknown:
            bit = 0
            while not unknown & (0x80 >> bit):
                bit += 1
            raise DecodeError("bit set for a field the dialect does not define",
                              i * 8 + bit + 1, 4 + i)
    plain = []
    fast = []
    fields = spec.fields
    for number in range(2, len(bitmap) * 8 + 1):
        if bitmap[(number - 1) >> 3] & (0x80 >> ((number - 1) & 7)):
            field = fields[number]
            row = (number, field.length_type, field.max_len,
                   None if field.binary else field.allowed, field)
            plain.append(row)
            if row[1] or row[3] is None or field.type == XN:
                fast.append(row)
                continue
            last = fast[-1] if fast else row
            if last[1] > 0 or last[3] is not row[3] or not last[1] and last[4].type == XN:
                last = row  # not fixed text of this class: a new run starts here
            if last is row:
                fast.append(row)
            else:  # extend the run (a single fixed row becomes a run of one)
                members = last[4] if last[1] else ((last[0], 0, last[2]),)
                fast[-1] = (last[0], -1, last[2] + row[2], row[3],
                            members + ((number, last[2], last[2] + row[2]),))
    return tuple(fast), tuple(plain)


def decode(data, spec=DEFAULT_SPEC):
    """Decode bytes to a message dict; DecodeError names the field and the byte offset."""
    if type(data) is not bytes:
        data = bytes(data)
    end = len(data)
    if end < 4:
        raise DecodeError("truncated MTI", MTI, 0)
    mti = data[:4]
    if mti.strip(DIGITS):
        raise DecodeError("MTI is not 4 digits", MTI, _first_bad(mti, None, DIGITS))
    if data[0] != 0x30:
        raise DecodeError("MTI version is not 0 (ISO 8583:1987)", MTI, 0)
    if end < 12:
        raise DecodeError("truncated primary bitmap", "bitmap", 4)
    if data[4] & 0x80:
        if end < 20:
            raise DecodeError("truncated secondary bitmap", 1, 12)
        pos = 20
    else:
        pos = 12
    bitmap = data[4:pos]
    plan = spec.plans.get(bitmap)
    if plan is None:
        plan = _remember(spec, bitmap, _decode_plan(spec, bitmap))
    message = _decode_fields(data, pos, end, plan[0], mti)
    if message is None:  # a run failed its joint check: field by field finds the error
        message = _decode_fields(data, pos, end, plan[1], mti)
    return message


def _decode_fields(data, pos, end, rows, mti):
    """The message of `rows` read from data[pos:]; None when a run row is not valid."""
    message = {MTI: mti.decode()}
    for number, prefix_digits, length, allowed, field in rows:
        if prefix_digits:
            if prefix_digits < 0:  # a run of fixed text fields: `field` lists them
                stop = pos + length
                raw = data[pos:stop]
                if stop > end or raw.strip(allowed):
                    return None
                text = raw.decode()
                for member, start, stop in field:
                    message[member] = text[start:stop]
                pos += length
                continue
            value_at = pos + prefix_digits
            if value_at > end:
                raise DecodeError("truncated length prefix", number, pos)
            prefix = data[pos:value_at]
            if prefix.strip(DIGITS):
                raise DecodeError("length prefix is not %d digits" % prefix_digits,
                                  number, pos + _first_bad(prefix, None, DIGITS))
            max_len = length
            length = int(prefix)
            if length > max_len:
                raise DecodeError("declared length %d over the maximum %d"
                                  % (length, max_len), number, pos)
            start = pos
            pos = value_at
        else:
            start = pos
        stop = pos + length
        if stop > end:
            raise DecodeError("field needs %d bytes, %d left" % (length, end - pos),
                              number, start)
        raw = data[pos:stop]
        if allowed is None:
            message[number] = raw
        else:
            if raw.strip(allowed):  # fast path: empty when every byte is allowed
                bad = _first_bad(raw, field.type, allowed)
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
