"""The public test keys kapos uses by default (never for real cards).

TEST_BDK is the sample Base Derivation Key of ANSI X9.24-3-2017's published test vectors;
a terminal's Initial Key ID is the BDK ID followed by a device ID made from its terminal id,
so the reference host, knowing the BDK, derives every terminal's keys from the KSN alone.
"""

import hashlib

TEST_BDK = bytes.fromhex("FEDCBA9876543210F1F1F1F1F1F1F1F1")
TEST_BDK_ID = bytes.fromhex("12345678")
# The static PIN key of keys.mode = "test-key" (no DUKPT): AES-128 "00 11 22 ... FF".
TEST_PIN_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
# The closed-loop tokens' anti-clone key (security/token.py): public, for test tokens only.
TEST_TOKEN_KEY = bytes.fromhex("6B61706F732D746F6B656E2D74657374")  # "kapos-token-test"


def device_id(terminal_id):
    """4 bytes from the terminal id (stable, so re-keying a terminal keeps its IK ID)."""
    return hashlib.sha256(terminal_id.encode()).digest()[:4]


def ik_id_for(terminal_id, bdk_id=TEST_BDK_ID):
    return bytes(bdk_id) + device_id(terminal_id)
