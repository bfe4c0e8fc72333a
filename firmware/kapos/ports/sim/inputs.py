"""Simulated input devices: keypad, magstripe reader, NFC reader."""

import asyncio

from kapos import hal
from kapos.core import keys
from kapos.errors import HardwareError


class _Injectable:
    """An input whose next value is whatever a test, a console or a scenario injects."""

    def __init__(self):
        self._queue = asyncio.Queue()
        self.fail_next = None  # an exception to raise on the next read (fault injection)

    def inject(self, value):
        self._queue.put_nowait(value)

    async def _next(self):
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        value = await self._queue.get()
        if isinstance(value, Exception):
            raise value
        return value


class SimKeypad(_Injectable, hal.Keypad):
    def __init__(self, **options):
        _Injectable.__init__(self)

    def inject(self, key):
        if not isinstance(key, Exception) and not keys.is_key(key):
            raise ValueError("not a keypad key: %r" % (key,))
        _Injectable.inject(self, key)

    def selftest(self):
        return True, "idle, no key held (sim)"

    async def read_key(self):
        return await self._next()


class SimMagstripe(_Injectable, hal.MagstripeReader):
    def __init__(self, **options):
        _Injectable.__init__(self)

    def selftest(self):
        return True, "ready (sim)"

    async def read_swipe(self):
        return await self._next()


class SimNfc(_Injectable, hal.NfcReader):
    def __init__(self, **options):
        _Injectable.__init__(self)
        self.present = True  # False: behave as if the chip were absent

    def inject(self, tap):
        if not isinstance(tap, (hal.Tap, Exception)):
            raise ValueError("inject a hal.Tap (or an exception, to simulate a fault)")
        _Injectable.inject(self, tap)

    def selftest(self):
        return (True, "sim NFC") if self.present else (False, "NFC chip not found")

    async def read_tap(self):
        if not self.present:
            raise HardwareError("NFC chip not found")
        return await self._next()


class SimTamper(_Injectable, hal.TamperSwitch):
    """The enclosure switch: `inject("case opened")` trips it."""

    def __init__(self, **options):
        _Injectable.__init__(self)

    def selftest(self):
        return True, "closed (sim)"

    async def wait_tamper(self):
        return await self._next()
