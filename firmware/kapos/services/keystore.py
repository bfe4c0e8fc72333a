"""Keys at rest: the terminal's AES DUKPT state in one file (mode 0600, written
atomically), advanced and saved BEFORE any key of a transaction is used, so no KSN is
ever reused across a crash. Zeroize overwrites and removes it and leaves a tamper mark
that only loading new keys clears.

Status never shows key values: only whether keys are loaded, the KSN and the counter.
"""

import binascii
import json
import os
import time

from kapos.errors import SecurityError
from kapos.security import dukpt

KEY_FILE = "dukpt.json"
TAMPER_FILE = "tampered"


def atomic_write(path, data, mode=0o600):
    """Temp file, fsync, rename, fsync the directory: the old or the new, never half."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = "%s.tmp-%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class KeyStore:
    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.path = os.path.join(directory, KEY_FILE)
        self.tamper_path = os.path.join(directory, TAMPER_FILE)
        self._terminal = None
        self._meta = {}
        self._load()

    def _load(self):
        try:
            with open(self.path) as f:
                doc = json.load(f)
            self._terminal = dukpt.DukptTerminal.from_state(binascii.unhexlify(doc["state"]))
            self._meta = {k: v for k, v in doc.items() if k != "state"}
        except FileNotFoundError:
            self._terminal = None
        except (ValueError, KeyError, SecurityError) as exc:
            raise SecurityError("key file %s is damaged (%s): load keys again" % (self.path, type(exc).__name__))

    def _save(self, state):
        doc = dict(self._meta, state=binascii.hexlify(state).decode())
        atomic_write(self.path, json.dumps(doc).encode())

    @property
    def loaded(self):
        return self._terminal is not None and not self._terminal.exhausted

    @property
    def tampered(self):
        return os.path.exists(self.tamper_path)

    def install(self, initial_key, ik_id, source="kapos keys"):
        """Load a new initial key (and clear a tamper mark)."""
        terminal = dukpt.DukptTerminal.load_initial_key(initial_key, ik_id)
        self._meta = {"ik_id": binascii.hexlify(ik_id).decode().upper(), "loaded_at": int(time.time()),
                      "source": source}
        self._save(terminal.export_state())
        if self._terminal is not None:
            self._terminal.wipe()
        self._terminal = terminal
        if self.tampered:
            os.remove(self.tamper_path)

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
        if os.path.exists(self.path):
            size = os.path.getsize(self.path)
            with open(self.path, "r+b") as f:
                f.write(b"\0" * size)
                f.flush()
                os.fsync(f.fileno())
            os.remove(self.path)
        if self._terminal is not None:
            self._terminal.wipe()
        self._terminal = None
        atomic_write(self.tamper_path, b"keys erased after tamper\n")

    def status(self):
        if self._terminal is None:
            return {"loaded": False, "tampered": self.tampered}
        counter = self._terminal.counter
        return {"loaded": not self._terminal.exhausted, "tampered": self.tampered,
                "ik_id": self._meta.get("ik_id"), "counter": counter,
                "ksn": (self._meta.get("ik_id", "") + "%08X" % counter) if counter else None,
                "loaded_at": self._meta.get("loaded_at"), "source": self._meta.get("source")}
