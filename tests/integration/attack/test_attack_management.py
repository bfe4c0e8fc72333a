"""Attacks on a running terminal's management channel, from outside: a real `kapos run
--headless --manage 127.0.0.1:0` process, and a client written from docs/diagnostics.md
alone (raw sockets, one JSON object per line), not kapos's own client class.

Each test names the attack; on the old code every one of them succeeded."""

import json
import os
import socket
import stat
import subprocess
import sys
import time

import pytest

from kapos.simdata.keys import TEST_BDK_ID
from kapos.security import dukpt
from kapos.io.keystore import KeyStore

from hostwire import ROOT, HostProcess

START_TIMEOUT = 20.0  # a loaded CI machine; a healthy start takes about a second
OTHER_BDK = bytes(range(16))  # keys an attacker would like the terminal to use


class TerminalProcess:
    """`python -m kapos.cli run --headless --manage 127.0.0.1:0 ...` with its own data
    directory; `port` is read from the line the terminal prints when it listens."""

    def __init__(self, directory, *args):
        self.data_dir = os.path.join(str(directory), "var")
        os.makedirs(self.data_dir, exist_ok=True)
        self.log_path = os.path.join(str(directory), "terminal.log")
        self._log = open(self.log_path, "wb")
        command = [sys.executable, "-m", "kapos.cli", "run", "--headless", "--manage", "127.0.0.1:0",
                   "--set", 'storage.data_dir="%s"' % self.data_dir] + list(args)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAPOS_MANAGE")}
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._log, cwd=ROOT, env=env)
        self.port = self._wait_for_port()

    def _wait_for_port(self):
        import selectors

        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + START_TIMEOUT
        buffered = b""
        while time.monotonic() < deadline and b"\n" not in buffered:
            if not selector.select(deadline - time.monotonic()):
                break
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buffered += chunk
        selector.close()
        line = buffered.decode(errors="replace")
        if "management channel on" not in line:
            self.stop()
            raise AssertionError("the terminal never opened its management channel: %r\n%s" % (line, self.log()))
        return int(line.split()[-1].rsplit(":", 1)[1])

    @property
    def token_file(self):
        return os.path.join(self.data_dir, "manage-token")

    def token(self):
        with open(self.token_file) as f:
            return f.read().strip()

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stdout.close()
        self._log.close()


