"""Who may use the management channel: the per-terminal token and the brakes on guessing it.

    token = load_or_create_token(data_dir)     # <data_dir>/manage-token, 0600, made once
    token = read_token_file(path)              # a copy of it on the technician's laptop
    throttle = AuthThrottle()
    wait = throttle.refused_for(peer)          # > 0: refuse this attempt without checking it
    throttle.failed(peer) / throttle.succeeded(peer)

The token never appears in a log line, an error message or a reply.
"""

import os
import secrets
import stat
import time

from kapos.errors import SecurityError
from kapos.io.files import fsync_directory

TOKEN_FILE = "manage-token"
TOKEN_ENV = "KAPOS_MANAGE_TOKEN"
TOKEN_FILE_ENV = "KAPOS_MANAGE_TOKEN_FILE"
MAX_TOKEN = 256


class ManageTokenError(SecurityError):
    """The token file cannot be read, is empty or is open to other users."""


def token_path(data_dir):
    return os.path.join(data_dir, TOKEN_FILE)


def check_token(token):
    """A usable token: text, not empty, printable, not absurdly long."""
    if not isinstance(token, str) or not token:
        raise ManageTokenError("the management token is empty")
    if len(token) > MAX_TOKEN or not token.isprintable() or token != token.strip():
        raise ManageTokenError("the management token must be 1 to %d printable characters" % MAX_TOKEN)
    return token


def read_token_file(path, private=False):
    """The token in `path` (surrounding blanks dropped). private: refuse a file that
    other users can read, as the terminal's own copy must not be."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ManageTokenError("cannot read the management token file %s (%s)"
                               % (path, exc.strerror or type(exc).__name__))
    try:
        mode = os.fstat(fd).st_mode
        if private and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ManageTokenError("the management token file %s is open to other users (mode %03o): "
                                   "chmod 600 %s" % (path, stat.S_IMODE(mode), path))
        data = os.read(fd, MAX_TOKEN + 64)
    finally:
        os.close(fd)
    try:
        return check_token(data.decode("utf-8").strip())
    except UnicodeDecodeError:
        raise ManageTokenError("the management token file %s is not text" % path)
    except ManageTokenError as exc:
        raise ManageTokenError("%s (in %s)" % (exc, path))


def load_or_create_token(data_dir):
    """The terminal's token: read <data_dir>/manage-token, or make a random one there the
    first time. The new file is written whole and linked into place, so two starts racing
    agree on one token and nobody ever reads half a file."""
    path = token_path(data_dir)
    if os.path.exists(path):
        return read_token_file(path, private=True)
    os.makedirs(data_dir, exist_ok=True)
    token = secrets.token_urlsafe(32)
    tmp = "%s.tmp-%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (token + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another start won the race: use its token
    except FileExistsError:
        return read_token_file(path, private=True)
    finally:
        os.unlink(tmp)
    fsync_directory(os.path.dirname(os.path.abspath(path)))
    return token


class AuthThrottle:
    """Exponential back-off after wrong tokens, per peer address and for everyone.

    After n wrong tokens from one address, its next attempt is refused unchecked for
    peer_base * 2**(n-1) seconds (at most `ceiling`); the same over all addresses once
    more than `global_free` wrong tokens arrived without a right one in between. A
    refused attempt does not count, so a rightful user waits at most `ceiling`. A right
    token clears its address. Times come from `clock` (monotonic seconds)."""

    def __init__(self, peer_base=0.5, global_base=0.25, global_free=10, ceiling=60.0,
                 max_peers=1024, clock=time.monotonic):
        self.peer_base = peer_base
        self.global_base = global_base
        self.global_free = global_free
        self.ceiling = ceiling
        self.max_peers = max_peers
        self.clock = clock
        self._peers = {}  # address -> (failures, time of the last one)
        self._global = (0, 0.0)

    def _wait(self, entry, base, free):
        failures, last = entry
        if failures <= free:
            return 0.0
        delay = min(base * 2 ** min(failures - free - 1, 30), self.ceiling)
        return max(0.0, last + delay - self.clock())

    def _forget_stale(self):
        now = self.clock()
        if self._global[0] and now - self._global[1] > 2 * self.ceiling:
            self._global = (0, 0.0)
        if len(self._peers) >= self.max_peers:  # keep the table small: oldest out
            for peer in sorted(self._peers, key=lambda p: self._peers[p][1])[:len(self._peers) // 2]:
                del self._peers[peer]

    def refused_for(self, peer):
        """Seconds this peer must still wait before a token of theirs is checked (0: go)."""
        self._forget_stale()
        own = self._wait(self._peers.get(peer, (0, 0.0)), self.peer_base, 0)
        return max(own, self._wait(self._global, self.global_base, self.global_free))

    def failed(self, peer):
        now = self.clock()
        failures = self._peers.get(peer, (0, 0.0))[0]
        self._peers[peer] = (failures + 1, now)
        self._global = (self._global[0] + 1, now)

    def succeeded(self, peer):
        self._peers.pop(peer, None)
        self._global = (0, 0.0)


def terminal_token(data_dir, token_file=None, environ=None):
    """The token a terminal serves its channel with: --manage-token-file, else
    $KAPOS_MANAGE_TOKEN, else $KAPOS_MANAGE_TOKEN_FILE, else <data_dir>/manage-token
    (made at the first start)."""
    environ = os.environ if environ is None else environ
    if token_file:
        return read_token_file(token_file, private=True)
    if environ.get(TOKEN_ENV):
        return check_token(environ[TOKEN_ENV].strip())
    if environ.get(TOKEN_FILE_ENV):
        return read_token_file(environ[TOKEN_FILE_ENV], private=True)
    return load_or_create_token(data_dir)
