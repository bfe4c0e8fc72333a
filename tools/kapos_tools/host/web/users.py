"""Dashboard staff: names, roles and scrypt password hashes in the ledger (`ops_users`).

    add_user(ledger, "alice", "operator", password)   # or `kapos host user add`
    verify(ledger, "alice", password) -> role or None
    first_admin(ledger, path)                          # a generated password, once

Roles: `operator` may change things (top-up, block, acknowledge); `viewer` only looks.
Passwords are stored as "scrypt$n$r$p$salt$hash" (hashlib.scrypt, RFC 7914); a wrong
name and a wrong password take the same work, so timing does not tell names apart.
"""

import hashlib
import hmac
import os
import re
import secrets
import time

from kapos.errors import KaposError

from kapos_tools.host.web import ops

ROLES = ("operator", "viewer")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
MIN_PASSWORD = 10
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class UserError(KaposError):
    """A bad user name, role or password for the dashboard."""


def hash_password(password, salt=None):
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            dklen=32)
    return "scrypt$%d$%d$%d$%s$%s" % (SCRYPT_N, SCRYPT_R, SCRYPT_P, salt.hex(), digest.hex())


def check_password(stored, password):
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                             p=int(p), dklen=len(digest) // 2)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


_DUMMY = hash_password("not a password of anyone")


def add_user(ledger, name, role, password, replace=False):
    if not NAME_RE.match(name or ""):
        raise UserError("a user name is 1 to 32 letters, digits, '_', '.' or '-'")
    if role not in ROLES:
        raise UserError("the role is one of: %s" % ", ".join(ROLES))
    if len(password or "") < MIN_PASSWORD:
        raise UserError("a password has at least %d characters" % MIN_PASSWORD)
    with ledger._tx():
        ops.prepare(ledger.db)
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        try:
            ledger.db.execute(verb + " INTO ops_users (name, role, password, created) VALUES (?, ?, ?, ?)",
                              (name, role, hash_password(password), time.time()))
        except Exception as exc:
            if "UNIQUE" in str(exc):
                raise UserError("user %s exists (use --replace to set a new password)" % name)
            raise
        ledger.db.execute("INSERT INTO ops_audit (at, user, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                          (time.time(), "(cli)", "user-add" if not replace else "user-replace", name, role))


def verify(ledger, name, password):
    """The user's role when the password is right, else None."""
    row = ledger.db.execute("SELECT role, password FROM ops_users WHERE name = ?", (name,)).fetchone()
    stored = row["password"] if row is not None else _DUMMY
    ok = check_password(stored, password or "")
    return row["role"] if ok and row is not None else None


def count(ledger):
    return ledger.db.execute("SELECT COUNT(*) FROM ops_users").fetchone()[0]


def first_admin(ledger, path):
    """With no user at all: create `admin` (operator) with a generated password written to
    `path` (mode 0600, shown once, never logged). Returns the path, or None when users exist."""
    with ledger._tx():
        ops.prepare(ledger.db)
    if count(ledger):
        return None
    password = secrets.token_urlsafe(15)
    add_user(ledger, "admin", "operator", password)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("dashboard user: admin\npassword: %s\n"
                "(delete this file once read; `kapos host user add` makes more users)\n" % password)
    return path
