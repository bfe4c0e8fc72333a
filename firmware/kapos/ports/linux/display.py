"""SSD1306 / SH1106 128x64 OLED through luma.oled, over I2C (smbus2) or SPI (spidev + DC/RST).

luma's device class knows the controller (init sequence, addressing); its serial
interface only moves bytes, so tests hand in an already open interface over a fake bus
(`serial_interface=`) and check the bytes the real device class sends. Drawing is
kapos.ports.shared.luma_screen, the same code the simulator's emulator uses.

Frames are rendered on the loop and written by a worker thread (oled_frames): newest
frame only, changed 8-row pages only, so a ~95 ms frame at 100 kHz never blocks the loop.
"""

import errno

from luma.core import error as luma_error
from luma.core.interface.serial import i2c, spi
from luma.oled import device as oled_device

from kapos import hal
from kapos.errors import ConfigError, HardwareError
from kapos.ports.shared import oled_frames

CONTROLLERS = ("ssd1306", "sh1106")
I2C_HINT = "enable I2C (dtparam=i2c_arm=on, or `sudo raspi-config nonint do_i2c 0`) and reboot"


def _open_i2c(port, address):
    try:
        return i2c(port=port, address=address)
    except ImportError:
        raise HardwareError("the smbus2 module is missing: install the 'pi' extra")
    except luma_error.DeviceNotFoundError:
        raise HardwareError("/dev/i2c-%d is missing: %s" % (port, I2C_HINT))
    except luma_error.DevicePermissionError:
        raise HardwareError("no permission to open /dev/i2c-%d: add the user to the 'i2c' group" % port)


def _open_spi(port, device, dc_pin, reset_pin, speed_hz):
    for module, hint in (("spidev", "install the 'pi' extra (or apt python3-spidev)"),
                         ("RPi.GPIO", "install RPi.GPIO, or on a Pi 5 use rpi-lgpio")):
        try:
            __import__(module)
        except ImportError:
            raise HardwareError("an SPI display needs %s: %s" % (module, hint))
        except RuntimeError as exc:
            raise HardwareError("%s cannot run here (%s): on a Pi 5 use rpi-lgpio" % (module, exc))
    try:
        return spi(port=port, device=device, gpio_DC=dc_pin, gpio_RST=reset_pin, bus_speed_hz=speed_hz)
    except (luma_error.DeviceNotFoundError, FileNotFoundError):
        raise HardwareError("/dev/spidev%d.%d is missing: enable SPI (dtparam=spi=on) and reboot" % (port, device))
    except (luma_error.DevicePermissionError, PermissionError):
        raise HardwareError("no permission for /dev/spidev%d.%d: add the user to the 'spi' and 'gpio' groups"
                            % (port, device))
    except (luma_error.UnsupportedPlatform, RuntimeError) as exc:
        raise HardwareError("SPI display GPIO set-up failed (%s): on a Pi 5 use rpi-lgpio" % exc)


class LumaOled(hal.Display):
    """Board keys: driver ssd1306|sh1106; I2C: i2c_port, i2c_address; or SPI: spi_port,
    spi_device, dc_pin (required), reset_pin, spi_hz; width, height, rotate (0-3), contrast (0-255).
    Test hooks: serial_interface (an open luma serial interface), background (False: write
    in the caller's thread)."""

    def __init__(self, driver_name="ssd1306", i2c_port=1, i2c_address=0x3C, spi_port=None,
                 spi_device=0, dc_pin=None, reset_pin=None, spi_hz=8000000, width=128, height=64,
                 rotate=0, contrast=None, bus=None, serial_interface=None, background=True, **unknown):
        if unknown:
            raise ConfigError("[display] unknown key %r for driver %r" % (sorted(unknown)[0], driver_name))
        if driver_name not in CONTROLLERS:
            raise ConfigError("[display] LumaOled drives %s, not %r" % (" or ".join(CONTROLLERS), driver_name))
        if (width, height) != (128, 64):
            raise ConfigError("[display] only 128x64 modules are supported, got %dx%d" % (width, height))
        if contrast is not None and not 0 <= contrast <= 255:
            raise ConfigError("[display] contrast must be 0-255, got %r" % (contrast,))
        self.width, self.height = width, height
        self.controller = driver_name
        use_spi = spi_port is not None or (bus or "").startswith("spi")
        if use_spi and dc_pin is None:
            # no default: a silent default could collide with a pin the board check never saw
            raise ConfigError("[display] an SPI display needs dc_pin (and usually reset_pin)")
        self.where = ("SPI %d.%d" % (spi_port or 0, spi_device) if use_spi
                      else "I2C bus %d address 0x%02X" % (i2c_port, i2c_address))
        if serial_interface is None:
            if use_spi:
                serial_interface = _open_spi(spi_port or 0, spi_device, dc_pin, reset_pin, spi_hz)
            else:
                serial_interface = _open_i2c(i2c_port, i2c_address)
        self._last = None
        try:
            # The constructor sends the init sequence: a missing module fails here.
            self.device = getattr(oled_device, driver_name)(serial_interface, width=width, height=height, rotate=rotate)
            if contrast is not None:
                self.device.contrast(contrast)
        except (OSError, luma_error.Error) as exc:
            serial_interface.cleanup()
            raise HardwareError("%s on %s does not answer (%s): check wiring and address "
                                "(`i2cdetect -y 1`)" % (driver_name.upper(), self.where, _reason(exc)))
        # luma's init cleared the panel: its RAM is all zeros
        self._pages = oled_frames.PageDiff(self._send_run)
        self._pages.panel = [bytes(width)] * (height // oled_frames.PAGE_ROWS)
        self._worker = oled_frames.FrameWorker(self._write, "display", inline=not background)

    def show(self, screen):
        key = (screen.kind, screen.title, tuple(screen.lines), screen.footer)
        if key == self._last:
            return  # nothing changed: nothing to send
        self._last = key
        try:
            self._worker.submit(oled_frames.render(screen, self.device.width, self.device.height))
        except HardwareError:
            self._last = None  # an earlier frame failed: the next show resends everything
            raise

    def _write(self, image):
        """On the worker thread: the changed pages to the panel."""
        try:
            self._pages.write(oled_frames.pages_of(self.device.preprocess(image)))
        except (OSError, luma_error.Error) as exc:
            raise HardwareError("%s on %s: write failed (%s)" % (self.controller.upper(), self.where, _reason(exc)))

    def _send_run(self, first, pages):
        device = self.device
        if self.controller == "sh1106":  # page addressing: one page at a time, column 2 of 132
            for i, page in enumerate(pages):
                device.command(0xB0 + first + i, 0x02, 0x10)
                device.data(list(page))
            return
        # SSD1306 horizontal addressing: one window over the run of pages
        device.command(0x21, 0, len(pages[0]) - 1, 0x22, first, first + len(pages) - 1)
        device.data(list(b"".join(pages)))

    def flush(self, timeout=5.0):
        """Wait until the newest frame is on the panel."""
        return self._worker.flush(timeout)

    def selftest(self):
        return True, "%s 128x64 on %s" % (self.controller.upper(), self.where)

    def close(self):
        worker = getattr(self, "_worker", None)
        if worker is not None:
            worker.flush(1.0)
            worker.close()
        device, self.device = getattr(self, "device", None), None
        if device is not None:
            try:
                device.cleanup()  # blank the panel and close the bus
            except Exception:  # closing must not mask the real error
                pass


def _reason(exc):
    return errno.errorcode.get(exc.errno, str(exc)) if getattr(exc, "errno", None) else str(exc)
