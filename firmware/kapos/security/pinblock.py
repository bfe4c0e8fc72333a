"""ISO 9564-1 PIN blocks (L1): format 4 (AES, enciphered) and format 0 (clear block).

Format 4 (16 bytes, AES):
  plaintext PIN field = control 4 | PIN length | PIN digits | fill 'A' up to
                        nibble 15 | 8 random bytes
  PAN field           = M | PAN digits | zeros, where M = PAN length - 12
                        (0..7); a PAN shorter than 12 digits is padded on the
                        left with zeros to 12 and M = 0
  enciphered block    = AES(K, AES(K, PIN field) XOR PAN field)
Decoding reverses the steps and validates control, length, digits and fill.

Format 0 (8 bytes, TDES era) is provided as clear block formation only:
  (0 | length | digits | fill F) XOR (0000 | 12 rightmost PAN digits without
  the check digit).

PIN digits are passed as a bytearray (or bytes) of ASCII digits, never kept,
and the intermediate plaintext buffers are wiped. Decoded PINs come back as a
bytearray the caller wipes (`kapos.compat.wipe`). Random fill comes from a
caller-supplied `random_bytes(n)`, so this module does no I/O. Error messages
say what is wrong, never a digit of the PIN or PAN.
"""

from kapos.compat import wipe
from kapos.errors import SecurityError
from kapos.security._util import xor_bytes
from kapos.security.aes import aes_decrypt_block, aes_encrypt_block

PIN_MIN = 4
PIN_MAX = 12
FORMAT0_CONTROL = 0
FORMAT4_CONTROL = 4
_FILL0 = 0xF
_FILL4 = 0xA
_ZERO = 0x30
_NINE = 0x39


def check_pin_digits(pin):
    """Raise SecurityError unless `pin` is 4-12 ASCII digits in bytes/bytearray."""
    if not isinstance(pin, (bytes, bytearray)):
        raise SecurityError("PIN must be a bytearray of ASCII digits")
    if not PIN_MIN <= len(pin) <= PIN_MAX:
        raise SecurityError("PIN must be 4 to 12 digits")
    for b in pin:
        if b < _ZERO or b > _NINE:
            raise SecurityError("PIN must contain only digits")


def pan_digits(pan, min_len=1, max_len=19):
    """The PAN as bytes of ASCII digits (from str, bytes or bytearray), validated."""
    if isinstance(pan, str):
        pan = pan.encode()
    pan = bytes(pan)
    if not min_len <= len(pan) <= max_len:
        raise SecurityError("PAN must be %d to %d digits" % (min_len, max_len))
    for b in pan:
        if b < _ZERO or b > _NINE:
            raise SecurityError("PAN must contain only digits")
    return pan


