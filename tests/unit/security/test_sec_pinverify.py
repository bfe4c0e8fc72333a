"""Host-side PIN verification values (kapos scheme: truncated AES-CMAC, see pinverify.py).

No published vectors exist for this kapos-specific scheme; the test pins it to its
definition using the RFC 4493-verified CMAC (test_sec_aes_cmac.py).
"""

import pytest

from kapos.errors import SecurityError
from kapos.security import pinverify
from kapos.security.cmac import aes_cmac

KEY = bytes(range(16))
PAN = "4111111111111111"


def test_pvv_is_truncated_cmac_of_its_definition():
    pvv = pinverify.make_pvv(KEY, PAN, bytearray(b"1234"))
    assert pvv == aes_cmac(KEY, b"kapos-pvv-v1\x004111111111111111\x001234")[:8]
    assert len(pvv) == pinverify.PVV_LEN == 8


def test_check_pvv():
    pvv = pinverify.make_pvv(KEY, PAN, bytearray(b"1234"))
    assert pinverify.check_pvv(KEY, PAN, bytearray(b"1234"), pvv)
    assert not pinverify.check_pvv(KEY, PAN, bytearray(b"1235"), pvv)
    assert not pinverify.check_pvv(KEY, "4111111111111112", bytearray(b"1234"), pvv)
    assert not pinverify.check_pvv(bytes(16), PAN, bytearray(b"1234"), pvv)
    assert not pinverify.check_pvv(KEY, PAN, bytearray(b"1234"), pvv[:7])
    flipped = bytearray(pvv)
    flipped[7] ^= 1
    assert not pinverify.check_pvv(KEY, PAN, bytearray(b"1234"), bytes(flipped))


def test_encoding_is_unambiguous():
    # same digit string split differently between PAN and PIN must not collide
    a = pinverify.make_pvv(KEY, "41111111111111111", bytearray(b"2345"))
    b = pinverify.make_pvv(KEY, "4111111111111111", bytearray(b"12345"))
    assert a != b


@pytest.mark.parametrize("pin", [b"123", b"1234567890123", b"12a4"])
def test_bad_pin_rejected(pin):
    with pytest.raises(SecurityError):
        pinverify.make_pvv(KEY, PAN, bytearray(pin))


def test_pin_buffer_untouched():
    pin = bytearray(b"0000")
    pinverify.make_pvv(KEY, PAN, pin)
    assert pin == bytearray(b"0000")
