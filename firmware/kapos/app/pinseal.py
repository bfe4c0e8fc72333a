"""PIN sealing: the PIN digits become an ISO 9564 format 4 PIN block the moment entry ends.

The runtime hands the PIN buffer to a sealer and wipes the buffer right after. Until key
loading (DUKPT) is configured, the default sealer enciphers under a fixed, published
TEST key: fine for test cards and a test host, never for real cards (docs/security.md).
"""

import os

from kapos.compat import wipe
from kapos.errors import KaposError
from kapos.security import dukpt, pinblock

# A test key, public on purpose: AES-128 "00 11 22 ... FF". Replace it by loading keys.
TEST_PIN_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")


def pan_for_pin_block(card):
    """The PAN field source: the card's PAN, or for a closed-loop token its UID as a
    decimal number (tokens have no PAN; the host derives the same digits)."""
    pan = card.pan_for_host()
    if pan:
        return pan
    digits = str(int(card.token_id(), 16))
    return digits[-19:]


class PinSealer:
    def seal(self, buffer, length, card, ref=None):
        """Return (pin block bytes, KSN bytes or None). Must not keep the digits."""
        raise NotImplementedError


class TestKeyPinSealer(PinSealer):
    __test__ = False

    def __init__(self, key=TEST_PIN_KEY, random_bytes=os.urandom):
        self._key = key
        self._random = random_bytes

    def zeroize(self):
        self._key = None

    def seal(self, buffer, length, card, ref=None):
        if self._key is None:
            raise KaposError("no PIN key (erased after tamper): load keys")
        digits = bytearray(length)
        try:
            for i in range(length):
                digits[i] = buffer[i]
            block = pinblock.encipher_iso4(self._key, digits, pan_for_pin_block(card), self._random)
        finally:
            wipe(digits)
        return block, None


def make_test_pin_checker(bdk=None, key=TEST_PIN_KEY):
    """For the test bank: does the format 4 block hold the expected PIN? The block is under
    the DUKPT PIN key of the request's KSN (derived from `bdk`), or under the fixed test key."""

    def check(request, expected_pin):
        try:
            pin_key = key
            if request.get("ksn") and bdk is not None:
                pin_key = dukpt.host_derive_working_key(bdk, request["ksn"], dukpt.PIN_ENCRYPTION)
            digits = pinblock.decipher_iso4(pin_key, request["pin_block"], pan_for_pin_block(request["card"]))
        except Exception:
            return False
        try:
            return expected_pin is not None and bytes(digits) == expected_pin.encode()
        finally:
            wipe(digits)

    check.__test__ = False
    return check
