"""ISO 9564-1 PIN blocks: format 4 (AES) and format 0 (clear block).

Sources of expected values (each test names its own):
- psec: knovichikhin/psec tests/test_pinblock.py (commit 5de24cc00566bd19c7bcfd824f91e8e6908285c4),
  which includes the ep2 eft/pos 2000 Security Specification 8.0.0 section 8.4 vector.
- X9.24-3-2017 supplement p. 31 "Calculation of AES PIN Block Format 4", as transcribed
  in openemv/dukpt test/dukpt_aes128_test.c (commit a0a09627081600c10a56b904b704049e30f4cf99).
- WPAY developer hub, "AES 128-bit PIN Block or ISO Format 4",
  https://developerhub.wpay.com.au/cardsconnect/reference/aes-128-bit-pin-block-or-iso-format-4
"""

import gc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kapos.errors import SecurityError
from kapos.security import pinblock

H = bytes.fromhex


def fixed(hexfill):
    def random_bytes(n):
        assert n == 8
        return H(hexfill)

    return random_bytes


# -- format 4 ---------------------------------------------------------------


def test_format4_pin_and_pan_fields_x9_24_3_example():
    """X9.24-3-2017 supplement p. 31: PIN field 441234AAAAAAAAAA2F69ADDE2E9E7ACE and
    PAN field 44111111111111111000000000000000 for PIN 1234, PAN 4111111111111111
    (openemv/dukpt test/dukpt_aes128_test.c)."""
    field = pinblock.pin_field_iso4(bytearray(b"1234"), fixed("2F69ADDE2E9E7ACE"))
    assert bytes(field) == H("441234AAAAAAAAAA2F69ADDE2E9E7ACE")
    assert pinblock.pan_field_iso4("4111111111111111") == H("44111111111111111000000000000000")


def test_format4_pan_field_psec():
    """psec test_encode_pan_field_iso_4: 18-digit PAN -> 61122334455667788990000000000000."""
    assert pinblock.pan_field_iso4("112233445566778899") == H("61122334455667788990000000000000")


def test_format4_encipher_psec_deterministic():
    """psec test_encipher_pinblock_iso_4_det: key 0011..EEFF, PIN 1234, PAN 1234567890123456789,
    random fill FF..FF -> 28B41FDDD29B743E93124BD8E32D921E."""
    key = H("00112233445566778899AABBCCDDEEFF")
    block = pinblock.encipher_iso4(key, bytearray(b"1234"), "1234567890123456789", fixed("FFFFFFFFFFFFFFFF"))
    assert block == H("28B41FDDD29B743E93124BD8E32D921E")
    assert pinblock.decipher_iso4(key, block, "1234567890123456789") == bytearray(b"1234")


@pytest.mark.parametrize(
    "key,block,pan,pin",
    [
        # ep2 eft/pos 2000 Security Specification 8.0.0, 8.4 (via psec)
        ("C1D0F8FB4958670DBA40AB1F3752EF0D", "CC17F65586BFD0953010226C4FC5B3CA", "432198765432109870", b"1234"),
        # PAN shorter than 12 digits (psec)
        ("00112233445566778899AABBCCDDEEFF", "39B69B1B91FE05D48F7EF0D68EB2CBD6", "1", b"123456"),
    ],
)
def test_format4_decipher_published(key, block, pan, pin):
    """psec test_decipher_pinblock_iso_4 (first case: ep2 Security Specification 8.0.0 §8.4)."""
    assert pinblock.decipher_iso4(H(key), H(block), pan) == bytearray(pin)


