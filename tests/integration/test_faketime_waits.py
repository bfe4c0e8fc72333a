"""`make test-future` runs the suite under libfaketime with the calendar ten years ahead;
this checks the settings it uses (FAKETIME_DONT_FAKE_MONOTONIC=1, tools/faketime on
PYTHONPATH) let a Python child do every kind of timed wait the suite does. Under plain
`faketime`, Debian's libfaketime 0.9.10 makes the lock waits hang for good and, with the
monotonic clock real, time.sleep() fail with EINVAL (tools/faketime/sitecustomize.py)."""

import os
import shutil
import signal
import subprocess
import sys

import pytest

from terminalrig import ROOT

FAKETIME = shutil.which("faketime")
pytestmark = pytest.mark.skipif(FAKETIME is None, reason="faketime (Debian package 'faketime') not installed; "
                                                          "`make test` installs it when run as root")

TIMED_WAITS = r"""
import asyncio, datetime, queue, subprocess, sys, threading, time
assert datetime.date.today().year >= 2030, datetime.date.today()
started = time.monotonic()
threading.Event().wait(0.01)
never = threading.Event()
waiter = threading.Thread(target=never.wait)
waiter.start()
waiter.join(0.01)
never.set()
waiter.join()
try:
    queue.Queue().get(timeout=0.01)
except queue.Empty:
    pass
time.sleep(0.01)
asyncio.run(asyncio.sleep(0.01))
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.01)"]).wait(timeout=30)
print("waited %.2f s" % (time.monotonic() - started))
"""


def future_env():
    """The environment `make test-future` gives pytest (keep the two in step)."""
    faketime_dir = os.path.join(ROOT, "tools", "faketime")
    python_path = os.pathsep.join(filter(None, [faketime_dir, os.environ.get("PYTHONPATH")]))
    return dict(os.environ, FAKETIME_DONT_FAKE_MONOTONIC="1", PYTHONPATH=python_path)


def test_timed_waits_return_ten_years_ahead():
    # faketime forks the child: on a hang, end the whole group, not only faketime
    child = subprocess.Popen([FAKETIME, "-f", "+3650d", sys.executable, "-c", TIMED_WAITS],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=future_env(), start_new_session=True)
    try:
        stdout, stderr = child.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        pytest.fail("a timed wait did not return within 60 s under faketime")
    assert child.returncode == 0, stderr[-2000:]
    assert stdout.startswith("waited ")
