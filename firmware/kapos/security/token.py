"""Anti-clone data of a closed-loop NFC token (MIFARE Classic block 4).

A copied UID alone must not pay: the token's memory holds a counter and an AES-CMAC over
UID and counter under the system's token key, which only the issuer and the host know.
The terminal reads the block and passes it on; the host verifies it, and refuses a
counter lower than the newest it has seen for that UID (a re-issued card revokes copies
of the old one).

Block layout (16 bytes): "KT" | version 1 | counter (4, big-endian) | MAC (8) | 00
"""

from kapos.errors import SecurityError
from kapos.security.cmac import aes_cmac, aes_cmac_verify

MAGIC = b"KT"
VERSION = 1
MAC_LEN = 8
_DOMAIN = b"kapos-token-v1"


def _mac_input(uid, counter):
    return _DOMAIN + bytes((len(uid),)) + bytes(uid) + counter.to_bytes(4, "big")


def make_token_block(key, uid, counter):
    if not 0 <= counter <= 0xFFFFFFFF:
        raise SecurityError("token counter out of range")
    mac = aes_cmac(key, _mac_input(uid, counter))[:MAC_LEN]
    return MAGIC + bytes((VERSION,)) + counter.to_bytes(4, "big") + mac + b"\x00"


def verify_token_block(key, uid, block):
    """The block's counter when its MAC is right for this UID; SecurityError otherwise."""
    if block is None or len(block) != 16:
        raise SecurityError("no token data (a copied UID?)")
    block = bytes(block)
    if block[:2] != MAGIC or block[2] != VERSION:
        raise SecurityError("token data has an unknown format")
    counter = int.from_bytes(block[3:7], "big")
    if not aes_cmac_verify(key, _mac_input(uid, counter), block[7:15], tag_len=MAC_LEN):
        raise SecurityError("token MAC does not match the UID")
    return counter