def test_format4_aes256_wpay_example():
    """WPAY developer hub, AES-256 PIN key, PIN 1234, full 16-digit PAN 5237481234567895:
    step 1 = 147CC4356769D305F1423D06D08F22CC, PAN field 4523748123456789500..0,
    PIN block 060E768D21D709B5D2A3F9660A704B9D."""
    key = H("62CB437131C129DF001D42676011975150506E2A382145FD9BDEA7EC5A339F63")
    pan = "5237481234567895"
    field = pinblock.pin_field_iso4(bytearray(b"1234"), fixed("FFC853BBF9685D5E"))
    assert bytes(field) == H("441234AAAAAAAAAAFFC853BBF9685D5E")
    from kapos.security.aes import aes_encrypt_block

    assert aes_encrypt_block(key, field) == H("147CC4356769D305F1423D06D08F22CC")
    assert pinblock.pan_field_iso4(pan) == H("45237481234567895000000000000000")
    block = pinblock.encipher_iso4(key, bytearray(b"1234"), pan, fixed("FFC853BBF9685D5E"))
    assert block == H("060E768D21D709B5D2A3F9660A704B9D")
    assert pinblock.decipher_iso4(key, block, pan) == bytearray(b"1234")


@pytest.mark.parametrize(
    "key,block,pan,why",
    [
        ("E60B15B90ABDF14CEE337C97440F0D6E", "7D5AF4C33667A2098626027FB7A9A1B7", "4266229809609384667", "control 3"),
        ("C7BBEBA16C5AD97D5866450718C03750", "2F9C910447F17293EC95DEDE1E3CA201", "8220499325458689523", "non-digit"),
        ("820F6C7C12355BDFF1AB6CE12E8EED89", "CCF310A8300B46C925A86B1098089301", "939589847393485609", "fill B"),
        (
            "4FE3F0311936FBCE44F17159F1659CF09B2BF8913BB514A1",
            "51334B00A6CBA3EC7B1C6F871F060AFC",
            "2129100799029059903",
            "PIN length 3",
        ),
    ],
)
def test_format4_decipher_rejections_psec(key, block, pan, why):
    """psec test_decipher_pinblock_iso_4_exception: bad control nibble, non-digit PIN,
    wrong fill, PIN length 3 -- all SecurityError."""
    with pytest.raises(SecurityError):
        pinblock.decipher_iso4(H(key), H(block), pan)


@pytest.mark.parametrize(
    "field",
    [
        "541234AAAAAAAAAA548ED7FD65495950",  # control nibble 5
        "43123AAAAAAAAAAA548ED7FD65495950",  # length 3
        "4D1234567890123A548ED7FD65495950",  # length 13
        "441234ABCDEFABCD548ED7FD65495950",  # fill not A
        "4412D4AAAAAAAAAA548ED7FD65495950",  # non-digit
        "441234AAAAAAAAAA548ED7FD654959",  # 15 bytes
    ],
)
def test_format4_field_rejections_psec(field):
    """psec test_decode_pinblock_iso_4_exception (plus a length-13 case)."""
    with pytest.raises(SecurityError):
        pinblock.decode_pin_field_iso4(H(field))


def test_format4_decodes_psec_field():
    """psec test_decode_pin_field_iso_4: 441234AAAAAAAAAA548ED7FD65495950 -> 1234."""
    assert pinblock.decode_pin_field_iso4(H("441234AAAAAAAAAA548ED7FD65495950")) == bytearray(b"1234")


@pytest.mark.parametrize("pin", [b"123", b"1234567890123", b"123A", b"", b"12 4"])
def test_format4_rejects_bad_pins(pin):
    with pytest.raises(SecurityError) as err:
        pinblock.encipher_iso4(bytes(16), bytearray(pin), "4111111111111111", fixed("00" * 8))
    assert "123" not in str(err.value)


def test_rejects_str_pin_and_bad_pan_and_bad_random():
    with pytest.raises(SecurityError):
        pinblock.encipher_iso4(bytes(16), "1234", "4111111111111111", fixed("00" * 8))
    for pan in ("", "12345678901234567890", "41111111111111A1"):
        with pytest.raises(SecurityError):
            pinblock.encipher_iso4(bytes(16), bytearray(b"1234"), pan, fixed("00" * 8))
    with pytest.raises(SecurityError):
        pinblock.encipher_iso4(bytes(16), bytearray(b"1234"), "4111111111111111", lambda n: b"\x00" * 7)
    with pytest.raises(SecurityError):
        pinblock.decipher_iso4(bytes(16), bytes(15), "4111111111111111")


