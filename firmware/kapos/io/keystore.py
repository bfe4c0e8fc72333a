"""Keys at rest: the terminal's AES DUKPT state, sealed under a key-encryption key (KEK).

Two files in the keys directory, both mode 0600:

- `kek.bin`: the KEK in ONE fixed-size file (KEK_FILE_SIZE bytes), created once and
  never renamed, so every write lands on the same inode and the same blocks. A re-key
  writes a fresh KEK over it in place; a tamper overwrites it in place with random bytes,
  fsyncs, then with zeros, fsyncs (crypto-erase).
- `dukpt-state.json`: the DUKPT state sealed with AES-256-GCM under the KEK (the file's
  metadata is the associated data). It is rewritten per transaction atomically (temp
  file, fsync, rename, fsync the directory), which leaves old copies in free blocks:
  they are useless once the KEK is gone.

The counter is advanced and saved BEFORE any key of a transaction is used, so no KSN is
ever reused across a crash. A tamper leaves a mark that only loading new keys clears; a
store that finds the mark with a KEK not yet zeroed (power cut mid-erase) finishes the erase.

A plaintext `dukpt.json` from kapos before sealing is migrated on first load: sealed
under a new KEK, then overwritten and removed (docs/security.md says why to re-key after).

Status never shows key values: only whether keys are loaded, the KSN and the counter.
A damaged file raises KeyStoreError and nothing on disk is changed.
"""

import binascii
import hashlib
import json
import logging
import os
import time

from Crypto.Cipher import AES

from kapos.compat import wipe
from kapos.errors import KeyStoreError, SecurityError
# called here through this module's names, which tests patch to watch the writes;
# temporary_name only for the tests
from kapos.io.files import atomic_write, fsync_directory, overwrite_in_place, temporary_name  # noqa: F401
from kapos.security import dukpt

log = logging.getLogger("kapos.keystore")

STATE_FILE = "dukpt-state.json"
LEGACY_FILE = "dukpt.json"  # plaintext state written by kapos before the KEK
KEK_FILE = "kek.bin"
TAMPER_FILE = "tampered"

KEK_FILE_SIZE = 4096  # one filesystem block: the whole KEK record is rewritten in place
KEK_MAGIC = b"KAPOSKEK"
KEK_VERSION = 1
KEK_LEN = 32
_KEK_HEAD = len(KEK_MAGIC) + 1
_KEK_CHECK_LEN = 16
STATE_VERSION = 2
NONCE_LEN = 12
TAG_LEN = 16


def _kek_check(kek):
    return hashlib.sha256(KEK_MAGIC + bytes([KEK_VERSION]) + kek).digest()[:_KEK_CHECK_LEN]


def kek_record(kek, random_bytes=os.urandom):
    """The KEK_FILE_SIZE bytes of the KEK file: magic, version, key, check, random fill."""
    head = KEK_MAGIC + bytes([KEK_VERSION]) + kek + _kek_check(kek)
    return head + random_bytes(KEK_FILE_SIZE - len(head))


def parse_kek_record(record, path):
    """The KEK, or None for an erased (all-zero) record; KeyStoreError when damaged."""
    if len(record) != KEK_FILE_SIZE:
        raise KeyStoreError("key-encryption key file %s is damaged (%d bytes, expected %d): nothing was "
                            "changed; move the keys directory away and load keys again"
                            % (path, len(record), KEK_FILE_SIZE))
    if record.count(0) == len(record):
        return None
    kek = record[_KEK_HEAD:_KEK_HEAD + KEK_LEN]
    check = record[_KEK_HEAD + KEK_LEN:_KEK_HEAD + KEK_LEN + _KEK_CHECK_LEN]
    if record[:len(KEK_MAGIC)] != KEK_MAGIC or record[len(KEK_MAGIC)] != KEK_VERSION or check != _kek_check(kek):
        raise KeyStoreError("key-encryption key file %s is damaged (bad header or check): nothing was "
                            "changed; move the keys directory away and load keys again" % path)
    return kek


def _aad(meta):
    """What the seal authenticates besides the state: the version and the clear metadata."""
    return json.dumps(dict(meta, version=STATE_VERSION), sort_keys=True).encode()