class Line:
    """One TCP connection speaking the protocol as docs/diagnostics.md describes it."""

    def __init__(self, port, source="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        self.buffer = b""

    def send_raw(self, data):
        self.sock.sendall(data)

    def reply(self):
        """The next reply line, parsed as strict JSON (no NaN, no Infinity); None at EOF."""
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line, parse_constant=_not_json)

    def ask(self, **request):
        self.send_raw((json.dumps(request) + "\n").encode())
        return self.reply()

    def closed(self):
        """True when the terminal closed the connection (whatever it sent first is dropped)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def _not_json(name):
    raise AssertionError("the reply is not strict JSON: it contains %s" % name)


def keys_of(port, token):
    """The loaded key's identity. The KSN counter is left out: the terminal's own 0800s
    (the start-up self-test report) may use a KSN between two looks; a key loaded by an
    attacker shows in the IK ID and the source."""
    line = Line(port)
    try:
        assert line.ask(cmd="auth", token=token)["ok"]
        keys = line.ask(cmd="keys_status")["keys"]
        return {k: v for k, v in keys.items() if k not in ("counter", "ksn")} | \
            {"ik_id_of_ksn": keys.get("ksn", "")[:16]}
    finally:
        line.close()


def attacker_keys_load():
    ik_id = b"\x99\x99\x99\x99" + b"\x00\x00\x00\x01"
    return {"cmd": "keys_load", "ik": dukpt.derive_initial_key(OTHER_BDK, ik_id).hex(), "ik_id": ik_id.hex()}


@pytest.fixture(scope="module")
def terminal(tmp_path_factory):
    """One terminal started as `make run` starts it (no token option: it makes its own),
    for the attacks that do not disturb each other."""
    process = TerminalProcess(tmp_path_factory.mktemp("mgmt-attack"))
    yield process
    process.stop()


# ---------------------------------------------------------------- who may load keys


def test_unauthenticated_keys_load_on_loopback_is_refused(terminal):
    before = keys_of(terminal.port, terminal.token())
    line = Line(terminal.port)
    reply = line.ask(id=1, **attacker_keys_load())
    line.close()
    assert reply["ok"] is False and "not authenticated" in reply["error"]
    assert keys_of(terminal.port, terminal.token()) == before


def test_an_http_post_from_a_web_page_closes_the_connection_and_changes_nothing(terminal):
    """What a page's fetch('http://127.0.0.1:7700', {method: 'POST', body: ...}) sends."""
    before = keys_of(terminal.port, terminal.token())
    body = "\n".join(json.dumps(r) for r in ({"cmd": "auth", "token": "guess"}, attacker_keys_load())) + "\n"
    request = ("POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nOrigin: http://evil.example\r\n"
               "Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (terminal.port, len(body), body))
    line = Line(terminal.port)
    line.send_raw(request.encode())
    first = line.reply()
    assert first is not None and first["ok"] is False and "bad JSON" in first["error"]
    assert line.closed()
    line.close()
    assert keys_of(terminal.port, terminal.token()) == before


# ---------------------------------------------------------------- exhausting the slots


def test_twenty_idle_unauthenticated_sockets_do_not_lock_out_an_authenticated_client(terminal):
    idle = []
    try:
        for _ in range(20):
            line = Line(terminal.port)
            line.send_raw(b'{"cmd": "hello"}\n')
            assert line.reply() is not None  # served (or told to go): the terminal has seen it
            idle.append(line)
        client = Line(terminal.port)
        idle.append(client)
        auth = client.ask(cmd="auth", token=terminal.token())
        assert auth["ok"] is True, auth
        counters = client.ask(cmd="counters")
        assert counters["ok"] is True and "approved" in counters["counters"]
    finally:
        for line in idle:
            line.close()


# ---------------------------------------------------------------- strict JSON


def test_a_nan_id_is_refused_and_the_reply_is_strict_json(terminal):
    line = Line(terminal.port)
    line.send_raw(b'{"id": NaN, "cmd": "status"}\n')
    reply = line.reply()  # parsed strictly: NaN or Infinity in it fails the test
    assert reply["ok"] is False and reply["id"] is None and "NaN" in reply["error"]
    assert line.closed()
    line.close()


# ---------------------------------------------------------------- the token


def test_a_token_given_by_file_is_not_in_the_command_line(tmp_path):
    given = "a-token-nobody-should-see-0123456789"
    token_file = tmp_path / "given.token"
    token_file.write_text(given + "\n")
    token_file.chmod(0o600)
    process = TerminalProcess(tmp_path, "--manage-token-file", str(token_file))
    try:
        with open("/proc/%d/cmdline" % process.proc.pid, "rb") as f:
            cmdline = f.read()
        assert b"--manage-token-file" in cmdline and given.encode() not in cmdline
        line = Line(process.port)
        assert line.ask(cmd="auth", token="not-" + given)["ok"] is False  # the file's token is the one
        line.close()
        line = Line(process.port, source="127.0.0.2")  # the wrong guess above backs off 127.0.0.1
        assert line.ask(cmd="auth", token=given)["ok"] is True
        assert line.ask(cmd="counters")["ok"] is True
        line.close()
    finally:
        process.stop()


def test_token_guessing_is_held_to_a_few_guesses(tmp_path):
    """Guesses from 50 loopback addresses, reconnecting whenever the terminal hangs up,
    for 3 s: only the back-off's handful is ever compared to the token."""
    process = TerminalProcess(tmp_path)
    try:
        mode = stat.S_IMODE(os.stat(process.token_file).st_mode)
        assert mode == 0o600 and len(process.token()) >= 32  # made at the first start
        checked = refused = 0
        sources = ["127.0.0.%d" % i for i in range(2, 52)]
        deadline = time.monotonic() + 3.0
        line, attempts = None, 0
        while time.monotonic() < deadline and attempts < 50000:
            if line is None:
                line = Line(process.port, source=sources[attempts % len(sources)])
            attempts += 1
            reply = line.ask(cmd="auth", token="guess-%d" % attempts)
            if reply is None:
                line.close()
                line = None
                continue
            assert reply["ok"] is False
            if reply["error"] == "wrong token":
                checked += 1
            else:
                refused += 1
            if attempts % 5 == 0:  # an attacker reconnects to dodge a per-connection limit
                line.close()
                line = None
        if line is not None:
            line.close()
        print("token guessing for 3 s: %d attempts, %d compared, %d refused unchecked"
              % (attempts, checked, refused))
        assert refused > checked  # the attack really ran at full speed ...
        assert checked <= 20, "%d guesses compared in 3 s" % checked  # ... and got nowhere
    finally:
        process.stop()


# ---------------------------------------------------------------- re-keying a tampered terminal


def tampered_data_dir(directory):
    data_dir = os.path.join(str(directory), "var")
    store = KeyStore(os.path.join(data_dir, "keys"))
    ik_id = TEST_BDK_ID + b"KAP1"
    store.install(bytes(16), ik_id, source="before the tamper")
    store.zeroize()
    assert store.tampered and not store.loaded
    return data_dir


def rekey_and_check(process, host_up):
    status = Line(process.port).ask(cmd="status")
    assert status["state"] == "LOCKED", status
    keys = subprocess.run([sys.executable, "-m", "kapos.cli", "keys", "load", "--terminal-id", "KAPOS001",
                           "--connect", "127.0.0.1:%d" % process.port,
                           "--manage-token-file", process.token_file],
                          capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert keys.returncode == 0, keys.stderr
    assert process.token() not in keys.stdout + keys.stderr
    line = Line(process.port, timeout=20)
    try:
        assert line.ask(cmd="auth", token=process.token())["ok"]
        loaded = line.ask(cmd="keys_status")["keys"]
        assert loaded["loaded"] is True and loaded["tampered"] is False
        state = line.ask(cmd="status")["state"]
        assert state == "IDLE", state
        host_check = [c for c in line.ask(cmd="selftest")["checks"] if c["name"] == "host"][0]
        assert host_check["ok"] is host_up, host_check  # with the new keys the host answers
    finally:
        line.close()


@pytest.mark.parametrize("host_up", [True, False], ids=["host-running", "host-absent"])
def test_a_tampered_iso8583_terminal_opens_its_channel_and_is_re_keyed(tmp_path, host_up):
    tampered_data_dir(tmp_path)
    host = HostProcess(tmp_path, "--auto-enroll") if host_up else None
    if host is not None:
        address = "127.0.0.1:%d" % host.port
    else:
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            address = "127.0.0.1:%d" % s.getsockname()[1]
    process = None
    try:
        process = TerminalProcess(tmp_path, "--set", 'host.mode="iso8583"', "--set",
                                  'host.address="%s"' % address)
        rekey_and_check(process, host_up)
    finally:
        if process is not None:
            process.stop()
        if host is not None:
            host.stop()


# ---------------------------------------------------------------- a card into the chip slot


def _insert_as_attacker(process, authenticate):
    """`inject insert` from a client that may or may not know the token; returns the reply
    and whether the terminal changed at all (status `seq`, state, screen)."""
    line = Line(process.port)
    try:
        before = line.ask(cmd="status")
        if authenticate:
            assert line.ask(cmd="auth", token=process.token())["ok"]
        reply = line.ask(cmd="inject", insert="emv-tap", profile="mchip")
        after = line.ask(cmd="status")
    finally:
        line.close()
    changed = any(before[k] != after[k] for k in ("seq", "state", "screen"))
    return reply, changed


def test_a_chip_card_cannot_be_inserted_without_the_token_or_outside_test_mode(tmp_path):
    test_mode = TerminalProcess(tmp_path / "test-mode", "--board", "sim-nfc", "--test-mode")
    try:
        reply, changed = _insert_as_attacker(test_mode, authenticate=False)
        assert reply["ok"] is False and "not authenticated" in reply["error"] and not changed
        # the same request with the token is what HIL sends: it does insert the card
        reply, _ = _insert_as_attacker(test_mode, authenticate=True)
        assert reply["ok"] is True and reply["injected"] == "insert" and reply["handled"] is True, reply
    finally:
        test_mode.stop()
    service = TerminalProcess(tmp_path / "service", "--board", "sim-nfc")
    try:
        reply, changed = _insert_as_attacker(service, authenticate=True)
        assert reply["ok"] is False and "only available in test mode" in reply["error"] and not changed
    finally:
        service.stop()
