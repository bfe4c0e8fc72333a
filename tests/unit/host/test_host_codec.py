"""kapos.host.codec: round trips, every decode rejection (field + offset), encode refusals.

Formats from ISO 8583:1987 (references.md, "ISO 8583:1987 terminal message set").
"""

import pytest

from host_samples import ICC, KSN, MAC, PAN, PIN_BLOCK, TRACK2, every_mti, sale
from kapos.errors import DecodeError, LocalProtocolError, RemoteProtocolError
from kapos.host import codec
from kapos.host.codec import decode, encode, mac_field, mac_input, redacted, with_mac
from kapos.host.spec import DEFAULT_SPEC, FIELDS, FIXED, LLLVAR, LLVAR, Spec

SAMPLES = every_mti()


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize("name,message", SAMPLES, ids=[s[0] for s in SAMPLES])
def test_round_trip_every_mti(name, message):
    data = encode(message)
    assert decode(data) == message
    assert encode(decode(data)) == data


def test_wire_layout_of_a_small_message():
    # 0800 echo: MTI, binary primary bitmap with bit 1 (secondary present), bits 7 11 41,
    # secondary bitmap with bit 70, then the fields in order, ASCII.
    message = {"mti": "0800", 7: "1125143015", 11: "000050", 41: "KAPOS001", 70: "301"}
    data = encode(message)
    assert data[:4] == b"0800"
    assert data[4:12] == bytes.fromhex("8220000000800000")
    assert data[12:20] == bytes.fromhex("0400000000000000")
    assert data[20:] == b"1125143015" + b"000050" + b"KAPOS001" + b"301"


def test_llvar_and_lllvar_prefixes_are_ascii_decimal_byte_counts():
    data = encode({"mti": "0200", 2: PAN, 55: ICC})
    assert data[12:14] == b"16" and data[14:30] == PAN.encode()
    assert data[30:33] == b"%03d" % len(ICC) and data[33:] == ICC


def test_no_secondary_bitmap_without_secondary_fields():
    data = encode({"mti": "0210", 3: "000000", 39: "00", 64: MAC})
    assert not data[4] & 0x80
    assert len(data) == 4 + 8 + 6 + 2 + 8


def test_decoded_value_types():
    message = decode(encode(sale()))
    assert message["mti"] == "0200"
    assert isinstance(message[35], str) and isinstance(message[4], str)
    assert message[52] == PIN_BLOCK and isinstance(message[52], bytes)
    assert message[53] == KSN and message[64] == MAC


def test_decode_accepts_bytearray_and_memoryview():
    data = encode(sale())
    assert decode(bytearray(data)) == decode(memoryview(data)) == decode(data)


# ---------------------------------------------------------------- decode rejections

