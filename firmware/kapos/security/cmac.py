"""AES-CMAC (RFC 4493 / NIST SP 800-38B) over the one-block AES primitive (L1).

Works with 16-, 24- and 32-byte keys (RFC 4493 defines the AES-128 case; the
construction is the same for the other key sizes). Pure functions, no I/O.
"""

from kapos.errors import SecurityError
from kapos.security._util import constant_time_equal, xor_bytes
from kapos.security.aes import BLOCK_SIZE, aes_encrypt_block

_RB = 0x87  # constant for 128-bit blocks (RFC 4493 section 2.3)
_ZERO = bytes(BLOCK_SIZE)


def _double(block):
    """Left-shift a 16-byte block by one bit; XOR Rb in if the top bit fell out."""
    out = bytearray(BLOCK_SIZE)
    carry = 0
    for i in range(BLOCK_SIZE - 1, -1, -1):
        b = block[i]
        out[i] = ((b << 1) & 0xFF) | carry
        carry = b >> 7
    if block[0] & 0x80:
        out[BLOCK_SIZE - 1] ^= _RB
    return out


def cmac_subkeys(key):
    """Return (K1, K2) for `key` (RFC 4493 section 2.3)."""
    k1 = _double(aes_encrypt_block(key, _ZERO))
    return bytes(k1), bytes(_double(k1))


def aes_cmac(key, message):
    """Return the full 16-byte AES-CMAC of `message` (bytes-like) under `key`."""
    k1, k2 = cmac_subkeys(key)
    length = len(message)
    n = (length + BLOCK_SIZE - 1) // BLOCK_SIZE
    if n == 0:
        n = 1
        complete = False
    else:
        complete = length % BLOCK_SIZE == 0
    start = (n - 1) * BLOCK_SIZE
    if complete:
        last = xor_bytes(message[start:start + BLOCK_SIZE], k1)
    else:
        tail = bytearray(message[start:])
        tail.append(0x80)
        while len(tail) < BLOCK_SIZE:
            tail.append(0)
        last = xor_bytes(tail, k2)
    x = _ZERO
    for i in range(n - 1):
        x = aes_encrypt_block(key, xor_bytes(x, message[i * BLOCK_SIZE:(i + 1) * BLOCK_SIZE]))
    return aes_encrypt_block(key, xor_bytes(x, last))


def aes_cmac_verify(key, message, tag, tag_len=BLOCK_SIZE):
    """True when `tag` is the CMAC of `message`, truncated to `tag_len` bytes.

    `tag_len` is fixed by the protocol (e.g. 8 for an ISO 8583 MAC field), never
    taken from the received tag: a tag of any other length is rejected. The
    comparison takes the same time wherever the tags differ.
    """
    if tag_len < 4 or tag_len > BLOCK_SIZE:
        raise SecurityError("CMAC tag length must be 4..16 bytes, got %d" % tag_len)
    if len(tag) != tag_len:
        return False
    return constant_time_equal(aes_cmac(key, message)[:tag_len], tag)
