"""Checks before the terminal (or the reference host) starts, so that what a newcomer meets
first is one line naming what to do, never a traceback: a port already taken, a data
directory that is read-only or full. Each failure is a StartupError (the CLI prints it
and exits 2: restarting will not help until someone fixes it)."""

import errno
import os
import socket

from kapos.errors import StartupError

# Room the journal and the key store need to start (SQLite's WAL, a key file): a directory
# with less free space than this is reported full before anything is half-written.
PROBE_BYTES = 256 * 1024
PROBE_NAME = ".kapos-write-probe"

STOPPED = "payments stopped"


def storage_error(path, exc):
    """A StartupError for an OSError met writing `path`: what is wrong and what to do."""
    code = getattr(exc, "errno", None)
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if code == errno.EROFS:
        short, todo = "read-only", "remount it read-write or set storage.data_dir"
    elif code in (errno.ENOSPC, errno.EDQUOT):
        short, todo = "full", "free space there (e.g. journalctl --vacuum-size=50M) or set storage.data_dir"
    elif code in (errno.EACCES, errno.EPERM):
        short, todo = "not writable", "give the service user that directory or set storage.data_dir"
    else:
        short, todo = "not writable", "check the disk or set storage.data_dir"
    where = os.path.abspath(path)
    return StartupError("%s: the data directory %s is %s (%s): %s" % (STOPPED, where, short, reason, todo),
                        short="Data directory %s: %s" % (short, where))


def check_data_dir(path, need=PROBE_BYTES):
    """Create `path` if needed and prove it takes `need` bytes (written, synced, removed).
    Touches nothing that is already there: the journal and the keys stay as they are."""
    probe = os.path.join(path, PROBE_NAME)
    try:
        os.makedirs(path, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            block = b"\0" * 65536
            written = 0
            while written < need:
                written += os.write(fd, block[:need - written])
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise storage_error(path, exc)
    finally:
        try:
            os.unlink(probe)
        except OSError:
            pass


def check_port_free(host, port, what, hint, own_line=False):
    """Bind `host:port` once the way asyncio's servers do (SO_REUSEADDR), then let it go.
    `what` names the listener, `hint` says how to pick another port."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError("%s address %s:%d: %s" % (what, host, port, exc.strerror))
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if own_line and getattr(exc, "errno", None) == errno.EADDRINUSE:
                    raise StartupError("port %s is in use (another kapos running?): stop it or %s" % (what, hint))
                raise bind_error(what, host, port, exc, hint)


def bind_error(what, host, port, exc, hint):
    """A StartupError for an OSError met binding a listener."""
    code = getattr(exc, "errno", None)
    if code == errno.EADDRINUSE:
        message = "%s port %s:%d is in use (another kapos running?): stop it or %s" % (what, host, port, hint)
    elif code == errno.EADDRNOTAVAIL:
        message = "%s address %s is not an address of this machine: %s" % (what, host, hint)
    elif code == errno.EACCES:
        message = "%s port %d needs privileges (ports below 1024): %s" % (what, port, hint)
    else:
        message = "%s cannot listen on %s:%d (%s): %s" % (what, host, port, exc.strerror or exc, hint)
    return StartupError(message, short="%s port %d in use" % (what, port))


def show_stopped(display, error):
    """Put the reason on the terminal's own display (best effort: the log has it anyway)."""
    from kapos.app.screens import Screen, wrap

    screen = Screen("PAYMENTS STOPPED", wrap(getattr(error, "short", str(error)))[:3], "See the log", kind="error")
    if display is not None:
        try:
            display.show(screen)
        except Exception:  # a failing display must not hide the real reason
            pass
    return screen


def main(argv=None):
    """`python -m kapos.app.startup HOST_ADDR=127.0.0.1:8583 MANAGE_ADDR=...`: the port checks
    `make run` does before it starts anything; each NAME is the make variable that moves it.
    One line and exit 2 when a port is taken."""
    import sys

    try:
        for item in (sys.argv[1:] if argv is None else argv):
            name, _, text = item.partition("=")
            host, _, port = text.rpartition(":")
            host = host.strip("[]") or "127.0.0.1"
            if not port.isdigit():
                raise StartupError("%s must look like 127.0.0.1:8583, got %r" % (name, text))
            check_port_free(host, int(port), "%s (%s)" % (text, name), "make run %s=%s:PORT" % (name, host),
                            own_line=True)
    except StartupError as exc:
        print("kapos: error: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
