"""A membrane key matrix on GPIO lines: kapos.drivers.keypad_matrix over RPi.GPIO pins.

The matrix is scanned on a thread of its own every `scan_interval` seconds (a timed
wait in between: no busy-wait), so a press is seen and debounced even while the loop is
busy (a frame being written, a card being read): keys are queued to the loop, in order,
and none is lost. Idle cost per scan is one read of each sense line; a full row-by-row
scan runs only while a key is down.
"""

import asyncio
import logging
import threading

from kapos import hal
from kapos.compat import ticks_ms
from kapos.core import keys
from kapos.drivers.keypad_matrix import KeypadMatrix
from kapos.errors import ConfigError
from kapos.ports.linux import gpio as gpio_mod

DEFAULT_LAYOUT = [["1", "2", "3", "A"], ["4", "5", "6", "B"], ["7", "8", "9", "C"], ["*", "0", "#", "D"]]


class MatrixKeypad(hal.Keypad):
    """Board keys: row_pins, col_pins (BCM), layout (labels per row), keymap (label ->
    logical key; digits need no entry), debounce_ms, scan_interval (s, default 5 ms), drive ('rows':
    rows driven low one at a time, columns read with pull-ups; 'cols': the reverse).
    Test hooks: gpio_module (an RPi.GPIO stand-in), ticks_ms (a millisecond clock)."""

    def __init__(self, row_pins, col_pins, layout=None, keymap=None, debounce_ms=30,
                 scan_interval=0.005, drive="rows", bus=None, driver_name="matrix",
                 gpio_module=None, ticks_ms=ticks_ms, **unknown):
        if unknown:
            raise ConfigError("[keypad] unknown key %r for driver %r" % (sorted(unknown)[0], driver_name))
        layout = DEFAULT_LAYOUT if layout is None else layout
        keymap = dict(keymap or {})
        for label, key in keymap.items():
            if not keys.is_key(key):
                raise ConfigError("[keypad] keymap %s = %r is not a logical key (one of %s)"
                                  % (label, key, ", ".join(keys.ALL)))
        for label in [label for row in layout for label in row]:
            if not keys.is_key(keymap.get(label, label)):
                raise ConfigError("[keypad] layout label %r is not a logical key: map it in keymap "
                                  "(one of %s)" % (label, ", ".join(keys.FUNCTION_KEYS)))
        gpio_mod.check_pins("keypad", list(row_pins) + list(col_pins))
        if not 0 < scan_interval <= 0.1:
            raise ConfigError("[keypad] scan_interval must be in (0, 0.1] seconds, got %r" % (scan_interval,))
        self.scan_interval = scan_interval
        self._ticks = ticks_ms
        self._numbers = list(row_pins) + list(col_pins)
        self._gpio = gpio_mod.load(gpio_module)
        self._pending = []
        self._lock = threading.Lock()  # the scan thread and selftest/poll share the lines
        self._stop = threading.Event()
        self._thread = None
        self._keys = None
        try:
            drive_numbers, sense_numbers = (row_pins, col_pins) if drive == "rows" else (col_pins, row_pins)
            drive_pins = [gpio_mod.OpenDrainPin(self._gpio, n) for n in drive_numbers]
            sense_pins = [gpio_mod.InputPin(self._gpio, n, pull="up") for n in sense_numbers]
            rows, cols = (drive_pins, sense_pins) if drive == "rows" else (sense_pins, drive_pins)
            self.matrix = KeypadMatrix(rows, cols, layout, keymap, debounce_ms, drive)
        except Exception:
            self.close()
            raise

    def poll(self):
        """Scan once; return a key if one was pressed (kept in order if several)."""
        with self._lock:
            self._pending.extend(self.matrix.scan(self._ticks()))
        return self._pending.pop(0) if self._pending else None

    async def read_key(self):
        if self._thread is None:
            self._start_scanning(asyncio.get_running_loop())
        item = await self._keys.get()
        if isinstance(item, Exception):
            raise item
        return item

    def _start_scanning(self, loop):
        self._keys = asyncio.Queue()
        self._thread = threading.Thread(target=self._scan_forever, args=(loop,), name="kapos-keypad", daemon=True)
        self._thread.start()

    def _scan_forever(self, loop):
        while not self._stop.wait(self.scan_interval):
            try:
                with self._lock:
                    items = self.matrix.scan(self._ticks())
            except Exception as exc:  # the runtime reports it and reads again
                items = [exc]
                self._stop.wait(0.5)
            for item in items:
                try:
                    loop.call_soon_threadsafe(self._keys.put_nowait, item)
                except RuntimeError:  # the loop has closed: nobody reads keys any more
                    return

    def selftest(self):
        with self._lock:
            stuck = self.matrix.read()
        if stuck:
            labels = ", ".join(self.matrix.keys[k] for k in stuck)
            return False, "keypad: key(s) held or shorted at start: %s" % labels
        return True, "keypad matrix %dx%d" % (len(self.matrix.rows), len(self.matrix.cols))

    def close(self):
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
            if self._thread is not None:
                self._thread.join(1.0)
        numbers, self._numbers = self._numbers, []
        if numbers and getattr(self, "_gpio", None) is not None:
            gpio_mod.release(self._gpio, numbers)
