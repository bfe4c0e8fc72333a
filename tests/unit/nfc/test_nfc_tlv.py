"""The small BER-TLV reader used for EMV answers (EMV Book 3 Annex B)."""

import pytest
from hypothesis import given, strategies as st

from kapos.errors import DecodeError
from kapos.nfc import tlv

FCI = bytes.fromhex(
    "6f23840e325041592e5359532e4444463031a511bf0c0e610c4f07a0000000031010870101")


def test_parse_and_find_nested():
    top = tlv.parse(FCI)
    assert [t for t, _ in top] == [0x6F]
    assert tlv.find(FCI, 0x84) == b"2PAY.SYS.DDF01"
    assert tlv.find(FCI, 0x4F) == bytes.fromhex("a0000000031010")  # inside 6F/A5/BF0C/61
    assert tlv.find(FCI, 0x87) == b"\x01"
    assert tlv.find(FCI, 0x57) is None


def test_multibyte_tags_long_lengths_and_padding():
    value = bytes(range(200))
    data = b"\x00\x00" + tlv.encode(0x9F38, b"\x9f\x66\x04") + tlv.encode(0xDF8101, value) + b"\xff"
    assert tlv.find(data, 0x9F38) == b"\x9f\x66\x04"
    assert tlv.find(data, 0xDF8101) == value
    assert tlv.encode(0x5A, b"\x01" * 300)[:4] == b"\x5a\x82\x01\x2c"


def test_find_all():
    data = tlv.encode(0x70, tlv.encode(0x61, tlv.encode(0x4F, b"A")) + tlv.encode(0x61, tlv.encode(0x4F, b"B")))
    assert tlv.find_all(data, 0x4F) == [b"A", b"B"]


def test_dol():
    assert tlv.parse_dol(bytes.fromhex("9F66049F02065F2A029A039C019F3704")) == [
        (0x9F66, 4), (0x9F02, 6), (0x5F2A, 2), (0x9A, 3), (0x9C, 1), (0x9F37, 4)]


@pytest.mark.parametrize("data, offset", [
    (b"\x5a\x05\x01\x02", 2),  # value runs past the end
    (b"\x9f", 1),  # tag runs past the end
    (b"\x5a", 1),  # no length
    (b"\x5a\x84\x00\x00\x00\x01", 1),  # 4-byte length form
])
def test_errors_name_the_offset(data, offset):
    with pytest.raises(DecodeError) as exc:
        tlv.parse(data)
    assert exc.value.offset == offset


@given(st.lists(st.tuples(st.sampled_from([0x57, 0x5A, 0x9F38, 0xBF0C, 0x9F1F]), st.binary(max_size=300)), max_size=5))
def test_encode_parse_round_trip(objects):
    data = b"".join(tlv.encode(t, v) for t, v in objects)
    assert tlv.parse(data) == objects


@given(st.binary(max_size=200))
def test_garbage_raises_only_decode_error(data):
    try:
        tlv.parse(data)
        tlv.find(data, 0x57)
        tlv.parse_dol(data)
    except DecodeError:
        pass
