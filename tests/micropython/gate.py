"""The MicroPython gate: the portable tests run under CPython and under MicroPython, and
every test that passes on CPython must pass on MicroPython too.

    .venv/bin/python tests/micropython/gate.py          # the whole portable subset
    .venv/bin/python tests/micropython/gate.py -v       # and every result line

Both sides run the same runner and pytest shim (tests/micropython/inside/). Exit 1 with
each differing test named and both outcomes shown; also 1 when a portable package is
imported by no test that ran under MicroPython (no coverage)."""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
INSIDE = os.path.join(HERE, "inside")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "mpy"))

import discover  # noqa: E402
import mpjs  # noqa: E402

DRIVER = """
import json, sys
sys.path.insert(0, %(inside)r)
import portable_runner
portable_runner.run_all(json.loads(%(manifest)r), %(base)r)
"""


def parse(stdout):
    """({test id: (outcome, detail)}, [kapos modules loaded], finished?)"""
    results, modules, finished = {}, [], False
    for line in stdout.splitlines():
        parts = line.split("\t")
        if parts[0] == "MPYT" and len(parts) >= 4:
            results[parts[1]] = (parts[2], parts[3])
        elif parts[0] == "MPYT-MODULES":
            modules = [m for m in parts[1].split(",") if m]
        elif parts[0] == "MPYT-END":
            finished = True
    return results, modules, finished


def run_cpython(manifest, root):
    script = DRIVER % {"inside": INSIDE, "manifest": json.dumps(manifest), "base": root}
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "firmware"))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=600, cwd=root)
    return out


def run_micropython(manifest, root):
    dirs = sorted(set(e["dir"] for e in manifest))
    copies = [(INSIDE, "/lib")] + [(os.path.join(root, d), "/tests/" + d) for d in dirs]
    script = DRIVER % {"inside": "/lib", "manifest": json.dumps(manifest), "base": "/tests"}
    return mpjs.run(script, copies=copies, timeout=600)


def compare(cpy, mpy):
    """[(test id, CPython outcome, MicroPython outcome)] for every test that passed on
    CPython and did not on MicroPython (or never ran there)."""
    diffs = []
    for tid in sorted(cpy):
        outcome, detail = cpy[tid]
        if outcome != "passed":
            continue
        other = mpy.get(tid, ("missing", "did not run under MicroPython"))
        if other[0] != "passed":
            diffs.append((tid, "passed", "%s (%s)" % other))
    for tid in sorted(mpy):  # failures with no CPython twin: a module that would not import
        if tid not in cpy and mpy[tid][0] == "failed":
            diffs.append((tid, cpy.get(tid, ("passed", ""))[0], "failed (%s)" % mpy[tid][1]))
    return diffs


def uncovered(manifest, mpy_results, modules):
    """Portable packages that no MicroPython-passing test module reached."""
    passed_modules = set(t.split("::")[0] for t, (o, _) in mpy_results.items() if o == "passed")
    reached = set(modules)
    missing = []
    for package in discover.PORTABLE_PACKAGES:
        tested = [e for e in manifest if e["id"] in passed_modules]
        if not tested or not any(m == package or m.startswith(package + ".") for m in reached):
            missing.append(package)
    return missing


def gate(root=ROOT, roots=discover.DEFAULT_ROOTS, pattern="test_", check_coverage=True):
    """(ok, report lines, figures)"""
    manifest, left_out = discover.discover(root, roots, pattern)
    lines = []
    if not manifest:
        return False, ["no portable test module found under %s" % ", ".join(roots)], {}
    cpy_run = run_cpython(manifest, root)
    cpy, _, cpy_done = parse(cpy_run.stdout)
    if not cpy_done:
        return False, ["the CPython side did not finish:", cpy_run.stderr[-2000:]], {}
    mpy_run = run_micropython(manifest, root)
    mpy, modules, mpy_done = parse(mpy_run.stdout)
    if not mpy_done:
        lines.append("MicroPython stopped before the end: " + mpy_run.stderr[-2000:])
    diffs = compare(cpy, mpy)
    for tid, a, b in diffs:
        lines.append("%s: CPython %s, MicroPython %s" % (tid, a, b))
    missing = uncovered(manifest, mpy, modules) if check_coverage else []
    for package in missing:
        lines.append("%s: no test of it ran under MicroPython (add one under "
                     "tests/micropython/portable/ or make its tests portable)" % package)
    figures = {
        "modules": len(manifest),
        "passed": sum(1 for o, _ in mpy.values() if o == "passed"),
        "compared": sum(1 for o, _ in cpy.values() if o == "passed"),
        "not_run": sum(1 for o, _ in cpy.values() if o != "passed"),
        "left_out": len(left_out),
        "kapos_modules_loaded": len(modules),
    }
    ok = mpy_done and not diffs and not missing
    return ok, lines, figures


def main(argv):
    reason = mpjs.missing()
    if reason:
        print("MicroPython gate: " + reason)
        return 1
    ok, lines, figures = gate()
    for line in lines:
        print(line)
    print("MicroPython gate: %(passed)d of %(compared)d portable tests pass under MicroPython "
          "as on CPython (%(modules)d modules; %(not_run)d not comparable; %(left_out)d test "
          "modules not portable)" % figures if figures else "MicroPython gate: failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
