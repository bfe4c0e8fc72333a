"""A local SSH "Pi": Debian's sshd on 127.0.0.1, a free non-default port, everything in a
temp dir (its own host key, one authorized client key, known_hosts pinned to that host
key). Started and stopped by the test itself; skipped with the reason when sshd or ssh is
not installed (the Makefile installs openssh-server when it runs as root).

    from rigs.sshd import sshd          # the fixture (tests/ is on sys.path)

    def test_something(sshd):
        out = sshd.run("echo hello")    # a command on the "Pi", as the current user
        subprocess.run(["ssh"] + sshd.ssh_options + [sshd.target, "uname"])
        subprocess.run(["rsync", "-e", sshd.rsh, "src/", sshd.target + ":dest/"])
"""

import os
import queue
import shlex
import shutil
import socket
import subprocess
import threading
import time
import pwd

import pytest

SSHD_PATHS = ("/usr/sbin/sshd", "/usr/bin/sshd")
START_TIMEOUT = 15.0


def find_sshd():
    for path in SSHD_PATHS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("sshd")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SshdRig:
    def __init__(self, base):
        self.base = str(base)
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.port = None
        self.proc = None
        self.host_key = os.path.join(self.base, "ssh_host_ed25519_key")
        self.client_key = os.path.join(self.base, "id_ed25519")
        self.known_hosts = os.path.join(self.base, "known_hosts")

    @property
    def target(self):
        return "%s@127.0.0.1" % self.user

    @property
    def ssh_options(self):
        return ["-p", str(self.port), "-i", self.client_key, "-o", "IdentitiesOnly=yes",
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", "UserKnownHostsFile=%s" % self.known_hosts, "-o", "ConnectTimeout=10"]

    @property
    def rsh(self):
        """The `-e` argument for rsync: ssh with these options."""
        return " ".join(shlex.quote(a) for a in ["ssh"] + self.ssh_options)

    def run(self, command, timeout=120, **kwargs):
        """Run a shell command on the "Pi"; CompletedProcess with text output."""
        return subprocess.run(["ssh"] + self.ssh_options + [self.target, command], capture_output=True,
                              text=True, timeout=timeout, **kwargs)

    def start(self):
        sshd = find_sshd()
        if sshd is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
            pytest.skip("openssh-server / openssh-client not installed (make test installs them as root)")
        os.makedirs(self.base, exist_ok=True)
        for key in (self.host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        authorized = os.path.join(self.base, "authorized_keys")
        shutil.copyfile(self.client_key + ".pub", authorized)
        os.chmod(authorized, 0o600)
        if os.getuid() == 0:  # sshd as root wants its privilege-separation directory
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.port = _free_port()
        with open(self.host_key + ".pub") as f:
            host_pub = " ".join(f.read().split()[:2])
        with open(self.known_hosts, "w") as f:
            f.write("[127.0.0.1]:%d %s\n" % (self.port, host_pub))
        config = os.path.join(self.base, "sshd_config")
        with open(config, "w") as f:
            f.write("\n".join([
                "Port %d" % self.port, "ListenAddress 127.0.0.1", "HostKey %s" % self.host_key,
                "PidFile %s" % os.path.join(self.base, "sshd.pid"),
                "AuthorizedKeysFile %s" % authorized, "PasswordAuthentication no",
                "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
                "PermitRootLogin prohibit-password", "AllowUsers %s" % self.user,
                "Subsystem sftp internal-sftp", "LogLevel INFO", ""]))
        self.proc = subprocess.Popen([sshd, "-D", "-e", "-f", config], stderr=subprocess.PIPE, text=True)
        lines = queue.Queue()

        def pump():
            for line in self.proc.stderr:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        seen = []
        while True:  # its own "Server listening" line is the event, not a sleep
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                pytest.fail("sshd did not start: %s" % "".join(seen[-10:]))
            seen.append(line)
            if "Server listening on 127.0.0.1 port %d" % self.port in line:
                return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def sshd(tmp_path):
    rig = SshdRig(tmp_path / "sshd").start()
    try:
        yield rig
    finally:
        rig.stop()
