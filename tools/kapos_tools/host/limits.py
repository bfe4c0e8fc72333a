"""What the reference host allows one client, and how it logs under a flood.

Limits: idle_timeout (seconds without a byte between messages), frame_timeout (seconds
to finish a started frame or a TLS handshake), max_connections, max_per_peer.

ConnectionTable: the open connections by peer address. make_room() says whether a new
connection fits and, when it does not, which open connection to close for it: the oldest
one that has not yet sent a message with a good MAC (a flood of idle sockets cannot keep
a terminal out; a terminal that has proven itself is never evicted, only timed out).

RateLimitedLog: at most `burst` lines per kind per `period` seconds, then one line saying
how many were suppressed - a flood costs a few lines of log, not megabytes.
"""

import logging
import time

DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_FRAME_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_MAX_PER_PEER = 32
DEFAULT_MAX_IN_FLIGHT = 16  # messages of one connection in the group commit before it is not read
RESERVED_FDS = 64  # the ledger, its -wal/-shm, the log, the spare descriptor, serial lines


def fd_headroom(reserve=RESERVED_FDS):
    """How many client connections the open-file limit leaves room for (None: unknown)."""
    try:
        import resource
    except ImportError:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    return max(1, soft - reserve)


class Limits:
    def __init__(self, idle_timeout=DEFAULT_IDLE_TIMEOUT, frame_timeout=DEFAULT_FRAME_TIMEOUT,
                 max_connections=DEFAULT_MAX_CONNECTIONS, max_per_peer=DEFAULT_MAX_PER_PEER):
        for name, value in (("idle timeout", idle_timeout), ("frame timeout", frame_timeout)):
            if not value > 0:
                raise ValueError("the %s must be above 0 seconds" % name)
        for name, value in (("max connections", max_connections),
                            ("max per peer", max_per_peer)):
            if type(value) is not int or value < 1:
                raise ValueError("%s must be a whole number of at least 1" % name)
        self.idle_timeout = float(idle_timeout)
        self.frame_timeout = float(frame_timeout)
        self.max_connections = max_connections
        self.max_per_peer = max_per_peer


class Connection:
    def __init__(self, peer, number):
        self.peer = peer
        self.number = number  # order of arrival
        self.trusted = False  # sent a message with a good MAC
        self.task = None
        self.writer = None

    def close(self):
        if self.task is not None:
            self.task.cancel()


class ConnectionTable:
    def __init__(self):
        self._open = {}  # number -> Connection
        self._by_peer = {}  # peer -> count
        self._next = 0

    def __len__(self):
        return len(self._open)

    def add(self, peer):
        self._next += 1
        entry = Connection(peer, self._next)
        self._open[entry.number] = entry
        self._by_peer[peer] = self._by_peer.get(peer, 0) + 1
        return entry

    def remove(self, entry):
        if self._open.pop(entry.number, None) is None:
            return
        left = self._by_peer.get(entry.peer, 1) - 1
        if left:
            self._by_peer[entry.peer] = left
        else:
            self._by_peer.pop(entry.peer, None)

    def make_room(self, peer, limits):
        """(victim, reason): (None, None) it fits; (conn, reason) close conn first;
        (None, reason) refuse the new connection."""
        if self._by_peer.get(peer, 0) >= limits.max_per_peer:
            reason = "%d connections from this address (--max-per-peer)" % limits.max_per_peer
            return self._oldest_untrusted(peer), reason
        if len(self._open) >= limits.max_connections:
            reason = "%d connections open (--max-connections)" % limits.max_connections
            return self._oldest_untrusted(None), reason
        return None, None

    def _oldest_untrusted(self, peer):
        for entry in self._open.values():  # insertion order: oldest first
            if not entry.trusted and entry.task is not None and (peer is None
                                                                  or entry.peer == peer):
                self.remove(entry)  # its slot is taken now, before its task ends
                return entry
        return None


class RateLimitedLog:
    def __init__(self, logger, burst=10, period=10.0, clock=time.monotonic):
        self.logger = logger
        self.burst = burst
        self.period = period
        self.clock = clock
        self._kinds = {}  # kind -> [window start, lines in window, suppressed]

    def log(self, level, kind, text, *args):
        now = self.clock()
        state = self._kinds.get(kind)
        if state is None or now - state[0] >= self.period:
            if state is not None and state[2]:
                self.logger.log(level, "%d more %r messages suppressed in the last %.0f s",
                                state[2], kind, now - state[0])
            state = self._kinds[kind] = [now, 0, 0]
        if state[1] < self.burst:
            state[1] += 1
            self.logger.log(level, text, *args)
        else:
            state[2] += 1

    def info(self, kind, text, *args):
        self.log(logging.INFO, kind, text, *args)

    def warning(self, kind, text, *args):
        self.log(logging.WARNING, kind, text, *args)

    def error(self, kind, text, *args):
        self.log(logging.ERROR, kind, text, *args)
