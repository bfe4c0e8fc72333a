"""The reference host's secrets at rest: its key file, private file modes, secret options.

The ledger holds PANs, so it and its -wal/-shm files are created mode 0600. The keys that
would let someone who copies the ledger recover PINs or forge messages (the PVV key, the
BDK, the token key) are not in the ledger: they live in one key file, mode 0600, JSON:

    {"format": "kapos-host-keys/1", "pvv_key": "<hex>", "bdk": "<hex>", "token_key": "<hex>"}

created on first start (by default next to the ledger: `<db>.keys`). A key file that is
truncated, not JSON, missing a key, or readable by group or others stops the host with a
message naming the file and the problem - never a key value.

Secret options come three ways, best first: a file (`--bdk-file F`), an environment
variable (`KAPOS_HOST_BDK`), the command line (`--bdk HEX`, visible to every local user in
`ps` and /proc/PID/cmdline, so it logs a warning).
"""

import binascii
import json
import logging
import os
import stat

from kapos.errors import KaposError
from kapos.io.files import atomic_write

log = logging.getLogger("kapos_tools.host")

FORMAT = "kapos-host-keys/1"
PVV_KEY_LEN = 16
AES_KEY_LENGTHS = (16, 24, 32)
PRIVATE_MODE = 0o600
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


class KeyFileError(KaposError):
    """The host's key file or a secret option cannot be used (the message names which)."""


# ---------------------------------------------------------------- private files

def create_private(path):
    """Create `path` empty with mode 0600 if it does not exist, and make every SQLite file
    of it (db, -wal, -shm, -journal) 0600 - legacy ledgers were 0644. SQLite gives its
    -wal and -shm files the database file's mode, so a 0600 db keeps them private."""
    if path == ":memory:":
        return
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
    os.close(fd)
    for suffix in SQLITE_SUFFIXES:
        name = path + suffix
        try:
            if stat.S_IMODE(os.stat(name).st_mode) & 0o077:
                os.chmod(name, PRIVATE_MODE)
                log.warning("%s was readable by other users: now mode 0600", name)
        except FileNotFoundError:
            pass


class private_umask:
    """`with private_umask():` files created inside are 0600 at most (SQLite's own)."""

    def __enter__(self):
        self._old = os.umask(0o077)
        return self

    def __exit__(self, *exc):
        os.umask(self._old)
        return False


# ---------------------------------------------------------------- the key file

def default_key_file(db_path):
    """`<db>.keys` beside the ledger, or None for an in-memory ledger."""
    return None if db_path == ":memory:" or "://" in db_path else db_path + ".keys"


def _hex_key(doc, name, path, lengths):
    value = doc.get(name)
    if not isinstance(value, str):
        raise KeyFileError("key file %s is corrupt: no %s" % (path, name))
    try:
        key = binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        raise KeyFileError("key file %s is corrupt: %s is not hex" % (path, name))
    if len(key) not in lengths:
        raise KeyFileError("key file %s is corrupt: %s has a wrong length" % (path, name))
    return key


class HostKeys:
    """The host's keys: pvv_key, bdk, token_key (bytes)."""

    def __init__(self, pvv_key, bdk, token_key):
        self.pvv_key, self.bdk, self.token_key = pvv_key, bdk, token_key

    def __repr__(self):  # never the values
        return "HostKeys(pvv_key, bdk, token_key)"

    def to_json(self):
        return json.dumps({"format": FORMAT, "pvv_key": self.pvv_key.hex().upper(),
                           "bdk": self.bdk.hex().upper(),
                           "token_key": self.token_key.hex().upper()}, indent=1).encode()


