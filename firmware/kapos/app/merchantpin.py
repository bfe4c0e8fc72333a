"""The merchant PIN (asked before a refund and a void), kept as a salted hash only.

The config holds `security.merchant_pin_hash = "pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>"`,
PBKDF2-HMAC-SHA256 over the PIN digits. Make one without the PIN ever reaching the
command line or the shell history:

    .venv/bin/python -m kapos.app.merchantpin        # asks twice, prints the config line

The core gets a MerchantPinCheck in its Settings and calls verify(buffer, length) with
the entry buffer; the digits are read in place (never copied into an immutable str or
bytes) and the core wipes the buffer afterwards.
"""

import binascii
import hashlib
import hmac
import os

from kapos.errors import ConfigError

SCHEME = "pbkdf2-sha256"
ITERATIONS = 100000
SALT_LEN = 16
MIN_DIGITS = 4
MAX_DIGITS = 8


def hash_pin(digits, iterations=ITERATIONS, salt=None):
    """The config value for a PIN given as a bytes-like of ASCII digits (or a str)."""
    if isinstance(digits, str):
        digits = digits.encode()
    if not (MIN_DIGITS <= len(digits) <= MAX_DIGITS and all(0x30 <= b <= 0x39 for b in digits)):
        raise ConfigError("a merchant PIN is %d to %d digits" % (MIN_DIGITS, MAX_DIGITS))
    salt = os.urandom(SALT_LEN) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", digits, salt, iterations)
    return "%s$%d$%s$%s" % (SCHEME, iterations, salt.hex(), digest.hex())


class MerchantPinCheck:
    """verify(buffer, length) -> bool against one stored hash; repr shows no value."""

    def __init__(self, encoded, key="security.merchant_pin_hash"):
        parts = encoded.split("$") if isinstance(encoded, str) else []
        try:
            if len(parts) != 4 or parts[0] != SCHEME:
                raise ValueError("scheme")
            self._iterations = int(parts[1])
            self._salt = binascii.unhexlify(parts[2])
            self._digest = binascii.unhexlify(parts[3])
        except ValueError:
            raise ConfigError("config key %s must be \"%s$<iterations>$<salt hex>$<hash hex>\" "
                              "(make one with: python -m kapos.app.merchantpin)" % (key, SCHEME))
        if not 1000 <= self._iterations <= 10000000 or len(self._salt) < 8 or len(self._digest) != 32:
            raise ConfigError("config key %s: iterations must be 1000 to 10000000, the salt at least 8 "
                              "bytes and the hash 32 bytes" % key)

    def verify(self, buffer, length):
        if not MIN_DIGITS <= length <= min(MAX_DIGITS, len(buffer)):
            return False
        view = memoryview(buffer)[:length]
        try:
            digest = hashlib.pbkdf2_hmac("sha256", view, self._salt, self._iterations)
        finally:
            view.release()
        return hmac.compare_digest(digest, self._digest)

    def __repr__(self):
        return "MerchantPinCheck(%s, %d iterations)" % (SCHEME, self._iterations)


def main(ask=None, out=print):
    """Ask for a new merchant PIN twice (no echo) and print the config line."""
    if ask is None:
        import getpass

        ask = getpass.getpass
    first = ask("New merchant PIN (%d-%d digits): " % (MIN_DIGITS, MAX_DIGITS))
    second = ask("Again: ")
    if first != second:
        out("the two entries differ: nothing written")
        return 1
    try:
        line = hash_pin(first)
    except ConfigError as exc:
        out(str(exc))
        return 1
    out("[security]\nmerchant_pin_hash = \"%s\"" % line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
