"""DUKPT key state in the flash filesystem, with the project's one rule: the counter is
advanced and saved BEFORE any key of a transaction is used, so a power cut can skip a KSN
but never reuse one. Writes go to a temp file renamed over the old one (littlefs renames
atomically). Unlike the Pi's key store there is no sealing: a Pico has no place to hide
a key-encryption key (docs/pico.md)."""

import os

from kapos.errors import SecurityError
from kapos.security.dukpt import DukptTerminal


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class FlashKeyState:
    def __init__(self, path):
        self.path = path
        self._terminal = None

    @property
    def loaded(self):
        return self._terminal is not None or _exists(self.path)

    def load_initial_key(self, initial_key, ik_id):
        self._terminal = DukptTerminal.load_initial_key(initial_key, ik_id)
        self._save(self._terminal.export_state())

    def _open(self):
        if self._terminal is None:
            if not _exists(self.path):
                raise SecurityError("no keys loaded")
            with open(self.path, "rb") as f:
                self._terminal = DukptTerminal.from_state(f.read())
        return self._terminal

    def _save(self, state):
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(state)
        os.rename(tmp, self.path)

    def next_transaction(self):
        """(ksn, TransactionKeys) - the new counter is on flash before this returns."""
        state, ksn, keys = self._open().next_transaction()
        self._save(state)
        return ksn, keys

    def counter(self):
        return self._open().counter
