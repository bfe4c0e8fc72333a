"""The technician PIN for a parameter set: typed at a prompt (never on the command line, so
neither `ps` nor the shell history sees it), published only as its salted PBKDF2 hash."""

import getpass

from kapos.app.merchantpin import MAX_DIGITS, MIN_DIGITS, hash_pin
from kapos.errors import KaposError

RECOMMENDED_DIGITS = 8  # the hash is public with the parameter set: length is its strength


def ask_technician_pin_hash(ask=None, warn=print):
    """Ask twice without echo; the hash value for security.technician_pin_hash."""
    ask = ask or getpass.getpass
    first = bytearray(ask("New technician PIN (%d-%d digits): " % (MIN_DIGITS, MAX_DIGITS)).encode())
    second = bytearray(ask("Again: ").encode())
    try:
        if first != second:
            raise KaposError("the two technician PIN entries differ: nothing published")
        if not (MIN_DIGITS <= len(first) <= MAX_DIGITS and first.isdigit()):
            raise KaposError("a technician PIN is %d to %d digits: nothing published" % (MIN_DIGITS, MAX_DIGITS))
        if len(first) < RECOMMENDED_DIGITS:
            warn("warning: a %d-digit PIN's hash falls to an offline search by anyone who can read the "
                 "update repository; %d digits are recommended (docs/updates.md)" % (len(first), RECOMMENDED_DIGITS))
        return hash_pin(first)
    finally:
        for buf in (first, second):
            buf[:] = bytes(len(buf))
