#!/usr/bin/env python3
"""Benchmark: CPU instructions the reference host spends per authorization, counted by
valgrind (callgrind), so that a change can be judged on this shared VM where wall-clock and
CPU-time figures move by up to ~30 % from run to run; the count repeats within ~0.1 %.

What runs is the host's own path, in process, on SQLite: `HostServer._run_batch` over
prepared, MACed 0200 sales (DUKPT keys per message, card data enciphered in field 48) from
64 terminals, in groups of 64 and in groups of random size 1-64 (as under load). The
program runs twice under callgrind, with 2 and with 6 sales per terminal after sign-up;
the difference of the two totals over the 256 extra sales is the figure, so start-up,
imports and preparing the messages cancel out. Sockets and the event loop are not in it:
`bench_host_scale.py` measures the whole host over TCP.

    .venv/bin/python tools/bench/bench_host_instructions.py

Needs valgrind (Debian: valgrind; `make bench` installs it); without it says so and stops.
"""

import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TERMINALS = 64
FEW, MANY = 2, 6  # sales per terminal in the two runs


def _child(sales, vary):
    sys.path[:0] = [os.path.join(ROOT, "tools", "bench"), os.path.join(ROOT, "tools"),
                    os.path.join(ROOT, "firmware")]
    import bench_host_scale as scale

    directory = tempfile.mkdtemp(prefix="kapos-bench-ir-")
    try:
        ledger, server, streams = scale.in_process_host(
            os.path.join(directory, "host.db"), directory, TERMINALS, MANY + 1)
        order = [stream[k] for k in range(1, 1 + sales) for stream in streams]
        sizes = random.Random(1)
        start = 0
        while start < len(order):
            size = sizes.randint(1, 64) if vary else 64
            results = server._run_batch([(p, None, None) for p in order[start:start + size]])
            assert all(error is None for _, error in results), results
            start += size
        ledger.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _instructions(sales, vary):
    env = dict(os.environ, PYTHONHASHSEED="0")
    with tempfile.TemporaryDirectory(prefix="kapos-callgrind-") as directory:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind",
             "--callgrind-out-file=" + os.path.join(directory, "callgrind.out"),
             sys.executable, os.path.abspath(__file__), "--child", str(sales),
             "1" if vary else "0"],
            env=env, capture_output=True, text=True, timeout=900)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or not found:
        raise SystemExit("callgrind run failed:\n" + done.stderr[-2000:])
    return int(found.group(1))


def main():
    if shutil.which("valgrind") is None:
        print("bench_host_instructions: valgrind is not installed (Debian: apt-get install "
              "valgrind; make bench installs it): skipped")
        return
    print("bench_host_instructions: CPU instructions per authorization in the host's own "
          "path (callgrind; SQLite, %d terminals, DUKPT MACs, in process, no sockets)"
          % TERMINALS)
    from bench_host_scale import interpreter  # (this directory: the script's own)
    print("  python: %s (the count depends on how it was built: docs/host.md, \"Which "
          "Python\")" % interpreter())
    for label, vary in (("groups of 64", False), ("groups of 1-64", True)):
        extra = TERMINALS * (MANY - FEW)
        per_sale = (_instructions(MANY, vary) - _instructions(FEW, vary)) / extra
        print("  %-16s %9.0f instructions per authorization (%d sales)" % (label, per_sale, extra),
              flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(int(sys.argv[2]), sys.argv[3] == "1")
    else:
        main()
