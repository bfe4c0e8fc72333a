"""The Pico W memory budget, measured under MicroPython (the npm WebAssembly build).

A scripted sale on the pico-w port (tests/micropython/inside/pico_sale.py) runs against
the reference host on loopback; gc.mem_alloc() is read after start-up (after a collect)
and around every command of the sale (the peak). The budget is 150 KB of a Pico W's
264 KB RAM. This build grows its heap on demand instead of failing, so the figure is
what the sale needed, and 'grew' says whether the 150 KB starting heap was exceeded."""

import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "micropython"))
sys.path.insert(0, os.path.join(ROOT, "tools", "mpy"))

BUDGET = 150 * 1024


def measure(tmpdir):
    import mpjs
    import test_mpy_pico_sale as sale

    proc, host, port = sale.start_host(os.path.join(tmpdir, "host.db"))
    try:
        out = mpjs.run(sale.sale_script(host, port), bridge=True, heap=BUDGET, timeout=300)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-500:])
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    return {"start": int(lines["HEAP-START"]), "peak": int(lines["HEAP-PEAK"]),
            "grew": int(lines["HEAP-GREW"]), "outcome": lines["OUTCOME"]}


def main():
    import tempfile

    import mpjs

    reason = mpjs.missing()
    if reason:
        print("   skipped: " + reason)
        return
    with tempfile.TemporaryDirectory() as tmp:
        f = measure(tmp)
    print("   heap after start-up   %7.1f KB" % (f["start"] / 1024.0))
    print("   peak during a sale    %7.1f KB  (%s)" % (f["peak"] / 1024.0, f["outcome"]))
    print("   budget                %7.1f KB  -> %s" % (BUDGET / 1024.0, "within" if f["peak"] < BUDGET else "OVER"))
    print("   heap grown past 150 KB %6.1f KB  (a Pico W cannot grow: over budget = MemoryError)" % (f["grew"] / 1024.0))
    print("   settlement: not measured (the pico-w port has no settlement yet)")


if __name__ == "__main__":
    main()
