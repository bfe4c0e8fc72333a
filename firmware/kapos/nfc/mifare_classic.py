"""MIFARE Classic (1K/4K/Mini) over a frontend whose chip does Crypto1 (MFRC522 MFAuthent).

    mc = MifareClassic(frontend, target.uid)
    mc.authenticate(4, b"\\xff" * 6)            # key A of sector 1
    data = mc.read_block(4)                     # 16 bytes
    mc.write_block(5, data)
    mc.halt()                                   # encrypted HLTA, then
    mc.stop()                                   # leave Crypto1 in the chip

Authentication is done by the reader chip: frames after it are encrypted and decrypted
there, so this module sends plain commands. A failed authentication puts the card back
in IDLE (select it again before retrying). Errors never carry key bytes.
"""

from kapos.compat import const
from kapos.errors import CardReadError, LocalProtocolError
from kapos.nfc import iso14443a
from kapos.nfc.crc import check_crc_a

KEY_A = const(0x60)
KEY_B = const(0x61)
CMD_READ = const(0x30)
CMD_WRITE = const(0xA0)
ACK = const(0x0A)
TRANSPORT_KEY = b"\xff\xff\xff\xff\xff\xff"

AUTH_TIMEOUT_MS = 5
READ_TIMEOUT_MS = 5
WRITE_TIMEOUT_MS = 10  # EEPROM programming


def sector_of(block):
    return block // 4 if block < 128 else 32 + (block - 128) // 16


def is_trailer(block):
    return block % 4 == 3 if block < 128 else block % 16 == 15


class MifareClassic:
    def __init__(self, fe, uid):
        self.fe = fe
        self.uid = bytes(uid)
        self.authenticated_sector = None

    def authenticate(self, block, key=TRANSPORT_KEY, key_type=KEY_A):
        """Authenticate the sector holding `block`; CardReadError when refused."""
        if len(key) != 6:
            raise LocalProtocolError("a MIFARE key is 6 bytes")
        if key_type != KEY_A and key_type != KEY_B:
            raise LocalProtocolError("key type must be KEY_A or KEY_B")
        self.authenticated_sector = None
        if not self.fe.mf_authenticate(key_type, block, bytes(key), self.uid[-4:], AUTH_TIMEOUT_MS):
            raise CardReadError("MIFARE authentication refused for block %d (key %s)"
                                % (block, "A" if key_type == KEY_A else "B"))
        self.authenticated_sector = sector_of(block)

    def read_block(self, block):
        resp = self.fe.transceive(bytes((CMD_READ, block)), READ_TIMEOUT_MS, rx_crc=False)
        if resp is None:
            raise CardReadError("no answer to READ of block %d" % block)
        if len(resp) == 1:
            raise CardReadError("card refused READ of block %d (NAK 0x%X)" % (block, resp[0] & 0x0F))
        if len(resp) != 18 or not check_crc_a(resp):
            raise CardReadError("READ of block %d: malformed answer" % block)
        return bytes(resp[:16])

    def write_block(self, block, data, allow_trailer=False):
        """Write 16 bytes. Sector trailers (keys and access bits) only with allow_trailer:
        a wrong trailer locks the sector for good."""
        if len(data) != 16:
            raise LocalProtocolError("a MIFARE Classic block is 16 bytes")
        if block == 0:
            raise LocalProtocolError("block 0 (manufacturer data) is read-only")
        if is_trailer(block) and not allow_trailer:
            raise LocalProtocolError("block %d is a sector trailer" % block)
        self._expect_ack(self.fe.transceive(bytes((CMD_WRITE, block)), WRITE_TIMEOUT_MS, rx_crc=False),
                         "WRITE", block)
        self._expect_ack(self.fe.transceive(bytes(data), WRITE_TIMEOUT_MS, rx_crc=False), "WRITE data", block)

    def _expect_ack(self, resp, what, block):
        if resp is None:
            raise CardReadError("no answer to %s of block %d" % (what, block))
        if len(resp) != 1 or resp[0] & 0x0F != ACK:
            raise CardReadError("card refused %s of block %d" % (what, block))

    def halt(self):
        """HLTA, still encrypted (send it before stop())."""
        return iso14443a.halt(self.fe)

    def stop(self):
        self.authenticated_sector = None
        self.fe.mf_stop_crypto()