def _fields(*pairs):
    """A bitmap (8 or 16 bytes) with the given field bits set."""
    numbers = list(pairs)
    size = 16 if any(n > 64 for n in numbers) else 8
    bm = bytearray(size)
    if size == 16:
        bm[0] |= 0x80
    for n in numbers:
        bm[(n - 1) // 8] |= 0x80 >> ((n - 1) % 8)
    return bytes(bm)


def _reject(data, field, offset):
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert (info.value.field, info.value.offset) == (field, offset), str(info.value)
    assert isinstance(info.value, RemoteProtocolError)
    return info.value


def test_decode_error_names_field_and_offset_in_the_message():
    error = _reject(b"0200" + _fields(3) + b"00A000", 3, 14)
    assert "field 3" in str(error) and "offset 14" in str(error)


@pytest.mark.parametrize("data", [b"", b"0", b"020"])
def test_truncated_mti(data):
    _reject(data, "mti", 0)


def test_mti_not_digits():
    _reject(b"02X0" + _fields(3) + b"000000", "mti", 2)


def test_mti_version_not_1987():
    _reject(b"1200" + _fields(3) + b"000000", "mti", 0)


def test_truncated_primary_bitmap():
    _reject(b"0200" + b"\x20\x00\x00", "bitmap", 4)


def test_truncated_secondary_bitmap():
    _reject(b"0800" + b"\x80" + bytes(7) + b"\x00\x00", 1, 12)


def test_secondary_bitmap_bit_set_but_empty():
    _reject(b"0800" + b"\x82" + bytes(7) + bytes(8) + b"1125143015", 1, 12)


def test_unknown_field_in_primary_bitmap():
    # field 5 (settlement amount) is standard but not in this dialect: byte 0 of bitmap
    _reject(b"0200" + _fields(3, 5) + b"000000" + b"000000001234", 5, 4)


def test_unknown_field_in_secondary_bitmap():
    # field 100 lives in bitmap byte 12 -> message offset 4 + 12 = 16
    _reject(b"0800" + _fields(70, 100) + b"301", 100, 16)


def test_bit_65_tertiary_bitmap_is_not_used():
    _reject(b"0800" + _fields(65, 70) + bytes(8) + b"301", 65, 12)


def test_mac_64_with_secondary_bitmap():
    _reject(b"0800" + _fields(64, 70) + MAC + b"301", 64, 11)


def test_truncated_length_prefix():
    _reject(b"0200" + _fields(2) + b"1", 2, 12)


def test_non_digit_in_length_prefix():
    _reject(b"0200" + _fields(2) + b"1A" + PAN.encode(), 2, 13)


def test_non_digit_in_lllvar_prefix():
    _reject(b"0200" + _fields(3, 55) + b"000000" + b"0x5" + ICC, 55, 19)


def test_declared_length_over_the_field_maximum():
    _reject(b"0200" + _fields(2) + b"20" + b"4" * 20, 2, 12)
    _reject(b"0200" + _fields(35) + b"38" + b"4" * 38, 35, 12)
    _reject(b"0200" + _fields(53) + b"17" + bytes(17), 53, 12)
    _reject(b"0200" + _fields(55) + b"256" + bytes(256), 55, 12)


def test_declared_length_past_the_end():
    _reject(b"0200" + _fields(3, 35) + b"000000" + b"37" + b"4" * 36, 35, 18)


def test_fixed_field_past_the_end():
    _reject(b"0200" + _fields(3, 4) + b"000000" + b"00000000123", 4, 18)


def test_missing_field_after_bitmap():
    _reject(b"0200" + _fields(3, 11), 3, 12)


def test_non_digit_in_numeric_field():
    _reject(b"0200" + _fields(3, 4) + b"000000" + b"0000000012 4", 4, 28)


def test_bad_characters_per_type():
    # an: no space; ans: no control byte; z: no letter; x+n: C/D then digits
    _reject(b"0210" + _fields(39) + b"0 ", 39, 13)
    _reject(b"0200" + _fields(41) + b"KAPOS\x00" + b"01", 41, 17)
    _reject(b"0200" + _fields(41) + b"KAPOS\xe901", 41, 17)
    _reject(b"0200" + _fields(35) + b"05" + b"47A17", 35, 16)
    _reject(b"0500" + _fields(97) + b"X" + b"0" * 16, 97, 20)
    _reject(b"0500" + _fields(97) + b"C" + b"0" * 15 + b"-", 97, 36)


def test_trailing_bytes():
    data = encode(sale())
    _reject(data + b"\x00", None, len(data))


def test_value_of_a_sensitive_field_never_appears_in_an_error():
    secret_pan = "4761739001X10010"  # letter inside the PAN
    error = _reject(b"0200" + _fields(2) + b"16" + secret_pan.encode(), 2, 24)
    assert "4761739001" not in str(error) and "10010" not in str(error)
    track = "4761739001010010=2812201114380440000Q"
    error = _reject(b"0200" + _fields(35) + b"37" + track.encode(), 35, 50)
    assert "4761739001010010" not in str(error)


# ---------------------------------------------------------------- encode refusals

def _refuse(message, field_text=None):
    with pytest.raises(LocalProtocolError) as info:
        encode(message)
    if field_text is not None:
        assert field_text in str(info.value)
    return info.value


@pytest.mark.parametrize("mti", ["200", "02000", "02X0", "1200", 200, None, "٠٢٠٠"])
def test_refuses_bad_mti(mti):
    _refuse({"mti": mti, 3: "000000"})


def test_refuses_missing_mti_and_non_dict():
    _refuse({3: "000000"})
    _refuse([("mti", "0200")])


@pytest.mark.parametrize("number", [1, 5, 65, 100, 129, 0, -1])
def test_refuses_unknown_fields(number):
    _refuse({"mti": "0200", number: "000000"}, "field %d" % number)


def test_refuses_non_integer_keys():
    _refuse({"mti": "0200", "3": "000000"}, "keys")
    _refuse({"mti": "0200", True: "000000"}, "keys")


def test_refuses_over_maximum_naming_the_field():
    _refuse({"mti": "0200", 2: "4" * 20}, "field 2")
    _refuse({"mti": "0200", 35: TRACK2 + "0"}, "field 35")
    _refuse({"mti": "0200", 48: "x" * 1000}, "field 48")
    _refuse({"mti": "0200", 53: bytes(17)}, "field 53")
    _refuse({"mti": "0200", 55: bytes(256)}, "field 55")


def test_fixed_fields_are_never_padded():
    _refuse({"mti": "0200", 4: "1234"}, "field 4")  # no implicit zero-left-padding
    _refuse({"mti": "0200", 41: "T1"}, "field 41")  # no implicit space padding
    _refuse({"mti": "0200", 52: bytes(8)}, "field 52")  # 16-byte AES PIN block only
    _refuse({"mti": "0200", 64: MAC[:4]}, "field 64")


@pytest.mark.parametrize("number,value", [
    (3, "00000A"), (4, "00000000123 "), (11, "٠٠٠٠٠١"),  # n: ASCII digits only
    (39, "0 "), (37, "ABC-12345678"),  # an
    (41, "KAPOS\t01"), (42, "MERCHANT\u00e900001"),  # ans
    (35, "4761739001010010D2812"),  # z: '=' separator, no letters
    (97, "+0000000000000001"), (97, "C000000000000000X"),  # x+n
    (2, "\ud800"),  # not encodable
])
def test_refuses_characters_outside_the_type(number, value):
    _refuse({"mti": "0200", number: value}, "field %d" % number)


def test_refuses_wrong_value_types():
    _refuse({"mti": "0200", 4: 1234}, "field 4")
    _refuse({"mti": "0200", 3: b"000000"}, "field 3")
    _refuse({"mti": "0200", 52: PIN_BLOCK.hex()}, "field 52")


def test_refuses_mac_64_with_secondary_fields():
    _refuse({"mti": "0800", 64: MAC, 70: "301"}, "field 64")


def test_refusal_never_shows_a_sensitive_value():
    error = _refuse({"mti": "0200", 2: PAN + "0000"}, "field 2")
    assert PAN not in str(error)
    error = _refuse({"mti": "0200", 35: TRACK2.replace("=", "X")})
    assert "4761739001010010" not in str(error)


# ---------------------------------------------------------------- MAC helpers

def test_mac_field_follows_the_bitmap():
    assert mac_field(sale()) == 64
    assert mac_field({"mti": "0800", 70: "301"}) == 128
    assert mac_field({"mti": "0800", 128: MAC}) == 64  # only a MAC: no secondary needed


def test_mac_input_is_everything_but_the_mac_value():
    data = encode(sale())
    assert mac_input(data) == data[:-8]
    assert data[11] & 0x01  # the MAC bit itself is covered
    recon = dict(every_mti())["0500 reconciliation"]
    data = encode(recon)
    assert mac_input(data) == data[:-8] and data[19] & 0x01


def test_with_mac_replaces_the_placeholder():
    message = sale()
    message[64] = bytes(8)
    data = with_mac(encode(message), MAC)
    assert decode(data)[64] == MAC
    assert data == encode(sale())


def test_mac_input_rejects_messages_without_mac():
    message = sale()
    del message[64]
    with pytest.raises(DecodeError) as info:
        mac_input(encode(message))
    assert info.value.field == 64
    with pytest.raises(DecodeError):
        mac_input(b"0200")
    with pytest.raises(LocalProtocolError):
        with_mac(encode(message), MAC)
    with pytest.raises(LocalProtocolError):
        with_mac(encode(sale()), MAC[:7])


# ---------------------------------------------------------------- redaction

def test_redacted_hides_sensitive_values():
    message = sale()
    message[2] = PAN
    message[55] = ICC
    safe = redacted(message)
    assert safe[2] == "476173******0010"
    assert safe[35] == "<37 bytes>" and safe[52] == "<16 bytes>" and safe[55] == "<%d bytes>" % len(ICC)
    assert safe[4] == message[4] and safe[53] == KSN
    assert "4761739001010010" not in repr(safe)
    assert message[2] == PAN  # the original is untouched


# ---------------------------------------------------------------- the spec itself

def test_spec_rows_are_consistent():
    assert DEFAULT_SPEC.name == "kapos-87"
    assert DEFAULT_SPEC.numbers == tuple(sorted(row[0] for row in FIELDS))
    for number in (2, 3, 4, 7, 11, 12, 13, 14, 22, 24, 25, 35, 37, 38, 39, 41, 42, 48, 49,
                   52, 53, 54, 55, 64, 70, 74, 75, 76, 77, 86, 87, 88, 89, 90, 97, 128):
        assert number in DEFAULT_SPEC
    for number in (2, 35, 52, 55):
        assert DEFAULT_SPEC.field(number).sensitive
    assert not DEFAULT_SPEC.field(4).sensitive


@pytest.mark.parametrize("number,ftype,ltype,size", [
    (2, "n", LLVAR, 19), (3, "n", FIXED, 6), (4, "n", FIXED, 12), (7, "n", FIXED, 10),
    (11, "n", FIXED, 6), (14, "n", FIXED, 4), (22, "n", FIXED, 3), (35, "z", LLVAR, 37),
    (37, "an", FIXED, 12), (38, "an", FIXED, 6), (39, "an", FIXED, 2), (41, "ans", FIXED, 8),
    (42, "ans", FIXED, 15), (48, "ans", LLLVAR, 999), (49, "n", FIXED, 3),
    (52, "b", FIXED, 16), (53, "b", LLVAR, 16), (54, "an", LLLVAR, 120),
    (55, "b", LLLVAR, 255), (64, "b", FIXED, 8), (70, "n", FIXED, 3), (90, "n", FIXED, 42),
    (97, "x+n", FIXED, 17), (128, "b", FIXED, 8),
])
def test_field_formats(number, ftype, ltype, size):
    field = DEFAULT_SPEC.field(number)
    assert (field.type, field.length_type, field.max_len) == (ftype, ltype, size)


def test_spec_refuses_impossible_rows():
    for row in [(1, "x", "n", FIXED, 4, "ascii"), (65, "x", "b", FIXED, 8, "binary"),
                (5, "x", "n", LLVAR, 100, "ascii"), (5, "x", "b", FIXED, 8, "ascii"),
                (5, "x", "q", FIXED, 8, "ascii"), (5, "x", "n", 1, 8, "ascii")]:
        with pytest.raises(ValueError):
            Spec([row])
    with pytest.raises(ValueError):
        Spec([(5, "x", "n", FIXED, 4, "ascii"), (5, "y", "n", FIXED, 4, "ascii")])


def test_a_custom_spec_drives_the_codec():
    spec = DEFAULT_SPEC.replace([(5, "Amount, settlement", "n", FIXED, 12, "ascii")], "x")
    message = {"mti": "0200", 4: "000000001234", 5: "000000001234"}
    assert decode(encode(message, spec), spec) == message
    with pytest.raises(LocalProtocolError):
        encode(message)
    with pytest.raises(DecodeError):
        decode(encode(message, spec))


def test_codec_module_exports():
    assert codec.MTI == "mti"


def test_the_host_keeps_plans_and_micropython_does_not():
    """The plan cache is on wherever the interpreter is CPython, under pytest too (where
    `import micropython` used to find tests/micropython/ and turn it off for the suite)."""
    from kapos.compat import MICROPYTHON
    from kapos.host import spec

    assert (spec.PLAN_CACHE == 0) == MICROPYTHON
    kept = Spec(FIELDS, DEFAULT_SPEC.name)
    encode(SAMPLES[0][1], kept)
    assert bool(kept.plans) != MICROPYTHON


def test_a_kept_plan_gives_what_a_first_encoding_gives():
    """Plans are kept per set of fields and MAC flag: the same fields in another order,
    with or without the MAC field, give what an encoding with nothing kept gives; a bad
    value or a key that equals a field number without being an int is still refused."""
    spec = Spec(FIELDS, DEFAULT_SPEC.name)
    for name, message in SAMPLES:
        keys = [k for k in message if k not in (64, 128)]
        for order in [keys[::-1]] + [keys[i:] + keys[:i] for i in (1, len(keys) // 2)]:
            shuffled = {k: message[k] for k in order}
            expected = {}
            for mac in (False, True):  # each with nothing kept
                spec.plans.clear()
                expected[mac] = encode(shuffled, spec, mac=mac)
            for mac in (False, True, False, True):  # each after the other's kept plan
                assert encode(dict(shuffled), spec, mac=mac) == expected[mac]
        number = next(k for k in message if type(k) is int and k not in (64, 128))
        encode(message, spec)
        with pytest.raises(LocalProtocolError, match="not float"):
            encode({(float(k) if k == number else k): v for k, v in message.items()}, spec)
        bad = dict(message)
        bad[number] = 12345  # not a str / bytes: refused under a kept plan too
        with pytest.raises(LocalProtocolError, match="field %d" % number):
            encode(bad, spec)
