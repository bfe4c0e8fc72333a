"""What the ISO 14443 stack needs from a reader chip (the NFC "frontend").

`kapos.drivers.mfrc522.Mfrc522` implements it; another chip (PN532, ST25R) would too.
The protocol modules next to this one (iso14443a, isodep, mifare_classic, emv) only call
these methods, so they are tested against any frontend, real or emulated.

Conventions
- Timeouts are in milliseconds (int or float), measured from the end of our transmission
  to the start of the card's answer, as ISO/IEC 14443 defines frame waiting times.
- "No answer within the timeout" is a normal outcome (no card, card gone): the methods
  return None for it.
- A garbled answer (CRC, parity, framing, collision on a full-byte frame, more than the
  FIFO holds) raises CardReadError; a chip or bus fault raises HardwareError; a frame we
  must not send (too long) raises LocalProtocolError.
"""


class Frontend:
    def transceive(self, data, timeout_ms, tx_crc=True, rx_crc=True):
        """Send `data` (full bytes; CRC_A appended when tx_crc) and return the answer
        (bytes, CRC_A checked and removed when rx_crc) or None on timeout. With rx_crc
        False a short answer (e.g. a 4-bit MIFARE ACK) comes back in the low bits of
        its last byte."""
        raise NotImplementedError

    def transceive_bits(self, data, tx_last_bits, rx_align, timeout_ms):
        """Bit-oriented exchange without CRC (REQA/WUPA, anticollision).

        `tx_last_bits`: valid bits in the last byte sent (0 = all 8). `rx_align`: bit
        position in the first received byte where the first received bit goes.
        Returns None on timeout, else (data, rx_last_bits, coll_pos): rx_last_bits is the
        number of valid bits in the last byte (0 = 8); coll_pos is 0 without collision,
        else the 1-based position of the first collided bit counted in the received
        bytes as laid out (so it includes rx_align). Bits from the collision on are 0."""
        raise NotImplementedError

    def mf_authenticate(self, key_type, block, key, uid4, timeout_ms):
        """MIFARE Classic three-pass authentication done by the chip (Crypto1 in the
        reader IC). key_type 0x60 (key A) or 0x61 (key B). True when the card accepted
        the key (further frames are encrypted), False otherwise."""
        raise NotImplementedError

    def mf_stop_crypto(self):
        """Leave the encrypted MIFARE Classic session (before talking to another card)."""

    def delay_us(self, us):
        """Busy-wait `us` microseconds (startup frame guard time and such)."""
        raise NotImplementedError
