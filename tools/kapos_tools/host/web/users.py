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
    stored = hash_password(password)  # once, outside the transaction (a retry does not redo it)
    db = ledger.db

    def change():
        ops.prepare(db)
        exists = db.execute("SELECT 1 FROM ops_users WHERE name = ?", (name,)).fetchone() is not None
        if exists and not replace:
            raise UserError("user %s exists (use --replace to set a new password)" % name)
        db.execute("INSERT INTO ops_users (name, role, password, created) VALUES (?, ?, ?, ?) "
                   "ON CONFLICT (name) DO UPDATE SET role = excluded.role, password = excluded.password",
                   (name, role, stored, time.time()))
        db.execute("INSERT INTO ops_audit (at, staff, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                   (time.time(), "(cli)", "user-replace" if exists else "user-add", name, role))
    ops.write(ledger, change)


def stored_hash(ledger, name):
    """(role, stored hash) of a user, or None: read on the ledger's thread."""
    row = ledger.db.execute("SELECT role, password FROM ops_users WHERE name = ?", (name,)).fetchone()
    return (row["role"], row["password"]) if row is not None else None


def check(found, password):
    """The role when `password` matches `found` (stored_hash), else None: the slow part,
    fit for a worker thread (it touches no database). No user costs the same work."""
    ok = check_password(found[1] if found is not None else _DUMMY, password or "")
    return found[0] if ok and found is not None else None


def verify(ledger, name, password):
    """The user's role when the password is right, else None."""
    return check(stored_hash(ledger, name), password)


def count(ledger):
    return ledger.db.execute("SELECT COUNT(*) FROM ops_users").fetchone()[0]


def first_admin(ledger, path):
    """With no user at all: create `admin` (operator) with a generated password written to
    `path` (mode 0600, shown once, never logged). Returns the path, or None when users exist."""
    ops.write(ledger, lambda: ops.prepare(ledger.db))
    if count(ledger):
        return None
    password = secrets.token_urlsafe(15)
    add_user(ledger, "admin", "operator", password)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("dashboard user: admin\npassword: %s\n"
                "(delete this file once read; `kapos host user add` makes more users)\n" % password)
    return path
