"""Python under Debian's libfaketime 0.9.10 with only the calendar moved (`make test-future`).

`make test-future` puts this directory on PYTHONPATH, so every Python the suite starts
(pytest, the hosts and terminals it spawns) imports it first. It changes nothing unless
libfaketime is preloaded with FAKETIME_DONT_FAKE_MONOTONIC=1.

Why: libfaketime 0.9.10 fakes CLOCK_MONOTONIC by default but does not intercept
sem_clockwait(), which CPython 3.11+ uses for every timed lock wait (Event.wait,
Thread.join, Queue.get with a timeout): the deadline is taken on the faked monotonic clock
(decades ahead) and the kernel waits for it on the real one, for good. With
FAKETIME_DONT_FAKE_MONOTONIC=1 those waits are right, but 0.9.10's clock_nanosleep()
still shifts an absolute deadline as if the monotonic clock were faked, and time.sleep()
sleeps to an absolute CLOCK_MONOTONIC deadline: EINVAL. libfaketime 0.9.11 fixes both
(wolfcw/libfaketime#390 and #426). Until Debian ships it, time.sleep() waits here with a
relative timeout, which libfaketime passes through untouched."""

import os
import select
import time


def _sleep_relative(seconds):
    """time.sleep() without an absolute deadline; select() retries after a signal with
    the time left, as time.sleep() does."""
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    select.select([], [], [], seconds)


def _calendar_only_faketime():
    return ("libfaketime" in os.environ.get("LD_PRELOAD", "")
            and os.environ.get("FAKETIME_DONT_FAKE_MONOTONIC") == "1")


if _calendar_only_faketime():
    time.sleep = _sleep_relative
