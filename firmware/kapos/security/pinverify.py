"""Host-side PIN verification values (L1): store a PVV, never the PIN.

PVV = the first 8 bytes of AES-CMAC(host PVV key, "kapos-pvv-v1" 00 PAN 00 PIN),
PAN and PIN as ASCII digits. The separators make the encoding unambiguous
(both fields are digits only). This is a kapos scheme, not the Visa PVV.

The PVV is only as secret as the host key: with the key, a 4-digit PIN is
found by trying 10,000 values, so the key belongs in the host's key store and
the PVV table alone reveals nothing. Checking takes the same time wherever
the values differ.
"""

from kapos.compat import wipe
from kapos.security._util import constant_time_equal
from kapos.security.cmac import aes_cmac
from kapos.security.pinblock import check_pin_digits, pan_digits

PVV_LEN = 8
_DOMAIN = b"kapos-pvv-v1"


def make_pvv(key, pan, pin):
    """8-byte PVV for a PAN (str/bytes of digits) and PIN (bytearray of digits)."""
    check_pin_digits(pin)
    message = bytearray(_DOMAIN)
    message.append(0)
    message += pan_digits(pan)
    message.append(0)
    message += pin
    try:
        return aes_cmac(key, message)[:PVV_LEN]
    finally:
        wipe(message)


def check_pvv(key, pan, pin, pvv):
    """True when `pin` matches the stored `pvv` for this PAN (constant time)."""
    return constant_time_equal(make_pvv(key, pan, pin), bytes(pvv))
