"""A buzzer on one GPIO line (through an NPN transistor), beeping without blocking.

A beep is a pattern of on/off steps scheduled with loop.call_later, so the runtime never
waits for it; a new beep cancels the rest of the previous one. Active buzzers (with
their own oscillator) are switched on and off; passive ones get a square wave
(GPIO.PWM) at `frequency`.
"""

import asyncio
import logging

from kapos import hal
from kapos.errors import ConfigError
from kapos.ports.linux import gpio as gpio_mod

log = logging.getLogger(__name__)

# kind -> on/off durations in seconds: on, off, on, ...
PATTERNS = {
    "key": (0.03,),
    "ok": (0.12,),
    "error": (0.08, 0.06, 0.08, 0.06, 0.08),
    "alarm": (0.4, 0.1, 0.4, 0.1, 0.4),
}


class GpioBuzzer(hal.Buzzer):
    """Board keys: signal_pin (BCM), buzzer_type ('active' or 'passive'), frequency (Hz,
    passive only), active_high. Test hook: gpio_module."""

    def __init__(self, signal_pin, buzzer_type="active", frequency=2700, active_high=True, bus=None,
                 driver_name="gpio", gpio_module=None, **unknown):
        if unknown:
            raise ConfigError("[buzzer] unknown key %r for driver %r" % (sorted(unknown)[0], driver_name))
        if buzzer_type not in ("active", "passive"):
            raise ConfigError("[buzzer] buzzer_type must be 'active' or 'passive', got %r" % (buzzer_type,))
        gpio_mod.check_pins("buzzer", [signal_pin])
        self.signal_pin = signal_pin
        self.active_high = bool(active_high)
        self._gpio = gpio_mod.load(gpio_module)
        self._pin = gpio_mod.OutputPin(self._gpio, signal_pin, initial=not self.active_high)
        self._pwm = None
        if buzzer_type == "passive":
            self._pwm = self._gpio.PWM(signal_pin, frequency)
        self._handles = []
        self.on = False

    def _set(self, on):
        self.on = on
        if self._pwm is not None:
            if on:
                self._pwm.start(50)
            else:
                self._pwm.stop()
        elif self._pin is not None:
            self._pin.value(1 if on == self.active_high else 0)

    def _cancel(self):
        for handle in self._handles:
            handle.cancel()
        self._handles = []

    def beep(self, kind):
        steps = PATTERNS.get(kind, PATTERNS["key"])
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # outside the runtime (e.g. a CLI check): nothing to schedule on
            log.debug("beep %r skipped: no running event loop", kind)
            return
        self._cancel()
        self._set(True)
        at, last = 0.0, len(steps) - 1
        for i, duration in enumerate(steps):
            at += duration  # after an "on" step comes silence, after an "off" step sound
            self._handles.append(loop.call_later(at, self._set, i % 2 == 1 and i < last))

    def selftest(self):
        return True, "buzzer on GPIO%d" % self.signal_pin

    def close(self):
        self._cancel()
        if getattr(self, "_pin", None) is not None:
            self._set(False)
            self._pin = None
            gpio_mod.release(self._gpio, [self.signal_pin])
