"""An outsider's view of the reference host: a real `kapos host` process on 127.0.0.1, and
messages written from docs/protocol.md with kapos.host (codec, spec) and kapos.security
(DUKPT, CMAC) - not through the terminal's host client.

    host = HostProcess(tmp_path, "--auto-enroll")
    device = Device("KAPOS001")                  # the IK ID kapos gives that terminal id
    reply = host.exchange(device.sale(stan=1, amount=500))
"""

import os
import signal
import socket
import struct
import subprocess
import sys
import time

from kapos.simdata.keys import TEST_BDK, ik_id_for
from kapos.host import codec
from kapos.host import messages as m
from kapos.security import dukpt
from kapos.security.cmac import aes_cmac, aes_cmac_verify

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MERCHANT = "KAPOS-MERCHANT1"
VISA_PAN = "4111111111111111"  # the public test card visa-debit (balance 100000)


def far_expiry():
    t = time.gmtime()
    return "%02d%02d" % ((t.tm_year + 4) % 100, t.tm_mon)


class HostProcess:
    """`python -m kapos_tools.host --listen 127.0.0.1:0 --db <tmp>/host.db ...`, its
    stderr in a file (so a test can measure the log)."""

    def __init__(self, directory, *args, preexec_fn=None, env=None):
        self.directory = str(directory)
        self.db = os.path.join(self.directory, "host.db")
        self.log_path = os.path.join(self.directory, "host.log")
        self._log = open(self.log_path, "wb")
        command = [sys.executable, "-m", "kapos_tools.host", "--listen", "127.0.0.1:0",
                   "--db", self.db] + list(args)
        self.command = command
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._log, cwd=ROOT,
                                     preexec_fn=preexec_fn, env=env)
        line = self.proc.stdout.readline().decode()
        if "listening" not in line:
            self.stop()
            raise AssertionError("the host did not start: %r %s" % (line, self.log()))
        self.port = int(line.split()[4].rsplit(":", 1)[1])

    def balance(self, masked_pan="411111******1111"):
        """An account's balance as `kapos host --show-ledger` prints it."""
        shown = subprocess.run([sys.executable, "-m", "kapos_tools.host", "--db", self.db,
                                "--show-ledger"], capture_output=True, text=True, cwd=ROOT,
                               timeout=30)
        assert shown.returncode == 0, shown.stderr
        for line in shown.stdout.splitlines():
            if line.strip().startswith(masked_pan):
                return int(line.split()[1])
        raise AssertionError("no account %s in the ledger" % masked_pan)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stdout.close()
        self._log.close()

    def connect(self, timeout=5.0, source=None):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout,
                                        source_address=(source, 0) if source else None)
        return sock

    def exchange(self, data, timeout=5.0, sock=None, source=None):
        """Send one framed message, return (decoded reply, raw reply bytes)."""
        own = sock is None
        sock = sock or self.connect(timeout, source)
        try:
            sock.sendall(struct.pack(">H", len(data)) + data)
            raw = read_frame(sock)
        finally:
            if own:
                sock.close()
        return codec.decode(raw), raw


def read_frame(sock):
    head = _read_exactly(sock, 2)
    return _read_exactly(sock, struct.unpack(">H", head)[0])


def _read_exactly(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("the host closed the connection")
        out += chunk
    return out


class Device:
    """A terminal's DUKPT identity as someone holding its keys sees it (test BDK: public)."""

    def __init__(self, terminal_id, ik_id=None, bdk=TEST_BDK, merchant=MERCHANT):
        self.terminal_id = terminal_id
        self.ik_id = ik_id or ik_id_for(terminal_id)
        self.bdk = bdk
        self.merchant = merchant
        self.counter = 0

    def ksn(self, counter=None):
        if counter is None:
            self.counter += 1
            counter = self.counter
        return dukpt.make_ksn(self.ik_id, counter)

    def seal(self, message, ksn):
        """Field 53 + the request MAC (field 64/128) under the KSN's MAC generation key."""
        message = dict(message)
        message[53] = ksn
        message[codec.mac_field(message)] = bytes(8)
        data = codec.encode(message)
        key = dukpt.host_derive_working_key(self.bdk, ksn, dukpt.MAC_GENERATION)
        return codec.with_mac(data, aes_cmac(key, codec.mac_input(data))[:8])

    def reply_mac_ok(self, raw, ksn):
        reply = codec.decode(raw)
        field = codec.mac_field(reply)
        if field not in reply:
            return False
        key = dukpt.host_derive_working_key(self.bdk, ksn, dukpt.MAC_VERIFICATION)
        return aes_cmac_verify(key, codec.mac_input(raw), reply[field], tag_len=8)

    def sale_message(self, stan, amount, terminal_id=None, pan=VISA_PAN):
        now = time.gmtime()
        return m.build_financial_request("sale", amount, stan, now, now,
                                         terminal_id or self.terminal_id, self.merchant,
                                         "978", pan=pan, expiry=far_expiry(),
                                         private={"BN": "000001"},
                                         from_account=m.ACCOUNT_CHECKING)

    def sale(self, stan, amount, ksn=None, terminal_id=None):
        """(bytes, ksn) of a MACed 0200 sale on the test Visa card."""
        ksn = ksn or self.ksn()
        return self.seal(self.sale_message(stan, amount, terminal_id), ksn), ksn

    def echo(self, stan, ksn=None, terminal_id=None):
        ksn = ksn or self.ksn()
        message = m.build_network(m.NETWORK_ECHO, stan, time.gmtime(),
                                  terminal_id or self.terminal_id)
        return self.seal(message, ksn), ksn