def seal_state(kek, state, meta, random_bytes=os.urandom):
    """The state file's bytes: metadata in clear, the state AES-256-GCM under the KEK."""
    nonce = random_bytes(NONCE_LEN)
    cipher = AES.new(kek, AES.MODE_GCM, nonce=nonce, mac_len=TAG_LEN)
    cipher.update(_aad(meta))
    sealed, tag = cipher.encrypt_and_digest(bytes(state))
    doc = dict(meta, version=STATE_VERSION, nonce=nonce.hex(), sealed=(sealed + tag).hex())
    return json.dumps(doc, sort_keys=True).encode()


def open_state(kek, data, path):
    """(state bytes, metadata) from the state file's bytes; KeyStoreError when damaged."""
    try:
        doc = json.loads(data.decode())
        if doc.get("version") != STATE_VERSION:
            raise ValueError("version")
        nonce = binascii.unhexlify(doc["nonce"])
        blob = binascii.unhexlify(doc["sealed"])
        if len(nonce) != NONCE_LEN or len(blob) <= TAG_LEN:
            raise ValueError("length")
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise KeyStoreError("key state file %s is damaged (not a sealed key state): nothing was changed; "
                            "load keys again" % path)
    meta = {k: v for k, v in doc.items() if k not in ("version", "nonce", "sealed")}
    cipher = AES.new(kek, AES.MODE_GCM, nonce=nonce, mac_len=TAG_LEN)
    cipher.update(_aad(meta))
    try:
        state = cipher.decrypt_and_verify(blob[:-TAG_LEN], blob[-TAG_LEN:])
    except ValueError:
        raise KeyStoreError("key state file %s does not authenticate under the key-encryption key "
                            "(damaged or from another key load): nothing was changed; load keys again" % path)
    return state, meta


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _wipe_file(path):
    """Best effort for a file that is going away: zeros over it, fsync, remove."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return
    overwrite_in_place(path, b"\0" * size)
    os.remove(path)


class KeyStore:
    def __init__(self, directory, random_bytes=os.urandom):
        self.directory = directory
        self._random = random_bytes
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.path = os.path.join(directory, STATE_FILE)
        self.kek_path = os.path.join(directory, KEK_FILE)
        self.legacy_path = os.path.join(directory, LEGACY_FILE)
        self.tamper_path = os.path.join(directory, TAMPER_FILE)
        self._terminal = None
        self._meta = {}
        self._kek = None
        self._load()

    # -- loading -------------------------------------------------------------------------

    def _load(self):
        record = _read(self.kek_path)
        legacy = os.path.exists(self.legacy_path)
        if self.tampered:
            if (record is not None and record.count(0) != len(record)) or legacy or os.path.exists(self.path):
                self._erase_files()  # the erase was cut short: finish it before anything else
            return
        if legacy and not os.path.exists(self.path):
            self._migrate_legacy()
            return
        if record is None:
            if os.path.exists(self.path):
                raise KeyStoreError("key state file %s has no key-encryption key beside it: nothing was "
                                    "changed; load keys again" % self.path)
            return
        kek = parse_kek_record(record, self.kek_path)
        if kek is None:
            return  # erased: no keys until a key load
        data = _read(self.path)
        if data is None:
            self._kek = bytearray(kek)
            return
        state, meta = open_state(kek, data, self.path)
        self._terminal = self._terminal_from(state, self.path)
        self._kek = bytearray(kek)
        self._meta = meta
        if legacy:  # a migration cut short after the sealed state was written
            _wipe_file(self.legacy_path)
            fsync_directory(self.directory)

    @staticmethod
    def _terminal_from(state, path):
        try:
            return dukpt.DukptTerminal.from_state(state)
        except SecurityError as exc:
            raise KeyStoreError("key state file %s holds a bad DUKPT state (%s): nothing was changed; "
                                "load keys again" % (path, exc))

    def _migrate_legacy(self):
        """A plaintext state from kapos before the KEK: seal it, then erase the clear copy."""
        try:
            with open(self.legacy_path) as f:
                doc = json.load(f)
            state = binascii.unhexlify(doc["state"])
            meta = {k: v for k, v in doc.items() if k != "state"}
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
            raise KeyStoreError("old key file %s is damaged: nothing was changed; load keys again"
                                % self.legacy_path)
        terminal = self._terminal_from(state, self.legacy_path)
        self._new_kek()
        self._meta = meta
        self._save(state)
        _wipe_file(self.legacy_path)
        fsync_directory(self.directory)
        self._terminal = terminal
        log.warning("key state migrated from the old plaintext file to a sealed one: load new keys "
                    "to make copies of the old file useless (docs/security.md)")

    # -- writing -------------------------------------------------------------------------

    def _new_kek(self):
        """A fresh KEK into the one KEK file: created once, afterwards overwritten in place."""
        kek = self._random(KEK_LEN)
        record = kek_record(kek, self._random)
        if os.path.exists(self.kek_path):
            overwrite_in_place(self.kek_path, record)
            os.truncate(self.kek_path, KEK_FILE_SIZE)  # a damaged, longer file loses its tail
        else:
            fd = os.open(self.kek_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, record)
                os.fsync(fd)
            finally:
                os.close(fd)
            fsync_directory(self.directory)
        os.chmod(self.kek_path, 0o600)
        if self._kek is not None:
            wipe(self._kek)
        self._kek = bytearray(kek)

    def _erase_kek(self):
        """Crypto-erase: random bytes over the KEK record in place, fsync, then zeros, fsync."""
        if not os.path.exists(self.kek_path):
            return
        size = max(os.path.getsize(self.kek_path), KEK_FILE_SIZE)
        overwrite_in_place(self.kek_path, self._random(size))
        overwrite_in_place(self.kek_path, b"\0" * size)

    def _save(self, state):
        atomic_write(self.path, seal_state(bytes(self._kek), state, self._meta, self._random))

    # -- the interface -------------------------------------------------------------------

    @property
    def loaded(self):
        return self._terminal is not None and not self._terminal.exhausted

    @property
    def tampered(self):
        return os.path.exists(self.tamper_path)

    def install(self, initial_key, ik_id, source="kapos keys"):
        """Load a new initial key under a new KEK (old sealed states become useless) and
        clear a tamper mark."""
        terminal = dukpt.DukptTerminal.load_initial_key(initial_key, ik_id)
        self._new_kek()
        self._meta = {"ik_id": binascii.hexlify(ik_id).decode().upper(), "loaded_at": int(time.time()),
                      "source": source}
        self._save(terminal.export_state())
        if self._terminal is not None:
            self._terminal.wipe()
        self._terminal = terminal
        if self.tampered:
            os.remove(self.tamper_path)
            fsync_directory(self.directory)

    def next_transaction(self):
        """(ksn, TransactionKeys): the new state is on disk before the keys are returned."""
        if self._terminal is None:
            raise SecurityError("no keys loaded" + (" (erased after tamper)" if self.tampered else ""))
        state, ksn, keys = self._terminal.next_transaction()
        try:
            self._save(state)
        except OSError:
            keys.wipe()
            raise SecurityError("cannot save the key counter: transaction refused")
        return ksn, keys

    def zeroize(self):
        """Tamper: mark first (a power cut mid-erase is finished at the next start), then
        crypto-erase the KEK in place, then remove the sealed state and any old plaintext."""
        atomic_write(self.tamper_path, b"keys erased after tamper\n")
        if self._kek is not None:
            wipe(self._kek)
            self._kek = None
        if self._terminal is not None:
            self._terminal.wipe()
        self._terminal = None
        self._erase_files()

    def _erase_files(self):
        self._erase_kek()
        _wipe_file(self.path)
        _wipe_file(self.legacy_path)
        fsync_directory(self.directory)

    def status(self):
        if self._terminal is None:
            return {"loaded": False, "tampered": self.tampered}
        counter = self._terminal.counter
        return {"loaded": not self._terminal.exhausted, "tampered": self.tampered,
                "ik_id": self._meta.get("ik_id"), "counter": counter,
                "ksn": (self._meta.get("ik_id", "") + "%08X" % counter) if counter else None,
                "loaded_at": self._meta.get("loaded_at"), "source": self._meta.get("source")}
