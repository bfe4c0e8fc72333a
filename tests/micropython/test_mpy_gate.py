"""The MicroPython gate in make test: the portable tests run inside MicroPython (the npm
WebAssembly build under node) and must give what they give on CPython."""

import os

import pytest

import discover
import gate
import mpjs

FIXTURE = os.path.join("tests", "micropython", "fixtures", "broken")


def _need_micropython():
    reason = mpjs.missing()
    if reason:
        pytest.skip(reason)


def test_portable_tests_pass_under_micropython_as_on_cpython():
    _need_micropython()
    ok, lines, figures = gate.gate()
    assert ok, "\n".join(lines)
    assert figures["compared"] >= 500 and figures["passed"] == figures["compared"], figures


def test_gate_names_a_test_whose_portable_code_uses_what_micropython_lacks():
    _need_micropython()
    ok, lines, _ = gate.gate(roots=(FIXTURE,), pattern="case_", check_coverage=False)
    assert not ok
    assert len(lines) == 1, lines  # the passing test of the fixture is no difference
    assert lines[0].startswith(FIXTURE + "/case_mpyfix_broken.py::test_pads_the_terminal_number: CPython passed")
    assert "AttributeError" in lines[0] and "zfill" in lines[0] and "mpyfix_portable.py" in lines[0]


def test_gate_fails_when_a_portable_package_has_no_micropython_test():
    _need_micropython()
    ok, lines, _ = gate.gate(roots=(FIXTURE,), pattern="case_")
    assert not ok
    uncovered = [line.split(":")[0] for line in lines if "no test of it ran under MicroPython" in line]
    assert set(uncovered) == set(discover.PORTABLE_PACKAGES)


def test_discovery_keeps_cpython_only_tests_out_and_portable_ones_in():
    assert discover.why_not(os.path.join(gate.ROOT, "tests/unit/card/test_card_properties.py")) == "imports hypothesis"
    assert discover.why_not(os.path.join(gate.ROOT, "tests/unit/app/test_app_config.py")) == "imports kapos.app"
    assert discover.why_not(os.path.join(gate.ROOT, "tests/unit/card/test_card_pan.py")) is None
    found, _ = discover.discover()
    ids = [e["id"] for e in found]
    assert "tests/micropython/portable/test_mpy_aes_soft.py" in ids
    assert not any("fixtures" in i for i in ids)
