"""The Pico W memory budget, measured under MicroPython (the npm WebAssembly build, 1.27).

A scripted sale and a settlement on the pico-w port (tests/micropython/inside/pico_sale.py)
run against the reference host on loopback, importing the .mpy files `kapos flash` copies
(mpy-cross, no source on the board). Figures are gc.mem_alloc() in bytes of heap in use:

- this build's gc.collect() does nothing inside a run (it cannot scan the wasm stack); called
  there, it makes the next top-level run start with a collection (without it, collections
  come only when the heap fills). So every event of the sale is its own top-level run that
  ends with that request: 'live' is the heap in use at an event boundary, after a collect
  (what a Pico W's heap holds between events), 'bound' the live heap plus all an event
  allocated without any collection (an upper bound: the real peak within an event lies
  between the two);
- objects JS holds (each run's result, the bridge's promise callbacks) stay in the heap
  until node's collector finalizes their proxies: tools/mpy/run.mjs has node collect
  before each step, since a Pico W holds no such objects;
- 'imports' is what importing the port cost (bytecode loaded from .mpy, qstrs, the
  modules' globals, classes and tables); a frozen firmware keeps bytecode, qstrs and
  constants in flash, so it sees the 'without imports' column plus the part of imports
  that is RAM objects (not separable here);
- the WebAssembly build has no cryptolib, so its imports include the pure-Python AES
  block (security/aes_soft.py, about 9 KB) and the 'bound' figures its garbage: a Pico W
  uses cryptolib instead.
The budget is 150 KB of a Pico W's 264 KB RAM."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "micropython"))
sys.path.insert(0, os.path.join(ROOT, "tools", "mpy"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

BUDGET = 150 * 1024
HEAP = 150 * 1024  # the starting heap (this build grows it on demand: the figures say what was used)


def measure(tmpdir, from_source=False):
    import pico_run

    lib = None if from_source else pico_run.build_mpy(os.path.join(tmpdir, "build"))
    lines, out, err = pico_run.run_sale(tmpdir, heap=HEAP, mpy_lib=lib)
    if out.returncode != 0 or not lines.get("OUTCOME", "").startswith("approved"):
        raise RuntimeError((out.stderr or out.stdout)[-800:])
    f = pico_run.figures(lines)
    f["outcome"] = lines["OUTCOME"]
    f["settled"] = lines.get("SETTLE-SCREEN", "")
    return f


def kb(n):
    return "%7.1f KB" % (n / 1024.0)


def main():
    import tempfile

    import mpjs

    reason = mpjs.missing()
    if reason:
        print("   skipped: " + reason)
        return
    with tempfile.TemporaryDirectory() as tmp:
        f = measure(tmp)
    with tempfile.TemporaryDirectory() as tmp:
        src = measure(tmp, from_source=True)
    imports = f["imports"]
    frozen = imports  # a frozen firmware keeps bytecode and qstrs in flash (estimate below)
    print("   heap in use (gc.mem_alloc); heap limit: starts at %s and this WebAssembly build grows"
          % kb(HEAP).strip())
    print("   it on demand (it reached %s), so the budget is checked on the figures, not by a"
          % kb(f["heap_total"]).strip())
    print("   MemoryError; a Pico W has about 150 KB of heap after MicroPython's own RAM")
    print("                                             .mpy files (kapos flash)   frozen (estimate)")
    print("   boot (the harness, before any import)  %s" % kb(f["boot"]))
    print("   imports (bytecode, qstrs, globals)     %s" % kb(imports))
    print("   after start-up                         %s                  %s" % (kb(f["start"]), kb(f["start"] - frozen)))
    print("   sale peak, live between events         %s                  %s  (%s)"
          % (kb(f["sale_live"]), kb(f["sale_live"] - frozen), f["outcome"].strip()))
    print("   sale, bound within an event            %s                  %s" % (kb(f["sale_bound"]),
                                                                                 kb(f["sale_bound"] - frozen)))
    settled = "agreed" if "Totals agreed" in f["settled"] else "NOT agreed"
    print("   settlement peak, live between events   %s                  %s  (totals %s)"
          % (kb(f["settle_live"]), kb(f["settle_live"] - frozen), settled))
    print("   settlement, bound within an event      %s                  %s" % (kb(f["settle_bound"]),
                                                                                 kb(f["settle_bound"] - frozen)))
    peak = max(f["sale_live"], f["settle_live"])
    print("   budget %s: .mpy files -> sale %s, settlement %s; frozen -> %s (plus the RAM part of"
          " the imports, not separable here)"
          % (kb(BUDGET).strip(), "within" if f["sale_live"] < BUDGET else "OVER",
             "within" if f["settle_live"] < BUDGET else "OVER",
             "within" if peak - frozen < BUDGET else "OVER"))
    print("   from source instead of .mpy: imports %s, peak %s (compiling on the board costs heap)"
          % (kb(src["imports"]).strip(), kb(max(src["sale_live"], src["settle_live"])).strip()))


if __name__ == "__main__":
    main()
