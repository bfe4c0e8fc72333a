"""SPI on Linux through spidev (/dev/spidevB.D), as a kapos.hal.SpiBus.

`spidev` is imported inside the constructor: it exists only on a Pi (apt package
python3-spidev), and importing this module must work anywhere.
"""

import os

from kapos.errors import HardwareError
from kapos.hal import SpiBus

ENABLE_HINT = ("enable SPI: dtparam=spi=on in /boot/firmware/config.txt "
               "(or `sudo raspi-config nonint do_spi 0`) and reboot")


class SpidevBus(SpiBus):
    """bus/device select /dev/spidev<bus>.<device>; speed_hz the clock (MFRC522: up to
    10 MHz); mode the SPI mode (MFRC522: 0). `handle`: an already open spidev.SpiDev-like
    object (xfer2/close), e.g. for tests; nothing is imported then."""

    def __init__(self, bus=0, device=0, speed_hz=1000000, mode=0, handle=None):
        self.path = "/dev/spidev%d.%d" % (bus, device)
        if handle is None:
            handle = self._open(bus, device)
        self._dev = handle
        try:
            handle.max_speed_hz = int(speed_hz)
            handle.mode = mode
        except (OSError, ValueError, TypeError) as exc:
            self.close()
            raise HardwareError("cannot configure %s (%d Hz, mode %d): %s" % (self.path, speed_hz, mode, exc))

    def _open(self, bus, device):
        if not os.path.exists(self.path):
            raise HardwareError("%s is missing: %s" % (self.path, ENABLE_HINT))
        try:
            import spidev  # Pi only
        except ImportError:
            raise HardwareError("the spidev module is missing: `sudo apt install python3-spidev` "
                                "(venv with --system-site-packages) or `pip install spidev`")
        dev = spidev.SpiDev()
        try:
            dev.open(bus, device)
        except PermissionError:
            raise HardwareError("no permission to open %s: add the user to the 'spi' group" % self.path)
        except OSError as exc:
            raise HardwareError("cannot open %s: %s" % (self.path, exc))
        return dev

    def transfer(self, data):
        if self._dev is None:
            raise HardwareError("%s is closed" % self.path)
        try:
            return bytes(self._dev.xfer2(list(data)))
        except OSError as exc:
            raise HardwareError("SPI transfer on %s failed: %s" % (self.path, exc))

    def close(self):
        dev, self._dev = self._dev, None
        if dev is not None:
            try:
                dev.close()
            except OSError:
                pass
