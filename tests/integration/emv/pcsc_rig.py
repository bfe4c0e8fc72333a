"""The real pcscd (foreground, started by the test, reader configuration of its own) with
vsmartcard's vpcd driver pointed at a virtual EMV card served on 127.0.0.1 by
kapos.ports.sim.vpcd_card. Skips, with the reason, only where a part cannot be had."""

import contextlib
import os
import shutil
import socket
import subprocess
import time

import pytest

VPCD_DRIVER = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
PCSCD_SOCKET = "/run/pcscd/pcscd.comm"


def pcscd_binary():
    return shutil.which("pcscd") or (os.path.exists("/usr/sbin/pcscd") and "/usr/sbin/pcscd")


def missing():
    """Why the PC/SC tests cannot run here, or None."""
    if not pcscd_binary():
        return "pcscd is not installed (Debian package pcscd; make test installs it as root)"
    if not os.path.exists(VPCD_DRIVER):
        return "vsmartcard's vpcd driver is not installed (Debian package vsmartcard-vpcd)"
    try:
        import smartcard  # noqa: F401
    except ImportError:
        return "pyscard is not installed (pip install '.[pcsc]', needs swig and libpcsclite-dev)"
    if os.path.exists(PCSCD_SOCKET):
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(PCSCD_SOCKET)
            return "another pcscd already serves %s" % PCSCD_SOCKET
        except OSError:
            pass  # a stale socket file: pcscd replaces it
        finally:
            probe.close()
    if os.geteuid() != 0 and not os.access("/run/pcscd", os.W_OK):
        return "pcscd needs to write /run/pcscd (run as root, as CI does)"
    return None


@contextlib.contextmanager
def running_pcscd(cards, tmp_path, timeout=10.0):
    """pcscd in the foreground with a reader.conf.d of its own that points vpcd at `cards`
    (a VpcdCardPair); yields once vpcd is connected to both slots; stopped after."""
    conf = tmp_path / "reader.conf.d"
    conf.mkdir()
    (conf / "vpcd").write_text(cards.reader_conf())
    log = open(tmp_path / "pcscd.log", "w")
    proc = subprocess.Popen([pcscd_binary(), "--foreground", "--config", str(conf), "--info"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        for slot in (cards.slot, cards.spare):
            if not slot.connected.wait(max(0.0, deadline - time.monotonic())):
                raise AssertionError("vpcd did not connect: %s" % (tmp_path / "pcscd.log").read_text()[-2000:])
        from smartcard.System import readers
        while time.monotonic() < deadline:  # pcscd answers clients once it is ready
            try:
                if readers():
                    break
            except Exception:
                pass
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        cards.close()


def skip_unless_available():
    reason = missing()
    if reason:
        pytest.skip(reason)
