"""Interop: pyiso8583 (an independent codec) reads and writes our messages identically.

The pyiso8583 spec is its stock `default` ASCII/binary spec (ISO 8583:1987 formats,
binary bitmaps, PIN/MAC/ICC binary) with only our documented deviations overridden:
field 52 is 16 bytes (ISO 9564 format 4 AES PIN block) and field 53 is a binary LLVAR
KSN. Everything else in our dialect is the standard's.
"""

import copy

import pytest

iso8583 = pytest.importorskip("iso8583")
from iso8583.specs import default as PYISO_DEFAULT  # noqa: E402

from dialect_messages import from_pyiso, to_pyiso  # noqa: E402
from host_samples import MAC, PAN, every_mti, sale  # noqa: E402
from kapos.host.codec import decode, encode  # noqa: E402
from kapos.host.spec import DEFAULT_SPEC  # noqa: E402


def pyiso_spec():
    spec = copy.deepcopy(PYISO_DEFAULT)
    spec["52"] = dict(spec["52"], max_len=16)
    spec["53"] = {"data_enc": "b", "len_enc": "ascii", "len_type": 2, "max_len": 16,
                  "desc": "Security Related Control Information (KSN)"}
    return spec


def test_our_dialect_differs_from_pyiso8583_default_only_where_documented():
    differing = []
    for number in DEFAULT_SPEC.numbers:
        ours = DEFAULT_SPEC.field(number)
        theirs = PYISO_DEFAULT[str(number)]
        same = (theirs["len_type"] == ours.length_type
                and theirs["max_len"] >= ours.max_len
                and (theirs["data_enc"] == "b") == ours.binary)
        if not same or theirs["max_len"] != ours.max_len:
            differing.append(number)
    # 54: pyiso8583's default allows 240 (ISO 8583:1993); 1987 says an..120
    assert differing == [52, 53, 54]


def test_a_0200_decoded_by_pyiso8583_gives_the_same_field_values():
    message = sale()
    message[2] = PAN
    message[14] = "2812"
    data = encode(message)
    decoded, _ = iso8583.decode(bytearray(data), pyiso_spec())
    assert decoded["t"] == "0200"
    for number, value in message.items():
        if number == "mti":
            continue
        theirs = decoded[str(number)]
        assert (bytes.fromhex(theirs) if isinstance(value, bytes) else theirs) == value
    assert from_pyiso(decoded) == message


@pytest.mark.parametrize("name,message", every_mti(), ids=[s[0] for s in every_mti()])
def test_every_sample_is_read_and_written_identically(name, message):
    spec = pyiso_spec()
    ours = encode(message)
    theirs, _ = iso8583.encode(to_pyiso(message), spec)
    assert bytes(theirs) == ours
    decoded, _ = iso8583.decode(bytearray(ours), spec)
    assert from_pyiso(decoded) == message
    assert decode(bytes(theirs)) == message


def test_mac_field_position_agrees():
    message = sale()
    decoded, encoded = iso8583.decode(bytearray(encode(message)), pyiso_spec())
    assert bytes.fromhex(decoded["64"]) == MAC