def test_wrong_key_or_pan_is_rejected():
    key = H("00112233445566778899AABBCCDDEEFF")
    block = pinblock.encipher_iso4(key, bytearray(b"1234"), "4111111111111111", fixed("0102030405060708"))
    with pytest.raises(SecurityError):
        pinblock.decipher_iso4(key[::-1], block, "4111111111111111")
    with pytest.raises(SecurityError):
        pinblock.decipher_iso4(key, block, "4111111111111112")


def test_pin_not_retained_and_plaintext_wiped(monkeypatch):
    """No reference to the caller's PIN survives, and the plaintext PIN field is wiped."""
    seen = []
    real = pinblock.aes_encrypt_block

    def spy(key, block):
        seen.append(block)
        return real(key, block)

    monkeypatch.setattr(pinblock, "aes_encrypt_block", spy)
    pin = bytearray(b"987654")
    before = len(gc.get_referrers(pin))
    pinblock.encipher_iso4(bytes(16), pin, "4111111111111111", fixed("1122334455667788"))
    assert len(gc.get_referrers(pin)) == before
    assert pin == bytearray(b"987654")  # caller's buffer untouched
    assert isinstance(seen[0], bytearray) and not any(seen[0])  # PIN field wiped


@settings(max_examples=80, deadline=None)
@given(
    pin=st.text("0123456789", min_size=4, max_size=12),
    pan=st.text("0123456789", min_size=1, max_size=19),
    key=st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    fill=st.binary(min_size=8, max_size=8),
)
def test_format4_round_trip(pin, pan, key, fill):
    block = pinblock.encipher_iso4(key, bytearray(pin.encode()), pan, lambda n: fill)
    assert len(block) == 16
    assert pinblock.decipher_iso4(key, block, pan) == bytearray(pin.encode())


# -- format 0 ---------------------------------------------------------------


@pytest.mark.parametrize(
    "pin,block",
    [
        (b"1234", "041261AAAAEDCBA9"),
        (b"123456789", "091261032D8DCBA9"),
        (b"1234567890", "0A1261032D82CBA9"),
        (b"123456789012", "0C1261032D8226A9"),
    ],
)
def test_format0_psec(pin, block):
    """psec test_encode_pinblock_iso_0 / test_decode_pinblock_iso_0, PAN 5555555551234567."""
    assert bytes(pinblock.clear_block_iso0(bytearray(pin), "5555555551234567")) == H(block)
    assert pinblock.decode_clear_block_iso0(H(block), "5555555551234567") == bytearray(pin)


@pytest.mark.parametrize(
    "block,pan",
    [
        ("241261AAAAEDCBA9", "5555555551234567"),  # control 2
        ("041261AAAAEDCB", "5555555551234567"),  # 7 bytes
        ("0F1261AAAAEDCBA9", "5555555551234567"),  # length 15
        ("021261AAAAEDCBA9", "5555555551234567"),  # length 2
        ("041261AAAAEDCBAA", "5555555551234567"),  # filler
        ("051261AAAAEDCBA9", "5555555551234567"),  # non-digit
        ("051261AAAAEDCBA9", "555555555123"),  # PAN too short
        ("051261AAAAEDCBA9", "5555555551234A"),  # PAN not numeric
    ],
)
def test_format0_rejections_psec(block, pan):
    """psec test_decode_pinblock_iso_0_exception."""
    with pytest.raises(SecurityError):
        pinblock.decode_clear_block_iso0(H(block), pan)


@settings(max_examples=50, deadline=None)
@given(pin=st.text("0123456789", min_size=4, max_size=12), pan=st.text("0123456789", min_size=13, max_size=19))
def test_format0_round_trip(pin, pan):
    block = pinblock.clear_block_iso0(bytearray(pin.encode()), pan)
    assert pinblock.decode_clear_block_iso0(block, pan) == bytearray(pin.encode())
