"""The enclosure tamper switch on a GPIO line: normally closed to GND (reads 0 with the
pull-up); an open switch or a cut wire reads 1 and counts as tamper."""

import asyncio

from kapos import hal
from kapos.errors import ConfigError
from kapos.ports.linux import gpio as gpio_mod


class GpioTamperSwitch(hal.TamperSwitch):
    def __init__(self, switch_pin=None, poll_interval=0.05, gpio_module=None, driver_name=None, **options):
        if options:
            raise ConfigError("[tamper] unknown key %r" % sorted(options)[0])
        if switch_pin is None:
            raise ConfigError("[tamper] switch_pin is required")
        self.pin = gpio_mod.InputPin(gpio_mod.load(gpio_module), switch_pin, pull="up")
        self.switch_pin = switch_pin
        self.poll_interval = poll_interval
        self._reported = False

    def selftest(self):
        return (self.pin.value() == 0), ("closed" if self.pin.value() == 0 else "OPEN (tamper)")

    async def wait_tamper(self):
        """Report each opening once (an open switch is not reported again and again)."""
        while True:
            while self.pin.value() == 0:  # paced poll: a few GPIO reads a second
                await asyncio.sleep(self.poll_interval)
            if not self._reported:
                self._reported = True
                return "enclosure switch (GPIO%d) opened" % self.switch_pin
            while self.pin.value() == 1:
                await asyncio.sleep(self.poll_interval)
            self._reported = False