def _pack(nibbles):
    out = bytearray(len(nibbles) // 2)
    for i in range(len(out)):
        out[i] = (nibbles[2 * i] << 4) | nibbles[2 * i + 1]
    return out


def _pin_nibbles(control, pin, fill):
    """The 16 nibbles control | length | digits | fill, as a bytearray."""
    nib = bytearray(16)
    nib[0] = control
    nib[1] = len(pin)
    for i in range(16 - 2):
        nib[2 + i] = pin[i] - _ZERO if i < len(pin) else fill
    return nib


def _decode_pin_nibbles(field8, control, fill, name):
    """Validate the first 8 bytes of a PIN field; return the PIN as a bytearray.

    Messages name the failed check but never echo deciphered nibbles.
    """
    if field8[0] >> 4 != control:
        raise SecurityError("PIN block is not ISO %s (bad control nibble)" % name)
    n = field8[0] & 0x0F
    if not PIN_MIN <= n <= PIN_MAX:
        raise SecurityError("PIN block has an invalid PIN length")
    pin = bytearray(n)
    ok_digits = True
    ok_fill = True
    for i in range(14):
        byte = field8[1 + (i // 2)]
        nibble = (byte >> 4) if i % 2 == 0 else (byte & 0x0F)
        if i < n:
            ok_digits = ok_digits and nibble <= 9
            pin[i] = _ZERO + (nibble % 10)
        else:
            ok_fill = ok_fill and nibble == fill
    if not ok_digits or not ok_fill:
        wipe(pin)
        raise SecurityError("PIN block holds a non-digit or a bad fill")
    return pin


# -- format 4 -------------------------------------------------------------


def pin_field_iso4(pin, random_bytes):
    """Plaintext format 4 PIN field (16-byte bytearray; the caller wipes it)."""
    check_pin_digits(pin)
    rnd = random_bytes(8)
    if len(rnd) != 8:
        raise SecurityError("random_bytes(8) returned %d bytes" % len(rnd))
    nib = _pin_nibbles(FORMAT4_CONTROL, pin, _FILL4)
    field = _pack(nib)
    wipe(nib)
    field += bytes(rnd)
    return field


def pan_field_iso4(pan):
    """Format 4 PAN field (16 bytes) for a 1-19 digit PAN."""
    digits = pan_digits(pan)
    m = len(digits) - 12 if len(digits) > 12 else 0
    if len(digits) < 12:
        digits = b"0" * (12 - len(digits)) + digits
    nib = bytearray(32)
    nib[0] = m
    for i in range(len(digits)):
        nib[1 + i] = digits[i] - _ZERO
    return bytes(_pack(nib))


def encipher_iso4(key, pin, pan, random_bytes):
    """Enciphered ISO 9564-1 format 4 PIN block (16 bytes) under an AES key."""
    pan_field = pan_field_iso4(pan)
    field = pin_field_iso4(pin, random_bytes)
    try:
        intermediate = xor_bytes(aes_encrypt_block(key, field), pan_field)
        return aes_encrypt_block(key, intermediate)
    finally:
        wipe(field)


def decode_pin_field_iso4(field):
    """PIN digits (bytearray) from a plaintext format 4 PIN field, validated."""
    if len(field) != 16:
        raise SecurityError("format 4 PIN field must be 16 bytes, got %d" % len(field))
    return _decode_pin_nibbles(field[:8], FORMAT4_CONTROL, _FILL4, "format 4")


def decipher_iso4(key, block, pan):
    """Reverse `encipher_iso4`: PIN digits (bytearray) or SecurityError."""
    if len(block) != 16:
        raise SecurityError("format 4 PIN block must be 16 bytes, got %d" % len(block))
    pan_field = pan_field_iso4(pan)
    intermediate = xor_bytes(aes_decrypt_block(key, block), pan_field)
    field = bytearray(aes_decrypt_block(key, intermediate))
    try:
        return decode_pin_field_iso4(field)
    finally:
        wipe(field)


# -- format 0 (clear block only) -----------------------------------------


def _pan_field_iso0(pan):
    digits = pan_digits(pan, 13, 19)
    account = digits[-13:-1]  # 12 rightmost digits, check digit excluded
    nib = bytearray(16)
    for i in range(12):
        nib[4 + i] = account[i] - _ZERO
    return bytes(_pack(nib))


def clear_block_iso0(pin, pan):
    """Clear ISO 9564-1 format 0 PIN block (8-byte bytearray; the caller wipes it)."""
    pan_field = _pan_field_iso0(pan)
    check_pin_digits(pin)
    nib = _pin_nibbles(FORMAT0_CONTROL, pin, _FILL0)
    field = _pack(nib)
    wipe(nib)
    block = xor_bytes(field, pan_field)
    wipe(field)
    return block


def decode_clear_block_iso0(block, pan):
    """PIN digits (bytearray) from a clear format 0 block, validated."""
    if len(block) != 8:
        raise SecurityError("format 0 PIN block must be 8 bytes, got %d" % len(block))
    field = xor_bytes(block, _pan_field_iso0(pan))
    try:
        return _decode_pin_nibbles(field, FORMAT0_CONTROL, _FILL0, "format 0")
    finally:
        wipe(field)
