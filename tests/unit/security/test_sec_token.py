"""Anti-clone token blocks: MAC over UID and counter (kapos/security/token.py)."""

import pytest

from kapos.errors import SecurityError
from kapos.security.token import make_token_block, verify_token_block

KEY = bytes(range(16))
UID = bytes.fromhex("04A2B3C4D5E6F7")


def test_round_trip_and_layout():
    block = make_token_block(KEY, UID, 7)
    assert len(block) == 16 and block[:3] == b"KT\x01" and block[3:7] == bytes((0, 0, 0, 7))
    assert verify_token_block(KEY, UID, block) == 7


@pytest.mark.parametrize("bad", [
    None, b"", bytes(16),
    make_token_block(KEY, UID, 7)[:15],
])
def test_missing_or_malformed_data_is_refused(bad):
    with pytest.raises(SecurityError):
        verify_token_block(KEY, UID, bad)


def test_block_of_another_uid_or_key_is_refused():
    block = make_token_block(KEY, UID, 7)
    with pytest.raises(SecurityError, match="does not match"):
        verify_token_block(KEY, bytes.fromhex("04A2B3C4D5E6F8"), block)
    with pytest.raises(SecurityError, match="does not match"):
        verify_token_block(bytes(16), UID, block)


def test_every_flipped_bit_is_refused():
    block = make_token_block(KEY, UID, 3)
    for bit in range(15 * 8):  # the last byte is padding
        flipped = bytearray(block)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(SecurityError):
            verify_token_block(KEY, UID, bytes(flipped))
