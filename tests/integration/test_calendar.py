"""The calendar as an outsider: the suite's date-dependent parts run again under libfaketime,
ten years ahead and on the days the built-in test cards used to expire (2029-10, 2030-02,
2031-01, 2031-07), with the terminal, the harness and the reference host all on the faked
clock. Nothing may depend on today's date."""

import os
import shutil
import subprocess
import sys

import pytest

from terminalrig import ROOT

FAKETIME = shutil.which("faketime")
pytestmark = pytest.mark.skipif(FAKETIME is None, reason="faketime (Debian package 'faketime') not installed; "
                                                          "`make test` installs it when run as root")


def pytest_at(faked, *paths, keyword=None, timeout=300):
    command = [FAKETIME, "-f", faked, sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
               "-x", *paths]
    if keyword:
        command += ["-k", keyword]
    env = dict(os.environ, PYGAME_HIDE_SUPPORT_PROMPT="1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    assert result.returncode == 0, "at %s:\n%s%s" % (faked, result.stdout[-4000:], result.stderr[-2000:])
    assert " passed" in result.stdout


def test_every_scenario_plays_ten_years_ahead():
    pytest_at("+3653d", "tests/integration/test_scenarios.py")


@pytest.mark.parametrize("day", ["2029-10-02", "2030-02-01", "2031-01-02", "2031-07-02"])
def test_sales_through_the_reference_host_on_former_expiry_days(day):
    pytest_at("@%s 10:00:00" % day, "tests/integration/host/test_host_scripted.py",
              "tests/integration/host/test_host_e2e.py")
