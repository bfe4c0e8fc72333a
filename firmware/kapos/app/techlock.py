"""The technician PIN lock across restarts (core/tech.py decides it; this keeps it).

Without it a power cycle would clear the lock, and each three guesses at the keypad
would cost only a boot. The state (wrong PINs in a row, locks in the series, the lock in
force) is a small JSON file in the terminal's data directory, replaced atomically when
it changes; it holds no PIN and nothing derived from one.

    store = TechLockFile(data_dir)
    store.restore(terminal.ctx)          # at start
    terminal.observers.append(store.observer(terminal))
"""

import json
import logging
import os
import time

from kapos.core import tech

log = logging.getLogger(__name__)

FILE_NAME = "tech-lock.json"


class TechLockFile:
    def __init__(self, directory, clock=time.time):
        self.path = os.path.join(directory, FILE_NAME)
        self.clock = clock
        self._saved = None

    def restore(self, ctx):
        """Put the kept state into `ctx`. An unreadable file locks the menu once (the
        first length from now): what it held may have been a lock."""
        try:
            with open(self.path) as f:
                kept = json.load(f)
            lock = kept["lock"]
            tech.restore_lock(ctx, kept["wrong"], kept["locks"],
                              None if lock is None else (lock[0], lock[1]))
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            log.warning("%s cannot be read (%s): the technician menu is locked for %d s",
                        self.path, type(exc).__name__, tech.TECH_LOCK_FIRST)
            tech.restore_lock(ctx, 0, 1, (self.clock(), tech.TECH_LOCK_FIRST))
            self.save_if_changed(ctx)  # the damaged file replaced by that lock
            return
        self._saved = tech.lock_state(ctx)

    def save_if_changed(self, ctx):
        state = tech.lock_state(ctx)
        if state == self._saved:
            return
        wrong, locks, lock = state
        text = json.dumps({"wrong": wrong, "locks": locks,
                           "lock": None if lock is None else list(lock)})
        temporary = self.path + ".new"
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(temporary, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:  # the lock still holds until the terminal restarts
            log.error("cannot keep the technician PIN lock in %s: %s", self.path, exc)
            return
        self._saved = state

    def observer(self, terminal):
        """A Terminal observer: after each state change (the PIN is checked on leaving
        TECH_PIN), the lock state is written when it changed."""
        def observe(kind, payload):
            if kind == "state":
                self.save_if_changed(terminal.ctx)
        return observe
