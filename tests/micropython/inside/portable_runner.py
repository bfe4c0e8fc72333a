"""Run manifest test modules and print one result line per test (CPython AND MicroPython).

Written in the subset both interpreters share: the same code runs each test on both
sides, and tests/micropython/gate.py compares the lines. A line is
    MPYT <tab> id <tab> passed|failed|skipped|unsupported <tab> detail
and the run ends with the kapos modules that got imported (MPYT-MODULES)."""

import gc
import sys

import pytest  # the shim in tests/micropython/inside, first on the path

def _vars(obj=None):
    return obj.__dict__


def _import(name, globals=None, locals=None, fromlist=(), level=0):
    return __import__(name, globals, locals, fromlist, level)


MICROPYTHON = sys.implementation.name == "micropython"
# CPython builtins that TEST code (never firmware) uses and MicroPython lacks or takes
# without keywords: given to the test module and its conftest only, so firmware calling
# them still fails.
TEST_ONLY_BUILTINS = {"vars": _vars, "__import__": _import} if MICROPYTHON else {}


class _BenchClock:
    """time.monotonic for the chip emulator (a test bench, not firmware)."""

    @staticmethod
    def monotonic():
        import time
        return time.ticks_ms() / 1000.0


def _prepare_benches():
    import copy
    import time
    if MICROPYTHON and bytearray not in copy._deepcopy_dispatch:
        # micropython-lib's copy cannot deep-copy a bytearray; test snapshots need it
        copy._deepcopy_dispatch[bytearray] = lambda x, memo: bytearray(x)
    bench = sys.modules.get("kapos.ports.sim.mfrc522_emu")  # only once a test imported it
    if bench is not None and not hasattr(time, "monotonic"):
        bench.time = _BenchClock


BUILTIN_FIXTURES = ("tmp_path", "tmpdir", "monkeypatch", "capsys", "caplog", "request",
                    "tmp_path_factory", "recwarn", "capfd")


def _where(exc):
    """'file:line' of the innermost frame, so a difference points at the code."""
    try:
        import io
        buf = io.StringIO()
        if hasattr(sys, "print_exception"):  # MicroPython
            sys.print_exception(exc, buf)
        else:
            import traceback
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=buf)
        frames = [line.strip() for line in buf.getvalue().split("\n") if line.strip().startswith("File ")]
        if not frames:
            return ""
        last = frames[-1].split(",")
        return " at %s:%s" % (last[0][6:-1].split("/")[-1], last[1].strip()[5:])
    except Exception:  # noqa: BLE001  (a location is a nicety)
        return ""


def _describe(exc):
    text = "%s: %s%s" % (type(exc).__name__, exc, _where(exc))
    return text.replace("\t", " ").replace("\n", " ")[:300]


def _cases(func):
    """[(case id, {argname: value})] from the parametrize marks (product of all)."""
    cases = [("", {})]
    for name, spec in pytest.marks_of(func):
        if name != "parametrize":
            continue
        args, kwargs = spec
        names = args[0]
        values = args[1] if len(args) > 1 else kwargs["argvalues"]
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        expanded = []
        for index, value in enumerate(values):
            if isinstance(value, pytest._Param):
                value = value.values if len(names) > 1 else value.values[0]
            row = dict(zip(names, value)) if len(names) > 1 else {names[0]: value}
            expanded.append((str(index), row))
        new = []
        for cid, row in cases:
            for vid, vrow in expanded:
                merged = dict(row)
                merged.update(vrow)
                new.append((vid if not cid else cid + "-" + vid, merged))
        cases = new
    return cases


class _Fixtures:
    def __init__(self, specs, namespaces):
        self.specs = specs
        self.namespaces = namespaces
        self.values = {}
        self.finalizers = []

    def get(self, name):
        if name in self.values:
            return self.values[name]
        if name in BUILTIN_FIXTURES or name not in self.specs:
            raise pytest.Unsupported("fixture " + name)
        func = None
        for ns in self.namespaces:
            if name in ns:
                func = ns[name]
        spec = self.specs[name]
        kwargs = dict((a, self.get(a)) for a in spec["args"])
        value = func(**kwargs)
        if spec["generator"]:
            gen = value
            value = next(gen)
            self.finalizers.append(gen)
        self.values[name] = value
        return value

    def close(self):
        for gen in reversed(self.finalizers):
            try:
                next(gen)
            except StopIteration:
                pass


def _run_one(func, args, params, fixtures):
    try:
        kwargs = {}
        for a in args:
            kwargs[a] = params[a] if a in params else fixtures.get(a)
        func(**kwargs)
        return "passed", ""
    except pytest.SkipTest as e:
        return "skipped", str(e)
    except pytest.Unsupported as e:
        return "unsupported", str(e)
    except Exception as e:  # noqa: BLE001  (any failure is a result to compare)
        return "failed", _describe(e)
    finally:
        fixtures.close()


def _emit(tid, outcome, detail):
    print("MPYT\t%s\t%s\t%s" % (tid, outcome, detail))


def _forget(names):
    for name in names:
        if name in sys.modules:
            del sys.modules[name]


def run_module(entry, base):
    folder = base + "/" + entry["dir"]
    local = [entry["module"]] + entry["helpers"]
    _forget(local)
    sys.path.insert(0, folder)
    try:
        try:
            mod = __import__(entry["module"])
            namespaces = []
            if entry["conftest"]:
                namespaces.append(__import__("conftest").__dict__)
            namespaces.append(mod.__dict__)
            _prepare_benches()
            for ns in namespaces:
                for name, value in TEST_ONLY_BUILTINS.items():
                    ns.setdefault(name, value)
        except Exception as e:  # noqa: BLE001
            _emit(entry["id"] + "::<import>", "failed", _describe(e))
            return
        for test in entry["tests"]:
            func = mod.__dict__.get(test["name"])
            if func is None or not callable(func):
                continue
            marks = [m for m, _ in pytest.marks_of(func)]
            if "soak" in marks:
                continue
            for cid, params in _cases(func):
                tid = entry["id"] + "::" + test["name"] + ("[%s]" % cid if cid else "")
                fixtures = _Fixtures(entry["fixtures"], namespaces)
                outcome, detail = _run_one(func, test["args"], params, fixtures)
                _emit(tid, outcome, detail)
                gc.collect()
    finally:
        sys.path.remove(folder)
        _forget(local)
        gc.collect()


def run_all(manifest, base):
    for entry in manifest:
        run_module(entry, base)
    loaded = sorted(n for n in sys.modules if n == "kapos" or n.startswith("kapos."))
    print("MPYT-MODULES\t" + ",".join(loaded))
    print("MPYT-END")
