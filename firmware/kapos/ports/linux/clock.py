"""The system clock (UTC seconds). A Pi has no battery-backed clock (a Pi 5 only with a
battery fitted), so until NTP has synchronised it may run from the last shutdown:
selftest says so rather than let receipts carry a 1970 or stale date silently."""

import time

from kapos import hal
from kapos.errors import ConfigError

PLAUSIBLE_AFTER = 1735689600  # 2025-01-01T00:00:00Z: earlier means the clock was never set


class SystemClock(hal.Clock):
    """Board keys: none besides driver. Test hook: time_source (a time.time stand-in)."""

    def __init__(self, bus=None, driver_name="system", time_source=time.time, **unknown):
        if unknown:
            raise ConfigError("[clock] unknown key %r for driver %r" % (sorted(unknown)[0], driver_name))
        self._time = time_source

    def now(self):
        return float(self._time())

    def monotonic(self):
        return time.monotonic()

    def selftest(self):
        now = self.now()
        if now < PLAUSIBLE_AFTER:
            return False, "system clock not set (%s UTC): no network time yet?" % time.strftime(
                "%Y-%m-%d %H:%M", time.gmtime(now))
        return True, "system clock %s UTC" % time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now))
