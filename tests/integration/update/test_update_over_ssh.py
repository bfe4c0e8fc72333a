"""The update path on a local SSH "Pi" (tests/rigs/sshd.py): set up over SSH, install v1,
run the service (systemd where the machine has it, else the boot check run directly by
kapos.update.supervise), release v2, and the terminal on the "Pi" updates and confirms."""

import os
import shlex
import subprocess

from kapos.update.layout import Layout
from rigs.sshd import sshd  # noqa: F401  (the fixture)
from test_update_end_to_end import Supervised
from updatekit import PYTHON, Site, serve


def remote_kapos(sshd, *args):
    return sshd.run(" ".join(shlex.quote(a) for a in [PYTHON, "-m", "kapos.cli"] + list(args)))


class RemoteStream(Supervised):
    """Output lines of a command on the "Pi" over SSH, as events; `stop` is a remote command."""

    def __init__(self, sshd, command, stop):
        import queue
        import threading

        self.sshd, self.stop_command = sshd, stop
        self.proc = subprocess.Popen(["ssh"] + sshd.ssh_options + [sshd.target, command],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._pump, daemon=True).start()

    def stop(self):
        self.sshd.run(self.stop_command)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def service_args(root, data):
    return [PYTHON, "-m", "kapos.update.supervise", "--root", root, "--max-starts", "6", "--",
            "run", "--board", "sim", "--headless", "--update-root", root, "--update-interval", "0.5",
            "--set", "storage.data_dir=%s" % data]


def start_service(sshd, root, data):
    """systemd where the "Pi" runs it (a transient unit; supervise inside runs the boot check
    before each start, as ExecStartPre does in the real unit), else supervise in its own session."""
    inner = " ".join(shlex.quote(a) for a in service_args(root, data))
    if sshd.run("test -d /run/systemd/system && command -v systemd-run").returncode == 0:
        unit = "kapos-update-test-%d" % os.getpid()
        started = sshd.run("systemd-run --unit %s %s" % (unit, inner))
        assert started.returncode == 0, started.stderr
        return RemoteStream(sshd, "journalctl -f -o cat -u %s" % unit, "systemctl stop %s" % unit)
    command = "exec setsid sh -c %s" % shlex.quote("echo $$ > %s/service.pid; exec %s 2>&1" % (root, inner))
    return RemoteStream(sshd, command, "kill -TERM -- -$(cat %s/service.pid)" % shlex.quote(root))


def test_a_terminal_on_an_ssh_pi_updates_itself(sshd, tmp_path):  # noqa: F811
    site = Site(str(tmp_path))
    site.release("1.0.0")
    server = serve(site.dir)
    root = str(tmp_path / "pi" / "opt-kapos-updates")
    data = str(tmp_path / "pi" / "var-lib-kapos")
    try:
        out = remote_kapos(sshd, "update", "init", "--root", root, "--url", server.url,
                           "--trusted-root", os.path.join(site.dir, "metadata", "1.root.json"))
        assert out.returncode == 0, out.stderr
        out = remote_kapos(sshd, "update", "apply", "--root", root)
        assert out.returncode == 0 and "installed 1.0.0" in out.stdout, out.stderr
        service = start_service(sshd, root, data)
        try:
            service.wait_for("trial boot of 1.0.0")
            service.wait_for("1.0.0 confirmed itself")
            site.release("2.0.0")
            service.wait_for("switched to 2.0.0")
            service.wait_for("2.0.0 confirmed itself")
        finally:
            service.stop()
        status = remote_kapos(sshd, "update", "status", "--root", root)
        assert "running   2.0.0" in status.stdout and "previous  1.0.0" in status.stdout, status.stdout
        assert Layout(root).state()["last"]["result"] == "confirmed"
    finally:
        server.stop()
