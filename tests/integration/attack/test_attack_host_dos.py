"""Denial of service on the reference host: floods of idle and half-sent connections.

Before the connection limits, 1,100 idle sockets from one client under the usual 1,024
open-file limit stopped every terminal (the host accepted until EMFILE and then nobody
else), and the log grew by megabytes of accept() tracebacks."""

import os
import resource
import select
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")

from hostwire import ROOT, Device, HostProcess, read_frame

FLOOD = 1100
HOST_FD_LIMIT = 1024
LOG_BOUND = 20000  # bytes of host log for the whole flood


def _raise_own_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return soft
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip("this machine allows only %d open files" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return soft


def _limit_host_fds():
    resource.setrlimit(resource.RLIMIT_NOFILE, (HOST_FD_LIMIT, HOST_FD_LIMIT))


def _flood(port, count, sources, host_pid=None, batch=50):
    """`count` connections that never send a byte, spread over `sources`, opened in
    batches; with `host_pid`, each batch waits until the host has taken it in (its open
    descriptors stop changing), so the backlog never overflows and the host really holds
    what it accepted."""
    socks = []
    for start in range(0, count, batch):
        opened = []
        for i in range(start, min(count, start + batch)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.bind((sources[i % len(sources)], 0))
            s.connect_ex(("127.0.0.1", port))
            opened.append(s)
        _wait_connected(opened)
        socks += opened
        if host_pid is not None:
            _wait_until_host_settles(host_pid, seconds=2, polls=2, interval=0.05)
    return socks


def _wait_connected(socks, seconds=5):
    poller = select.poll()
    pending = {s.fileno(): s for s in socks}
    for fd in pending:
        poller.register(fd, select.POLLOUT)
    deadline = time.monotonic() + seconds
    while pending and time.monotonic() < deadline:  # the handshakes, bounded
        for fd, _ in poller.poll(500):
            poller.unregister(fd)
            pending.pop(fd, None)


def _wait_until_host_settles(pid, seconds=10, polls=5, interval=0.1):
    """Until the host's count of open descriptors stops changing (it has taken in the
    flood, as far as it can): bounded, and observed rather than guessed."""
    fd_dir = "/proc/%d/fd" % pid
    last, steady = -1, 0
    deadline = time.monotonic() + seconds
    while steady < polls and time.monotonic() < deadline:
        count = len(os.listdir(fd_dir))
        steady = steady + 1 if count == last else 0
        last = count
        time.sleep(interval)
    return last


def _sale(port, device, stan, timeout):
    data, _ = device.sale(stan, 100)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(len(data).to_bytes(2, "big") + data)
        from kapos.host import codec

        return codec.decode(read_frame(sock))


def test_a_terminal_completes_a_sale_while_1100_idle_connections_are_held(tmp_path):
    old_soft = _raise_own_fd_limit(FLOOD + 400)
    started = time.monotonic()
    host = HostProcess(tmp_path, "--auto-enroll", preexec_fn=_limit_host_fds)
    socks = []
    try:
        # 1,100 idle connections from 40 loopback addresses (28 each: under the per-address
        # cap, so the total cap is what must hold)
        sources = ["127.0.0.%d" % n for n in range(10, 50)]
        socks = _flood(host.port, FLOOD, sources, host.proc.pid)
        held = _wait_until_host_settles(host.proc.pid)
        assert held < HOST_FD_LIMIT - 32, "the host keeps descriptors in reserve (%d)" % held
        reply = _sale(host.port, Device("KAPOS001"), 1, timeout=10)
        assert reply[39] == "00", "a terminal got through the flood"
        # and the same from the flooding address itself: it takes an idle socket's place
        flood_source = Device("KAPOS002")
        data, _ = flood_source.sale(1, 100)
        with socket.create_connection(("127.0.0.1", host.port), timeout=10,
                                      source_address=(sources[0], 0)) as sock:
            sock.sendall(len(data).to_bytes(2, "big") + data)
            from kapos.host import codec

            assert codec.decode(read_frame(sock))[39] == "00"
    finally:
        for s in socks:
            s.close()
        host.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (old_soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    size = os.path.getsize(host.log_path)
    assert size < LOG_BOUND, "the log grew by %d bytes" % size
    assert "Traceback" not in host.log()
    assert time.monotonic() - started < 30


def test_half_sent_frames_and_idle_sockets_are_timed_out(tmp_path):
    host = HostProcess(tmp_path, "--auto-enroll", "--frame-timeout", "0.5", "--idle-timeout",
                       "1")
    try:
        half = host.connect()
        half.sendall(b"\x00\x40" + b"0200")  # promises 64 bytes, sends 4
        idle = host.connect()
        # the host closes both by itself: recv sees EOF well before our own 5 s timeout
        for sock in (half, idle):
            sock.settimeout(5)
            assert sock.recv(10) == b""
            sock.close()
        assert _sale(host.port, Device("KAPOS001"), 1, timeout=5)[39] == "00"
    finally:
        host.stop()
    log = host.log()
    assert "frame unfinished after 0.5 s (6 bytes)" in log and "idle for 1 s" in log


CHILD = r"""
import asyncio, logging, resource, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                    format="%(levelname)s %(name)s: %(message)s")
from kapos.simdata.keys import TEST_BDK
from kapos_tools.host import HostServer, Ledger
from kapos_tools.host.mac import HostDukptMac
from kapos_tools.host.registry import TerminalRegistry

async def main():
    ledger = Ledger(":memory:")
    ledger.load_cards()
    server = HostServer(ledger, mac=HostDukptMac(TEST_BDK),
                        registry=TerminalRegistry(ledger.db, auto_enroll=True))
    _, port = await server.start_tcp("127.0.0.1", 0)
    # caps above what the descriptors allow, on purpose: accept() itself must fail (EMFILE)
    server.limits.max_connections = server.limits.max_per_peer = 100000
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (48, hard))
    print(port, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_out_of_descriptors_the_host_sheds_connections_and_recovers(tmp_path):
    log_path = str(tmp_path / "child.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE,
                                stderr=log, cwd=ROOT)
    try:
        port = int(proc.stdout.readline())
        socks = _flood(port, 300, ["127.0.0.1"])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the host says it ran out (bounded)
            with open(log_path, "rb") as f:
                if b"cannot accept" in f.read():
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the host never ran out of descriptors")
        for s in socks:
            s.close()
        reply = None
        device = Device("KAPOS001")
        deadline = time.monotonic() + 10
        while reply is None and time.monotonic() < deadline:  # descriptors free up
            try:
                reply = _sale(port, device, 1, timeout=2)
            except (ConnectionError, socket.timeout):
                reply = None
        assert reply is not None and reply[39] == "00", "the host serves again"
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(5)
        proc.stdout.close()
    size = os.path.getsize(log_path)
    assert size < LOG_BOUND, "the log grew by %d bytes" % size
    with open(log_path, "rb") as f:
        assert b"Traceback" not in f.read()
