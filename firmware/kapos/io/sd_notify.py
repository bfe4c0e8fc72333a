"""systemd's service notification (sd_notify): READY=1 once the idle screen is up, then
WATCHDOG=1 from the terminal's own event loop while the loop is healthy.

The protocol is one datagram per message to the unix socket named by $NOTIFY_SOCKET (a
leading '@' is Linux's abstract namespace); no library needed. systemd sets
$WATCHDOG_USEC (and $WATCHDOG_PID) when the unit has WatchdogSec=: if no WATCHDOG=1 arrives
within it, systemd kills the service (SIGABRT) and Restart= starts it again, so a loop stuck
in a driver call, a deadlock or an endless computation is restarted (and a trial boot that
stalls is rolled back by the boot check). The pings come from a task of the loop itself: a
blocked loop sends none.
"""

import asyncio
import logging
import os
import socket

log = logging.getLogger("kapos.sd_notify")


class Notifier:
    """Send notifications to one systemd socket; errors are logged once, never raised."""

    def __init__(self, address, watchdog_interval=None):
        self.address = address
        self.watchdog_interval = watchdog_interval  # seconds between pings, None: no watchdog
        self.sent = 0
        self._failed = False

    def send(self, message):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.sendto(message.encode(), self.address)
            self.sent += 1
            return True
        except OSError as exc:  # systemd gone or the socket unwritable: the terminal carries on
            if not self._failed:
                log.warning("sd_notify to %s failed: %s", self.address, exc)
                self._failed = True
            return False
        finally:
            sock.close()

    async def serve(self, healthy):
        """READY=1 now, then WATCHDOG=1 every interval while healthy() says so (a task of the loop)."""
        self.send("READY=1\nSTATUS=idle")
        if not self.watchdog_interval:
            return
        while True:
            await asyncio.sleep(self.watchdog_interval)
            if healthy():
                self.send("WATCHDOG=1")
            else:
                log.error("event loop not handling events: no watchdog ping (systemd restarts us)")


def from_environ(environ=None, pid=None):
    """A Notifier for this process when systemd asks for notifications, else None."""
    environ = os.environ if environ is None else environ
    address = environ.get("NOTIFY_SOCKET")
    if not address or address[0] not in "/@":
        return None
    if address[0] == "@":
        address = "\0" + address[1:]
    interval = None
    watchdog_pid = environ.get("WATCHDOG_PID")
    mine = not watchdog_pid or watchdog_pid == str(os.getpid() if pid is None else pid)
    try:
        usec = int(environ.get("WATCHDOG_USEC", "0"))
    except ValueError:
        usec = 0
    if usec > 0 and mine:
        interval = usec / 1e6 / 2  # half the deadline, as sd_watchdog_enabled(3) advises
    return Notifier(address, interval)


class LoopHealth:
    """Healthy while the terminal's queue is being drained: events waiting and none handled
    since the last ping means the consumer is stuck even though the loop still turns."""

    def __init__(self, terminal):
        self.terminal = terminal
        self._handled = terminal.events_handled

    def __call__(self):
        handled = self.terminal.events_handled
        queue = self.terminal._queue
        stuck = queue is not None and queue.qsize() > 0 and handled == self._handled
        self._handled = handled
        return not stuck
