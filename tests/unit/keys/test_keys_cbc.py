"""AES-CBC with ISO 9797-1 method 2 padding (security/cbc.py)."""

import pytest

from kapos.errors import SecurityError
from kapos.security import cbc

# NIST SP 800-38A, appendix F.2.1 (CBC-AES128.Encrypt).
KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
IV = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
PLAIN = bytes.fromhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
                      "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
CIPHER = bytes.fromhex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
                       "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7")


def test_nist_sp800_38a_f21_vector():
    """The four cipher blocks of SP 800-38A F.2.1; our padding adds a fifth block."""
    out = cbc.encrypt(KEY, PLAIN, IV)
    assert out[:64] == CIPHER and len(out) == 80
    assert cbc.decrypt(KEY, out, IV) == PLAIN


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 37])
def test_round_trip_every_length(n):
    data = bytes(range(n))
    assert cbc.decrypt(KEY, cbc.encrypt(KEY, data)) == data


def test_bad_ciphertext_is_refused():
    with pytest.raises(SecurityError):
        cbc.decrypt(KEY, b"short")
    with pytest.raises(SecurityError):
        cbc.decrypt(KEY, bytes(16))  # decrypts to garbage without a valid pad
