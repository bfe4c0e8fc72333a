"""The pure-Python AES block (kapos.security.aes_soft) against FIPS-197 appendix C, run by
pytest on CPython and by the MicroPython gate inside MicroPython (where kapos.security.aes
itself falls back to it, the WebAssembly build having no cryptolib)."""

import pytest

from kapos.security import aes, aes_soft

PLAIN = bytes.fromhex("00112233445566778899aabbccddeeff")
# FIPS-197 appendix C.1, C.2, C.3: key 000102..., the same plaintext
VECTORS = [
    (16, "69c4e0d86a7b0430d8cdb78070b4c55a"),
    (24, "dda97ca4864cdfe06eaf70a0ec0d7191"),
    (32, "8ea2b7ca516745bfeafc49904b496089"),
]


@pytest.mark.parametrize("size,cipher", VECTORS)
def test_fips197_appendix_c_encrypt_and_decrypt(size, cipher):
    key = bytes(range(size))
    assert aes_soft.encrypt_block(key, PLAIN) == bytes.fromhex(cipher)
    assert aes_soft.decrypt_block(key, bytes.fromhex(cipher)) == PLAIN


def test_fips197_appendix_b_cipher_example():
    key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    block = bytes.fromhex("3243f6a8885a308d313198a2e0370734")
    assert aes_soft.encrypt_block(key, block) == bytes.fromhex("3925841d02dc09fbdc118597196a0b32")


def test_agrees_with_the_runtime_primitive_both_ways():
    # on CPython aes.py is pycryptodome, so this checks the soft block against it
    key = bytes(range(7, 39))
    block = bytes(range(100, 116))
    for size in (16, 24, 32):
        k = key[:size]
        assert aes_soft.encrypt_block(k, block) == aes.aes_encrypt_block(k, block)
        assert aes_soft.decrypt_block(k, block) == aes.aes_decrypt_block(k, block)
