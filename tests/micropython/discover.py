"""Which test modules can run under MicroPython, found by reading their imports (CPython).

A test module qualifies when everything it imports is the pytest shim, a stdlib module
MicroPython has, a portable kapos package (the list in tools/check_portable.py), a chip
emulator used as a test bench, or a helper module beside it that qualifies in turn
(conftest.py, host_samples.py). Nothing is listed by hand: a new portable test module is
picked up as soon as it exists. The manifest also carries what MicroPython cannot tell at
run time: each test function's argument names, in definition order, and which fixtures
are generators."""

import ast
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from check_portable import PORTABLE, find_mpy_cross  # noqa: E402  (one list of portable packages)

PORTABLE_PACKAGES = tuple("kapos." + p[:-3] if p.endswith(".py") else "kapos." + p for p in PORTABLE)
# stdlib modules the MicroPython build has (and that mean the same there)
STDLIB = ("pytest", "binascii", "struct", "copy", "re", "random", "gc", "json", "time",
          "collections", "math")
# pure-Python chip emulators: test benches, not part of the firmware that must be portable
TEST_BENCHES = ("kapos.ports.sim.mfrc522_emu", "kapos.ports.sim.rf", "kapos.ports.sim.cards")
DEFAULT_ROOTS = ("tests/unit", "tests/micropython/portable")


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                yield None  # relative imports: not used by test modules
            elif node.module == "kapos":
                for alias in node.names:
                    yield "kapos." + alias.name
            else:
                yield node.module


def _allowed_name(name):
    if name in STDLIB or any(name == b or name.startswith(b + ".") for b in TEST_BENCHES):
        return True
    return any(name == p or name.startswith(p + ".") for p in PORTABLE_PACKAGES)


def _parse(path):
    with open(path) as f:
        return ast.parse(f.read(), path)


def _mpy_syntax_error(path):
    """mpy-cross's message when the file has syntax MicroPython lacks, else None."""
    tool = find_mpy_cross()
    if tool is None:
        return None  # check_portable.py already fails make test without mpy-cross
    with tempfile.TemporaryDirectory() as out:
        result = subprocess.run([tool, "-o", os.path.join(out, "x.mpy"), path],
                                capture_output=True, text=True)
    if result.returncode == 0:
        return None
    return "syntax MicroPython lacks: " + (result.stderr or result.stdout).strip().splitlines()[-1]


def why_not(path, _seen=None):
    """None when the module at `path` may run under MicroPython, else the first reason."""
    seen = _seen if _seen is not None else set()
    if path in seen:
        return None
    seen.add(path)
    tree = _parse(path)
    syntax = _mpy_syntax_error(path)
    if syntax:
        return syntax
    here = os.path.dirname(path)
    for name in _imports(tree):
        if name is None:
            return "relative import"
        if _allowed_name(name):
            continue
        helper = os.path.join(here, name + ".py")
        if "." not in name and os.path.isfile(helper):
            reason = why_not(helper, seen)
            if reason:
                return "%s: %s" % (name, reason)
            continue
        return "imports %s" % name
    return None


def _arg_names(func):
    return [a.arg for a in func.args.args]


def _functions(tree):
    """[(name, [arg names], is_generator)] of module-level functions, in order."""
    out = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            generator = any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in ast.walk(node))
            out.append((node.name, _arg_names(node), generator))
    return out


def _fixture_names(tree):
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                target = dec.func if isinstance(dec, ast.Call) else dec
                if isinstance(target, ast.Attribute) and target.attr == "fixture":
                    names.append(node.name)
    return names


def module_entry(path, root):
    """The manifest entry for one qualifying test module."""
    tree = _parse(path)
    here = os.path.dirname(path)
    fixtures = {}
    conftest = os.path.join(here, "conftest.py")
    sources = [tree]
    if os.path.isfile(conftest):
        sources.insert(0, _parse(conftest))
    for source in sources:
        generators = dict((n, g) for n, _, g in _functions(source))
        args = dict((n, a) for n, a, _ in _functions(source))
        for name in _fixture_names(source):
            fixtures[name] = {"args": args[name], "generator": generators[name]}
    tests = [{"name": n, "args": a} for n, a, _ in _functions(tree) if n.startswith("test")]
    imported = sorted(set(n for n in _imports(tree) if n and n.startswith("kapos")))
    return {
        "id": os.path.relpath(path, root).replace(os.sep, "/"),
        "dir": os.path.relpath(here, root).replace(os.sep, "/"),
        "module": os.path.basename(path)[:-3],
        "conftest": os.path.isfile(conftest),
        "helpers": sorted(f[:-3] for f in os.listdir(here) if f.endswith(".py") and not f.startswith("test_")),
        "fixtures": fixtures,
        "tests": tests,
        "imports": imported,
    }


def discover(root=ROOT, roots=DEFAULT_ROOTS, pattern="test_"):
    """(manifest entries, {path: reason} for the modules left out)."""
    entries, left_out = [], {}
    for sub in roots:
        for dirpath, dirnames, files in os.walk(os.path.join(root, sub)):
            dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", "fixtures"))
            for name in sorted(files):
                if not (name.startswith(pattern) and name.endswith(".py")):
                    continue
                path = os.path.join(dirpath, name)
                reason = why_not(path)
                if reason:
                    left_out[os.path.relpath(path, root)] = reason
                else:
                    entries.append(module_entry(path, root))
    return entries, left_out


if __name__ == "__main__":
    found, skipped = discover()
    for e in found:
        print("runs  ", e["id"], len(e["tests"]))
    for p, r in sorted(skipped.items()):
        print("not   ", p, "-", r)
