"""CRC_A, ISO/IEC 14443-3 Annex B (CRC-16/CCITT reflected, initial value 0x6363,
sent LSB first)."""

from hypothesis import given, strategies as st

from kapos.nfc.crc import CRC_A_INIT, append_crc_a, check_crc_a, crc_a, crc_a_bytes


def test_iso14443_3_annex_b_vectors():
    # ISO/IEC 14443-3 Annex B: CRC_A of 0x00 0x00 is 0xA0 0x1E, of 0x12 0x34 is 0x26 0xCF.
    assert crc_a_bytes(b"\x00\x00") == b"\xa0\x1e"
    assert crc_a_bytes(b"\x12\x34") == b"\x26\xcf"
    assert CRC_A_INIT == 0x6363
    assert crc_a(b"") == 0x6363


def test_well_known_frames():
    # HLTA and RATS (FSDI 8) as they appear on air (NXP AN10833 / ISO 14443-4 examples).
    assert append_crc_a(b"\x50\x00") == bytes.fromhex("500057cd")
    assert append_crc_a(b"\xe0\x80") == bytes.fromhex("e0803173")


def test_check():
    assert check_crc_a(bytes.fromhex("500057cd"))
    assert not check_crc_a(bytes.fromhex("500057ce"))
    assert not check_crc_a(b"\x50")


@given(st.binary(max_size=80))
def test_residue_is_zero_over_a_valid_frame(data):
    frame = append_crc_a(data)
    assert check_crc_a(frame)
    assert crc_a(frame) == 0


@given(st.binary(min_size=1, max_size=40), st.integers(0, 7))
def test_any_single_bit_flip_is_detected(data, bit):
    frame = bytearray(append_crc_a(data))
    frame[0] ^= 1 << bit
    assert not check_crc_a(bytes(frame))
