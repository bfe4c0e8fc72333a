"""AES-CBC with ISO/IEC 9797-1 padding method 2, on the one-block AES primitive: the
data-encryption step for sensitive track data sent to the host."""

from kapos.errors import SecurityError
from kapos.security._util import xor_bytes
from kapos.security.aes import aes_decrypt_block, aes_encrypt_block

BLOCK = 16


def pad(data):
    """0x80 then zeros up to a whole block (always adds at least one byte)."""
    n = BLOCK - (len(data) % BLOCK)
    return bytes(data) + b"\x80" + b"\x00" * (n - 1)


def unpad(data):
    """The text before the padding: it ends at the last 0x80 byte, which only zeros
    follow, within the last block (no Python loop over the zeros: the host unpads every
    message's card data)."""
    data = bytes(data)
    text = data.rstrip(b"\0")
    if not text or text[-1] != 0x80 or len(data) - len(text) >= BLOCK:
        raise SecurityError("bad padding")
    return text[:-1]


def encrypt(key, plaintext, iv=bytes(BLOCK)):
    data = pad(plaintext)
    out = bytearray()
    prev = bytes(iv)
    for i in range(0, len(data), BLOCK):
        prev = aes_encrypt_block(key, xor_bytes(data[i:i + BLOCK], prev))
        out += prev
    return bytes(out)


def decrypt(key, ciphertext, iv=bytes(BLOCK)):
    if not ciphertext or len(ciphertext) % BLOCK:
        raise SecurityError("ciphertext must be a whole number of 16-byte blocks")
    out = bytearray()
    prev = bytes(iv)
    for i in range(0, len(ciphertext), BLOCK):
        block = bytes(ciphertext[i:i + BLOCK])
        out += xor_bytes(aes_decrypt_block(key, block), prev)
        prev = block
    return unpad(out)
