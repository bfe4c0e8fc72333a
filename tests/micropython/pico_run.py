"""Run the scripted Pico W sale + settlement (inside/pico_sale.py) in MicroPython against a
reference host on loopback, from source or from the .mpy tree `kapos flash` would copy.
Used by test_mpy_pico_sale.py and the memory bench (tools/bench/bench_micropython.py)."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import mpjs
from kapos.simdata.keys import TEST_BDK, ik_id_for
from kapos.security.dukpt import derive_initial_key

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))


def start_host(db):
    proc = subprocess.Popen([sys.executable, "-m", "kapos_tools.host", "--auto-enroll",
                             "--listen", "127.0.0.1:0", "--db", db],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    line = proc.stdout.readline().decode()
    assert "listening" in line, line + proc.stderr.read().decode()
    host, port = line.split()[4].rsplit(":", 1)
    return proc, host, int(port)


MAX_EVENTS = 64  # more than inside/pico_sale.py's EVENTS; the extra steps do nothing


def sale_script(host, port, harness_dir, terminal_id="KAPOS001"):
    """(script, steps): the top-level runs of the scripted sale. harness_dir gets
    inside/pico_sale.py compiled with mpy-cross (imported from /harness) and config.json."""
    ik_id = ik_id_for(terminal_id)
    now = time.time()
    expiry = time.strftime("%y%m", time.gmtime(now + 3 * 365 * 86400))
    config = {"host": host, "port": port, "terminal_id": terminal_id, "merchant_id": "KAPOSMERCHANT01",
              "ik": derive_initial_key(TEST_BDK, ik_id).hex(), "ik_id": ik_id.hex(),
              "time": now, "date": time.strftime("%Y%m%d", time.localtime(now)),
              "utc": list(time.gmtime(now))[:6], "local": list(time.localtime(now))[:6], "expiry": expiry}
    os.makedirs(harness_dir, exist_ok=True)
    with open(os.path.join(harness_dir, "config.json"), "w") as f:
        json.dump(config, f)
    _compile(os.path.join(HERE, "inside", "pico_sale.py"), os.path.join(harness_dir, "pico_sale.mpy"))
    # BOOT: the heap before any firmware import (the harness module itself included)
    script = ("import gc\nimport sys\nsys.path.append('/harness')\n"
              "from pico_sale import *\nconfigure('/harness/config.json')\ncollect_before_next_run()\n")
    steps = ["BOOT_ALLOC = gc.mem_alloc()", "load()", 'mark("imports", begin())', "await setup()",
             'mark("start", begin())']
    steps += ["if %d < len(EVENTS):\n    await run_event(%d)" % (i, i) for i in range(MAX_EVENTS)]
    steps += ['mark("end", begin())', 'print("BOOT %d" % BOOT_ALLOC)', "report()"]
    return script, steps


def _compile(source, target):
    from kapos_tools.flash.pico_build import check_mpy_cross, find_mpy_cross

    tool = check_mpy_cross(find_mpy_cross())
    subprocess.run([tool, "-o", target, "-s", os.path.basename(source), source], check=True,
                   capture_output=True, timeout=60)


def figures(lines):
    """The memory figures (bytes) from the HEAP lines of a run."""
    marks = lines["marks"]

    def live(label):
        return [m[1] for m in marks if m[0] == label]

    def allocated(label):
        return [m[2] for m in marks if m[0] == label]

    boot = int(lines["BOOT"])
    sale_live = live("sale") + live("settle")[:1]  # the heap after the last sale event too
    settle_live = live("settle") + live("end")
    return {"boot": boot, "imports": live("imports")[0] - boot, "start": live("start")[0],
            "sale_live": max(sale_live), "sale_bound": max(allocated("sale")),
            "settle_live": max(settle_live), "settle_bound": max(allocated("settle")),
            "heap_total": int(lines["HEAP-TOTAL"])}


def build_mpy(out_dir):
    """The .mpy tree of `kapos flash --board pico-w` (out_dir/lib/kapos)."""
    from kapos_tools.flash.pico_build import build_tree

    build_tree(ROOT, out_dir)
    return os.path.join(out_dir, "lib")


def parse(stdout):
    lines = dict(line.split(" ", 1) for line in stdout.splitlines() if " " in line and line[:1].isupper())
    lines["marks"] = [(p[1], int(p[2]), int(p[3])) for p in (line.split() for line in stdout.splitlines())
                      if len(p) == 4 and p[0] == "HEAP"]
    info = stdout.split("MEMINFO-BEGIN", 1)[-1].split("MEMINFO-END", 1)[0]
    match = re.search(r"GC: total: (\d+)", info)
    lines["HEAP-TOTAL"] = match.group(1) if match else "0"
    return lines


def run_sale(tmpdir, heap=None, mpy_lib=None):
    """(parsed lines, CompletedProcess, host stderr). mpy_lib: a built .mpy tree for /lib
    (no source copied), else firmware/kapos is copied as source."""
    proc, host, port = start_host(os.path.join(tmpdir, "host.db"))
    try:
        harness = os.path.join(tmpdir, "harness")
        script, steps = sale_script(host, port, harness)
        copies = [(harness, "/harness")] + ([(mpy_lib, "/lib")] if mpy_lib else [])
        out = mpjs.run(script, copies=copies, kapos=mpy_lib is None, bridge=True, heap=heap,
                       timeout=300, steps=steps)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    return parse(out.stdout), out, err.decode()
