"""The technician PIN lock across restarts (core/tech.py decides it; this keeps it).

Without it a power cycle would clear the lock, and each three guesses at the keypad
would cost only a boot. The state (wrong PINs in a row, locks in the series, the seconds
the lock has left) is a small JSON file in the terminal's data directory, replaced
atomically and durably (io.files.atomic_write) whenever it changes; it holds no PIN and nothing derived from one. Time while the terminal is off
does not count: a lock kept with 60 s left has 60 s left after the boot, whatever the
wall clock says then (a Pi's clock is wrong until network time comes).

    store = TechLockFile(data_dir, monotonic)
    store.restore(terminal.ctx)          # at start
    terminal.observers.append(store.observer(terminal))
"""

import json
import logging
import os
import stat

from kapos.core import tech_lock
from kapos.io.files import atomic_write

log = logging.getLogger(__name__)

FILE_NAME = "tech-lock.json"


class TechLockFile:
    def __init__(self, directory, monotonic):
        self.directory = directory
        self.path = os.path.join(directory, FILE_NAME)
        self.monotonic = monotonic  # the clock the events' `mono` stamps come from
        self._saved = None

    def restore(self, ctx):
        """Put the kept state into `ctx`. An unreadable file locks the menu once (the
        first length from now): what it held may have been a lock."""
        now = self.monotonic()
        try:
            kept = json.loads(_read_small(self.path))
            tech_lock.restore_lock(ctx, kept["wrong"], kept["locks"], kept["left"], now)
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s cannot be read (%s): the technician menu is locked for %d s",
                        self.path, type(exc).__name__, tech_lock.LOCK_FIRST)
            tech_lock.restore_lock(ctx, 0, 1, tech_lock.LOCK_FIRST, now)
            self.save_if_changed(ctx)  # the damaged file replaced by that lock
            return
        self._saved = _key(ctx)

    def save_if_changed(self, ctx):
        """Write the state when its counts or its lock changed (not as a lock's time
        runs down: no fsync per event while the menu is locked)."""
        key = _key(ctx)
        if key == self._saved:
            return
        wrong, locks, left = tech_lock.lock_state(ctx, self.monotonic())
        text = json.dumps({"wrong": wrong, "locks": locks, "left": left}).encode()
        try:
            os.makedirs(self.directory, exist_ok=True)
            atomic_write(self.path, text)  # durable, and never through a planted link
        except OSError as exc:  # the lock still holds until the terminal restarts
            log.error("cannot keep the technician PIN lock in %s: %s", self.path, exc)
            return
        self._saved = key

    def observer(self, terminal):
        """A Terminal observer: after each state change (the PIN is checked on leaving
        TECH_PIN), the lock state is written when it changed."""
        def observe(kind, payload):
            if kind == "state":
                self.save_if_changed(terminal.ctx)
        return observe


def _key(ctx):
    guard = ctx.tech_guard
    return None if guard is None else tuple(guard)


_MOST = 256  # a kept state is ~40 bytes; anything longer is not one


def _read_small(path):
    """The file's text: a regular file, not a link, at most _MOST bytes (a FIFO, a device
    or a huge file planted there cannot hang or exhaust the start-up); ValueError else."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        data = os.read(fd, _MOST + 1)
    finally:
        os.close(fd)
    if len(data) > _MOST:
        raise ValueError("too long")
    return data.decode("ascii")
