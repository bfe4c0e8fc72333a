"""GPIO lines through the RPi.GPIO API (BCM numbering), as kapos.hal.Pin objects.

On a Pi 1-4 that is RPi.GPIO; on a Pi 5 RPi.GPIO cannot reach the RP1 chip, and the
drop-in `rpi-lgpio` (apt python3-rpi-lgpio) installs the same `RPi.GPIO` module on lgpio.
The module is imported when a device is built, never at import time, so this file loads
on any PC; tests hand in a fake module instead (`module=`).
"""

from kapos.errors import ConfigError, HardwareError
from kapos.hal import Pin

MISSING = ("the RPi.GPIO module is missing: install the 'pi-gpio' extra or "
           "`sudo apt install python3-rpi.gpio`; on a Pi 5 use rpi-lgpio instead "
           "(`sudo apt install python3-rpi-lgpio`, or the 'pi5-gpio' extra), never both")
PI5_HINT = "on a Pi 5 RPi.GPIO does not work: install rpi-lgpio (python3-rpi-lgpio) in its place"


def load(module=None):
    """The RPi.GPIO module (or `module`), set to BCM numbering."""
    if module is None:
        try:
            import RPi.GPIO as module  # Pi only
        except ImportError:
            raise HardwareError(MISSING)
        except RuntimeError as exc:  # RPi.GPIO refuses to load off a Pi
            raise HardwareError("RPi.GPIO cannot run here (%s); %s" % (exc, PI5_HINT))
    try:
        module.setwarnings(False)  # we re-configure lines on purpose (open-drain emulation)
        module.setmode(module.BCM)
    except (RuntimeError, ValueError) as exc:
        raise HardwareError("GPIO set-up failed (%s); %s" % (exc, PI5_HINT))
    return module


def check_pins(section, pins):
    for pin in pins:
        if not isinstance(pin, int) or isinstance(pin, bool) or not 0 <= pin <= 27:
            raise ConfigError("[%s] %r is not a BCM GPIO number 0-27" % (section, pin))


def _setup(gpio, number, *args, **kwargs):
    try:
        gpio.setup(number, *args, **kwargs)
    except (RuntimeError, OSError) as exc:  # busy line, no permission, Pi 5 with RPi.GPIO
        raise HardwareError("cannot set up GPIO%d (%s): is the user in the 'gpio' group? %s"
                            % (number, exc, PI5_HINT))


class InputPin(Pin):
    """An input with the internal pull-up (or pull-down, or none)."""

    def __init__(self, gpio, number, pull="up"):
        self.gpio, self.number = gpio, number
        pud = {"up": gpio.PUD_UP, "down": gpio.PUD_DOWN, None: gpio.PUD_OFF}[pull]
        _setup(gpio, number, gpio.IN, pull_up_down=pud)

    def value(self, level=None):
        if level is not None:
            raise HardwareError("GPIO%d is an input" % self.number)
        return 1 if self.gpio.input(self.number) else 0


class OutputPin(Pin):
    def __init__(self, gpio, number, initial=0):
        self.gpio, self.number = gpio, number
        self.level = 1 if initial else 0
        _setup(gpio, number, gpio.OUT, initial=gpio.HIGH if initial else gpio.LOW)

    def value(self, level=None):
        if level is None:
            return self.level
        self.level = 1 if level else 0
        self.gpio.output(self.number, self.gpio.HIGH if level else self.gpio.LOW)
        return None


class OpenDrainPin(Pin):
    """value(0) drives the line low; value(1) releases it (input with pull-up), so two
    such lines tied together by keys never fight. Starts released."""

    def __init__(self, gpio, number):
        self.gpio, self.number = gpio, number
        self.level = None
        self.value(1)

    def value(self, level=None):
        if level is None:
            return self.level
        level = 1 if level else 0
        if level != self.level:  # re-configuring costs a syscall on lgpio
            if level:
                _setup(self.gpio, self.number, self.gpio.IN, pull_up_down=self.gpio.PUD_UP)
            else:
                _setup(self.gpio, self.number, self.gpio.OUT, initial=self.gpio.LOW)
            self.level = level
        return None


def release(gpio, numbers):
    """Return lines to inputs (GPIO.cleanup); never raises: used on close."""
    try:
        gpio.cleanup(list(numbers))
    except Exception:  # closing must not mask the real error
        pass
