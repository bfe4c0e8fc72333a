"""The issue's "must show": `kapos run --script` plays a sale against the real reference
host, over TCP and over a serial line made of real pseudo-terminals, and
`kapos host --show-ledger` shows it."""

import os
import pty
import select
import signal
import subprocess
import sys
import threading
import tty

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SALE = os.path.join(ROOT, "tests", "scenarios", "sale-swipe-pin.scenario")


def start_host(*args):
    proc = subprocess.Popen([sys.executable, "-m", "kapos_tools.host", "--auto-enroll"] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    line = proc.stdout.readline().decode()
    assert "listening" in line, line + proc.stderr.read().decode()
    return proc, line


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    return err.decode()


def play(*overrides):
    args = [sys.executable, "-m", "kapos.cli", "run", "--script", SALE]
    for item in overrides:
        args += ["--set", item]
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=60)


def ledger(db):
    shown = subprocess.run([sys.executable, "-m", "kapos_tools.host", "--db", db, "--show-ledger"],
                           capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def test_scripted_sale_over_tcp_is_in_the_ledger(tmp_path):
    db = str(tmp_path / "host.db")
    host, line = start_host("--listen", "127.0.0.1:0", "--db", db)
    try:
        address = line.split()[4]
        result = play("host.mode=iso8583", "host.address=%s" % address)
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        err = stop(host)
    assert "0200 KAPOS001" in err
    shown = ledger(db)
    assert "411111******1111" in shown and "4111111111111111" not in shown
    assert "1260" in shown or "12.60" in shown, shown


class PtyBridge:
    """Two pseudo-terminal pairs joined back to back: the host opens one slave, the
    terminal the other, and bytes cross between the masters as on a null-modem cable."""

    def __init__(self):
        self.a_master, a_slave = pty.openpty()
        self.b_master, b_slave = pty.openpty()
        for fd in (a_slave, b_slave):
            tty.setraw(fd)
        self.a_path, self.b_path = os.ttyname(a_slave), os.ttyname(b_slave)
        self._slaves = (a_slave, b_slave)
        self._stop = False
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        peer = {self.a_master: self.b_master, self.b_master: self.a_master}
        while not self._stop:
            ready, _, _ = select.select(list(peer), [], [], 0.1)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if data:
                    os.write(peer[fd], data)

    def close(self):
        self._stop = True
        self.thread.join(2)
        for fd in (self.a_master, self.b_master) + self._slaves:
            os.close(fd)


def test_scripted_sale_over_a_pty_serial_line_is_in_the_ledger(tmp_path):
    db = str(tmp_path / "host.db")
    bridge = PtyBridge()
    host, _ = start_host("--listen", "127.0.0.1:0", "--serial", bridge.a_path, "--db", db)
    try:
        result = play("host.mode=iso8583", "host.transport=serial", "host.serial_url=%s" % bridge.b_path)
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        err = stop(host)
        bridge.close()
    assert "0200 KAPOS001" in err
    assert "411111******1111" in ledger(db)
