"""PIN sealing: the PIN digits become an ISO 9564 format 4 PIN block the moment entry ends.

The runtime hands the PIN buffer to a sealer and wipes the buffer right after. Until key
loading (DUKPT) is configured, the default sealer enciphers under a fixed, published
TEST key: fine for test cards and a test host, never for real cards (docs/security.md).
"""

import os

from kapos.compat import wipe
from kapos.errors import KaposError
from kapos.security import dukpt, pinblock
from kapos.simdata.keys import TEST_PIN_KEY  # public on purpose; replace it by loading keys


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