def read_key_file(path):
    """The HostKeys in `path`, or None when it does not exist. KeyFileError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeyFileError("cannot read key file %s: %s" % (path, exc.strerror or exc))
    try:
        info = os.fstat(fd)
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise KeyFileError("key file %s is readable or writable by other users (mode %04o): "
                               "chmod 600 %s" % (path, stat.S_IMODE(info.st_mode), path))
        data = os.read(fd, 1 << 16)
    finally:
        os.close(fd)
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise KeyFileError("key file %s is corrupt (empty, truncated or not JSON): restore it "
                           "from your backup; without it the ledger's PINs cannot be checked"
                           % path)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeyFileError("key file %s is corrupt: not a %s file" % (path, FORMAT))
    return HostKeys(_hex_key(doc, "pvv_key", path, (PVV_KEY_LEN,)),
                    _hex_key(doc, "bdk", path, AES_KEY_LENGTHS),
                    _hex_key(doc, "token_key", path, AES_KEY_LENGTHS))


def write_key_file(path, keys):
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    atomic_write(path, keys.to_json(), mode=PRIVATE_MODE)


# ---------------------------------------------------------------- secret options

def parse_hex_key(text, what, lengths=AES_KEY_LENGTHS):
    try:
        key = binascii.unhexlify(text.strip())
    except (binascii.Error, ValueError):
        raise KeyFileError("%s must be hex" % what)
    if len(key) not in lengths:
        raise KeyFileError("%s must be an AES key: 16, 24 or 32 bytes" % what)
    return key


def read_secret_file(path, what, json_key):
    """A key from a file: hex text, or JSON with `json_key` (`kapos keys new-bdk` files)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise KeyFileError("cannot read %s %s: %s" % (what, path, exc.strerror or exc))
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            log.warning("%s %s is readable by other users: chmod 600 it", what, path)
        data = os.read(fd, 1 << 16)
    finally:
        os.close(fd)
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise KeyFileError("%s %s is not text" % (what, path))
    if text.startswith("{"):
        try:
            text = str(json.loads(text)[json_key])
        except (ValueError, KeyError, TypeError):
            raise KeyFileError("%s %s: JSON without a %r key" % (what, path, json_key))
    return parse_hex_key(text, "%s %s" % (what, path))


def secret_option(args, name, env, json_key, environ=os.environ):
    """The key given by --NAME-file, $ENV or --NAME (in that order), or None.

    `name` is the option's dest ("bdk", "token_key")."""
    option = "--" + name.replace("_", "-")
    path = getattr(args, name + "_file", None)
    if path:
        return read_secret_file(path, option + "-file", json_key)
    if environ.get(env):
        return parse_hex_key(environ[env], env)
    value = getattr(args, name, None)
    if value:
        log.warning("%s on the command line can be read by every local user (ps, "
                    "/proc/PID/cmdline): use %s-file or %s instead", option, option, env)
        return parse_hex_key(value, option)
    return None


def load_host_keys(path, legacy_pvv_key=None, bdk=None, token_key=None, default_bdk=None,
                   default_token_key=None):
    """The host's keys from `path` (created, 0600, when missing; None: in memory only).

    A key given (bdk, token_key) replaces the stored one and is saved; a new file takes
    the ledger's legacy PVV key (ledgers before the key file kept it in `meta`) or a
    random one."""
    stored = read_key_file(path) if path else None
    if stored is None:
        keys = HostKeys(legacy_pvv_key or os.urandom(PVV_KEY_LEN), bdk or default_bdk,
                        token_key or default_token_key)
        if path:
            write_key_file(path, keys)
            log.info("created the host key file %s (mode 0600)", path)
        return keys
    changed = []
    if bdk is not None and bdk != stored.bdk:
        stored.bdk = bdk
        changed.append("BDK")
    if token_key is not None and token_key != stored.token_key:
        stored.token_key = token_key
        changed.append("token key")
    if changed:
        write_key_file(path, stored)
        log.warning("replaced the %s stored in %s", " and ".join(changed), path)
    return stored


def legacy_pvv_key(db_path):
    """(the PVV key a ledger from before the key file kept in its meta table or None,
    whether the ledger has cards with a PVV): a ledger with PVVs and neither that key nor
    its key file cannot check a PIN, so the host must not start on a fresh random key."""
    import sqlite3

    if "://" in db_path:  # PostgreSQL: keys always come from --key-file
        return None, False
    if db_path == ":memory:" or not os.path.exists(db_path) or not os.path.getsize(db_path):
        return None, False
    with private_umask():
        db = sqlite3.connect(db_path)
    try:
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'pvv_key'").fetchone()
        except sqlite3.Error:
            row = None
        try:
            pvvs = db.execute("SELECT 1 FROM cards WHERE pvv IS NOT NULL LIMIT 1").fetchone()
        except sqlite3.Error:
            pvvs = None
    finally:
        db.close()
    return (binascii.unhexlify(row[0]) if row else None), pvvs is not None
