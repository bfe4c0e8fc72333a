"""systemd's watchdog: a unix datagram socket stands in for $NOTIFY_SOCKET. READY=1 arrives
once the idle screen is up, WATCHDOG=1 keeps arriving while the terminal's loop runs, none
while the loop is blocked (so systemd would restart it), and they resume after."""

import asyncio
import os
import socket
import threading

import pytest

from kapos.io import sd_notify
from kapos.harness import started
from kapos.wiring import Assembly

WATCHDOG_USEC = 100000  # pings every 50 ms
SILENCE = 10 * WATCHDOG_USEC / 1e6 / 2  # ten ping intervals without one: the loop is blocked


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    yield sock
    sock.close()


def receive(sock, timeout=10.0):
    sock.settimeout(timeout)
    try:
        return sock.recv(4096).decode()
    except socket.timeout:
        return None


def drain(sock):
    sock.setblocking(False)
    try:
        while True:
            sock.recv(4096)
    except BlockingIOError:
        pass


class TerminalThread:
    """The terminal's event loop in a thread of its own, so the test can block it."""

    def __init__(self, assembly):
        self.assembly = assembly
        self.stop = threading.Event()
        self.loop = None
        self.started = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self):
        self.loop = asyncio.get_running_loop()
        async with started(self.assembly):
            self.started.set()
            await asyncio.to_thread(self.stop.wait)

    def block(self):
        """Block the loop's thread (as a stuck driver call would) until the returned event is set."""
        blocked, release = threading.Event(), threading.Event()

        def stuck():
            blocked.set()
            release.wait(30)

        self.loop.call_soon_threadsafe(stuck)
        assert blocked.wait(10)
        return release


def test_ready_then_watchdog_pings_only_while_the_loop_runs(notify_socket, tmp_path):
    assembly = Assembly("sim", None, [("storage.data_dir", str(tmp_path / "data"))])
    runner = TerminalThread(assembly)
    runner.thread.start()
    try:
        first = receive(notify_socket)
        assert first is not None and first.splitlines()[0] == "READY=1"
        assert assembly.terminal.state == "IDLE" and assembly.terminal.screen is not None
        pings = [receive(notify_socket) for _ in range(3)]
        assert pings == ["WATCHDOG=1"] * 3, "they keep arriving"

        release = runner.block()
        drain(notify_socket)  # a ping sent just before the block took hold
        assert receive(notify_socket, timeout=SILENCE) is None, "a blocked loop must not ping"
        release.set()
        assert receive(notify_socket) == "WATCHDOG=1", "pings resume with the loop"
    finally:
        runner.stop.set()
        runner.thread.join(30)
        assembly.close()
    assert not runner.thread.is_alive()


class FakeTerminal:
    def __init__(self):
        self._queue = asyncio.Queue()
        self.events_handled = 0


def test_events_waiting_and_none_handled_is_unhealthy():
    terminal = FakeTerminal()
    health = sd_notify.LoopHealth(terminal)
    assert health(), "nothing waiting: healthy"
    terminal._queue.put_nowait("key")
    assert not health(), "an event waits and nothing was handled since the last look"
    terminal.events_handled += 1
    assert health(), "the consumer moved on"


def test_notifications_only_when_systemd_asks_for_them():
    assert sd_notify.from_environ({}) is None
    assert sd_notify.from_environ({"NOTIFY_SOCKET": "relative/path"}) is None
    abstract = sd_notify.from_environ({"NOTIFY_SOCKET": "@kapos/notify"})
    assert abstract.address == "\0kapos/notify" and abstract.watchdog_interval is None
    env = {"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "20000000"}
    assert sd_notify.from_environ(env, pid=42).watchdog_interval == 10.0
    other = dict(env, WATCHDOG_PID="41")  # the watchdog is for another process of the unit
    assert sd_notify.from_environ(other, pid=42).watchdog_interval is None


def test_a_missing_socket_is_logged_once_and_never_raises(tmp_path, caplog):
    notifier = sd_notify.Notifier(str(tmp_path / "gone"))
    assert not notifier.send("WATCHDOG=1") and not notifier.send("WATCHDOG=1")
    assert len(caplog.records) == 1 and "failed" in caplog.records[0].getMessage()


def test_kapos_run_notifies_like_under_systemd(notify_socket, tmp_path):
    """The shipped entry point (`kapos run`, as the unit's ExecStart runs it) does the same."""
    import subprocess
    import sys

    env = dict(os.environ)
    env.pop("WATCHDOG_PID")  # set for this test process by the fixture; systemd sets the child's
    proc = subprocess.Popen([sys.executable, "-m", "kapos.cli", "run", "--board", "sim", "--headless",
                             "--set", "storage.data_dir=%s" % (tmp_path / "data")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        messages = [receive(notify_socket, timeout=60) for _ in range(3)]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert messages[0] is not None and messages[0].startswith("READY=1"), err.decode()[-2000:]
    assert messages[1:] == ["WATCHDOG=1"] * 2
