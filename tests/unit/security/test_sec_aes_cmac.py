"""AES block primitive and AES-CMAC.

Expected values: RFC 4493 §4 (Test Vectors): key 2b7e1516 28aed2a6 abf71588 09cf4f3c,
AES-128(key, 0) = 7df76b0c 1ab899b3 3e42f047 b91b546f, subkeys K1/K2, and the four
examples (message lengths 0, 16, 40, 64).
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kapos.errors import SecurityError
from kapos.security import cmac
from kapos.security.aes import aes_decrypt_block, aes_encrypt_block

H = bytes.fromhex
# RFC 4493 §4
RFC_KEY = H("2b7e151628aed2a6abf7158809cf4f3c")
RFC_MSG = H(
    "6bc1bee22e409f96e93d7e117393172a"
    "ae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52ef"
    "f69f2445df4f9b17ad2b417be66c3710"
)
RFC_EXAMPLES = [
    (0, "bb1d6929e95937287fa37d129b756746"),
    (16, "070a16b46b4d4144f79bdd9dd04a287c"),
    (40, "dfa66747de9ae63030ca32611497c827"),
    (64, "51f0bebf7e3b9d92fc49741779363cfe"),
]


def test_aes_block_rfc4493_subkey_step():
    """RFC 4493 §4, subkey generation: AES-128(key, 0^128) = 7df76b0c 1ab899b3 3e42f047 b91b546f."""
    out = aes_encrypt_block(RFC_KEY, bytes(16))
    assert out == H("7df76b0c1ab899b33e42f047b91b546f")
    assert aes_decrypt_block(RFC_KEY, out) == bytes(16)


@pytest.mark.parametrize("key_len", [16, 24, 32])
def test_aes_round_trip_all_key_sizes(key_len):
    key = bytes(range(key_len))
    block = bytes(range(100, 116))
    assert aes_decrypt_block(key, aes_encrypt_block(key, block)) == block


def test_aes_rejects_bad_lengths_without_echoing_key():
    secret = bytes.fromhex("A1B2C3D4E5F60718293A4B5C6D7E8F")  # 15 bytes
    with pytest.raises(SecurityError) as err:
        aes_encrypt_block(secret, bytes(16))
    assert "a1b2" not in str(err.value).lower()
    with pytest.raises(SecurityError):
        aes_encrypt_block(bytes(16), bytes(15))


def test_rfc4493_subkeys():
    """RFC 4493 §4: K1 = fbeed618 35713366 7c85e08f 7236a8de, K2 = f7ddac30 6ae266cc f90bc11e e46d513b."""
    k1, k2 = cmac.cmac_subkeys(RFC_KEY)
    assert k1 == H("fbeed618357133667c85e08f7236a8de")
    assert k2 == H("f7ddac306ae266ccf90bc11ee46d513b")


@pytest.mark.parametrize("length,expected", RFC_EXAMPLES)
def test_rfc4493_examples(length, expected):
    """RFC 4493 §4, Examples 1-4 (len = 0, 16, 40, 64)."""
    message = RFC_MSG[:length]
    assert cmac.aes_cmac(RFC_KEY, message) == H(expected)
    assert cmac.aes_cmac_verify(RFC_KEY, message, H(expected))


def test_verify_truncated_tag_length_is_fixed_by_caller():
    """RFC 4493 §4 Example 2, tag truncated to 8 bytes."""
    tag = H("070a16b46b4d4144")
    assert cmac.aes_cmac_verify(RFC_KEY, RFC_MSG[:16], tag, tag_len=8)
    # the receiver cannot shorten the tag to weaken the check
    assert not cmac.aes_cmac_verify(RFC_KEY, RFC_MSG[:16], tag[:4], tag_len=8)
    assert not cmac.aes_cmac_verify(RFC_KEY, RFC_MSG[:16], tag)
    with pytest.raises(SecurityError):
        cmac.aes_cmac_verify(RFC_KEY, RFC_MSG[:16], tag[:2], tag_len=2)


@pytest.mark.parametrize("key_len", [16, 32])
def test_cmac_matches_pycryptodome(key_len):
    """Cross-check against pycryptodome's CMAC for the AES-256 case RFC 4493 does not cover."""
    from Crypto.Cipher import AES
    from Crypto.Hash import CMAC

    key = bytes(range(1, key_len + 1))
    for n in (0, 1, 15, 16, 17, 31, 32, 33, 100):
        msg = bytes((i * 7) & 0xFF for i in range(n))
        assert cmac.aes_cmac(key, msg) == CMAC.new(key, msg, ciphermod=AES).digest()


@settings(max_examples=60, deadline=None)
@given(
    key=st.binary(min_size=16, max_size=16),
    message=st.binary(max_size=80),
    data=st.data(),
)
def test_cmac_any_flipped_bit_fails(key, message, data):
    """Verify accepts the genuine tag; flipping any single bit of message or tag fails."""
    tag = cmac.aes_cmac(key, message)
    assert cmac.aes_cmac_verify(key, message, tag)
    bit = data.draw(st.integers(0, 8 * (len(message) + len(tag)) - 1))
    msg, t = bytearray(message), bytearray(tag)
    if bit < 8 * len(message):
        msg[bit // 8] ^= 1 << (bit % 8)
    else:
        bit -= 8 * len(message)
        t[bit // 8] ^= 1 << (bit % 8)
    assert not cmac.aes_cmac_verify(key, bytes(msg), bytes(t))
