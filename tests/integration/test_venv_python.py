"""tools/venv_python.sh: which interpreter `make` builds .venv/ from (README, Quick start)."""

import os
import stat
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "venv_python.sh"


def _choice(system_python):
    env = dict(os.environ, KAPOS_SYSTEM_PYTHON=str(system_python))
    return subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True,
                          check=True, timeout=30).stdout.strip()


def _fake_python(tmp_path, exit_code):
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\nexit %d\n" % exit_code)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return fake


def test_a_system_python_that_can_make_a_venv_is_chosen():
    # this interpreter is 3.11+ and has venv and ensurepip (it runs the suite from a venv)
    assert _choice(sys.executable) == sys.executable


def test_a_system_python_too_old_or_without_venv_gives_python3_on_path(tmp_path):
    # the probe exits non-zero: older than 3.11, or no ensurepip (Debian without python3-venv)
    assert _choice(_fake_python(tmp_path, 1)) == "python3"


def test_no_system_python_gives_python3_on_path(tmp_path):
    assert _choice(tmp_path / "missing") == "python3"
