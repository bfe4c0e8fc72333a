"""The issue's must-show: a scripted sale on the pico-w port's simulated buses, run inside
MicroPython, approved by the reference host over TCP on loopback. MicroPython's
WebAssembly build has no sockets, so its asyncio streams are bridged through node's `net`
(tools/mpy/run.mjs --bridge, loopback only); everything above the stream - ISO 8583,
DUKPT PIN block, MACs, field 48 EC, framing - is the firmware's own code in MicroPython."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import mpjs
from kapos.app.testkeys import TEST_BDK, ik_id_for
from kapos.security.dukpt import derive_initial_key

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def start_host(db):
    proc = subprocess.Popen([sys.executable, "-m", "kapos_tools.host", "--auto-enroll",
                             "--listen", "127.0.0.1:0", "--db", db],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    line = proc.stdout.readline().decode()
    assert "listening" in line, line + proc.stderr.read().decode()
    host, port = line.split()[4].rsplit(":", 1)
    return proc, host, int(port)


def sale_script(host, port, terminal_id="KAPOS001"):
    ik_id = ik_id_for(terminal_id)
    now = time.time()
    expiry = time.strftime("%y%m", time.gmtime(now + 3 * 365 * 86400))
    config = {"host": host, "port": port, "terminal_id": terminal_id, "merchant_id": "KAPOSMERCHANT01",
              "ik": derive_initial_key(TEST_BDK, ik_id).hex(), "ik_id": ik_id.hex(),
              "time": now, "date": time.strftime("%Y%m%d", time.localtime(now)),
              "utc": list(time.gmtime(now))[:6], "local": list(time.localtime(now))[:6], "expiry": expiry}
    with open(os.path.join(HERE, "inside", "pico_sale.py")) as f:
        body = f.read()
    boot = "import gc\nBOOT_TOTAL = gc.mem_free() + gc.mem_alloc()\n"  # the heap before any import
    return boot + "import json\nCONFIG = json.loads(%r)\n" % json.dumps(config) + body + "\nawait sale()\n"


def test_scripted_pico_w_sale_inside_micropython_is_approved_by_the_reference_host(tmp_path):
    reason = mpjs.missing()
    if reason:
        pytest.skip(reason)
    proc, host, port = start_host(str(tmp_path / "host.db"))
    try:
        out = mpjs.run(sale_script(host, port), bridge=True, timeout=300)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    assert lines["OUTCOME"].startswith("approved"), out.stdout + err.decode()[-2000:]
    assert lines["RECEIPT"] == "1b40"  # ESC @ then the receipt lines on the UART
    assert lines["COUNTER"] == "2"  # one KSN used, and the next counter was on flash first
    assert "0200 KAPOS001" in err.decode()
