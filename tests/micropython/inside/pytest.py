"""The slice of pytest's API that the portable tests use, small enough for MicroPython.

tests/micropython/portable_runner.py puts this module first on the path in BOTH
interpreters, so CPython and MicroPython run each test through the same code and their
results can be compared. Parametrize ids are indexes (pytest's repr-based ids differ
between the two runtimes)."""

import re


class SkipTest(Exception):
    pass


class Unsupported(Exception):
    """The test needs a pytest feature this shim does not have: not run on either side."""


def skip(reason=""):
    raise SkipTest(reason)


def importorskip(name, *args, **kwargs):
    try:
        return __import__(name)
    except ImportError:
        raise SkipTest("no module " + name)


class _Raises:
    def __init__(self, expected, match):
        self.expected = expected
        self.match = match
        self.value = None
        self.type = None

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is None:
            raise AssertionError("DID NOT RAISE %r" % (self.expected,))
        if not issubclass(kind, self.expected):
            return False
        self.value = value
        self.type = kind
        if self.match is not None and re.search(self.match, str(value)) is None:
            raise AssertionError("%r does not match %r" % (str(value), self.match))
        return True


def raises(expected, *args, match=None, **kwargs):
    ctx = _Raises(expected, match)
    if args:  # raises(Exc, func, *args)
        with ctx:
            args[0](*args[1:], **kwargs)
        return ctx
    return ctx


class approx:
    def __init__(self, expected, rel=1e-6, abs=1e-12):
        self.expected = expected
        self.rel = rel
        self.abs = abs

    def __eq__(self, other):
        tolerance = max(self.rel * abs_(self.expected), self.abs)
        return abs_(other - self.expected) <= tolerance

    def __repr__(self):
        return "approx(%r)" % (self.expected,)


def abs_(x):
    return x if x >= 0 else -x


class _Param:
    def __init__(self, values, id=None, marks=()):
        self.values = values
        self.id = id


def param(*values, id=None, marks=()):
    return _Param(values, id)


# MicroPython functions take no attributes: marks and fixtures are kept here, by function.
_MARKS = {}
_FIXTURES = {}


def _add(func, name, value):
    _MARKS.setdefault(func, []).append((name, value))
    return func


def marks_of(func):
    """[(mark name, (args, kwargs) or None)], the decorator nearest the function last."""
    return _MARKS.get(func, [])


def is_fixture(func):
    return func in _FIXTURES


class _Mark:
    """pytest.mark.X(...) as a decorator; `parametrize` is recorded, others only noted."""

    def __init__(self, name):
        self.name = name

    def __call__(self, *args, **kwargs):
        if self.name != "parametrize" and len(args) == 1 and callable(args[0]) and not kwargs:
            return _add(args[0], self.name, None)
        name = self.name

        def decorate(func):
            return _add(func, name, (args, kwargs))
        return decorate


class _Marks:
    def __getattr__(self, name):
        return _Mark(name)


mark = _Marks()


def fixture(func=None, **kwargs):
    def decorate(f):
        _FIXTURES[f] = True
        return f
    return decorate(func) if func is not None else decorate
