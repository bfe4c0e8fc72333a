#!/usr/bin/env python3
"""`make bench`: run every tools/bench/bench_*.py main() and print its figures.

A new benchmark is a file `bench_<name>.py` here with a `main()` that prints its figures
(`main(argv=())` if it also takes options on its own); nothing to register. A figure that
compares with a peer library computes both sides in the same run; never print a quoted one.

    .venv/bin/python tools/bench/run.py [NAME ...]   # only the files whose name contains NAME
"""

import importlib.util
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main(names=None):
    files = sorted(f for f in os.listdir(HERE) if f.startswith("bench_") and f.endswith(".py"))
    if names:
        files = [f for f in files if any(n in f for n in names)]
    failed = 0
    for name in files:
        print("== %s" % name, flush=True)
        spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(HERE, name))
        module = importlib.util.module_from_spec(spec)
        started = time.perf_counter()
        try:
            spec.loader.exec_module(module)
            module.main()
        except Exception as exc:  # one broken benchmark must not hide the others
            failed += 1
            print("   FAILED: %s: %s" % (type(exc).__name__, exc))
        print("   (%.1f s)\n" % (time.perf_counter() - started), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
