"""Magstripe readers on Linux: USB keyboard wedges (evdev) and serial (TTL/RS-232) readers.

Both return what the reader sends for one swipe, tracks joined by a newline when the
reader ends each track with its own ENTER / line end (parse_swipe accepts either);
decoding the tracks is kapos.card's job.
"""

import asyncio
import collections
import re
import threading
import time

from kapos import hal
from kapos.drivers.wedge_keymap import WedgeDecoder
from kapos.errors import ConfigError, HardwareError

EV_KEY = 1
# Input device names that look like a card reader (MSR90, "Magtek USB Swipe Reader", ...).
READER_NAME = re.compile(r"card|magnetic|magstripe|msr|swipe|mag ?tek|idtech|reader", re.I)
# USB vendors whose keyboard devices are card readers, for readers that call themselves
# "HID Keyboard" or nothing at all: MagTek, ID TECH.
READER_VENDORS = (0x0801, 0x0ACD)


def _parse_usb_ids(values):
    """["0801:0001", "0acd"] -> [(vendor, product or None)]"""
    out = []
    for value in values or ():
        vendor, _, product = str(value).partition(":")
        try:
            out.append((int(vendor, 16), int(product, 16) if product else None))
        except ValueError:
            raise ConfigError("[magstripe] usb_ids entries look like \"0801:0001\" (hex vendor:product), got %r"
                              % (value,))
    return out


def _usb_id(dev):
    info = getattr(dev, "info", None)
    return (getattr(info, "vendor", None), getattr(info, "product", None))


def _event_ms(event):
    """The kernel's timestamp of an input event in ms (evdev), else now."""
    stamp = getattr(event, "timestamp", None)
    return stamp() * 1000.0 if callable(stamp) else time.monotonic() * 1000.0


async def _join_tracks(first, next_text, gap):
    """`first`, plus whatever else arrives within `gap` seconds of the previous track."""
    parts = [first]
    while gap > 0:
        more = await next_text(gap)
        if more is None:
            break
        parts.append(more)
    return "\n".join(parts)


def _load_evdev(module):
    if module is not None:
        return module
    try:
        import evdev  # Pi only (apt python3-evdev or the 'pi' extra)
    except ImportError:
        raise HardwareError("the evdev module is missing: install the 'pi' extra (or apt python3-evdev)")
    return evdev


class HidWedgeReader(hal.MagstripeReader):
    """Board keys: device ('auto': the first input device that is a card reader by its USB
    vendor/product id (usb_ids, else the known reader vendors) or by its name; or a path
    such as /dev/input/by-id/usb-...-event-kbd), usb_ids (["0801:0001", ...]), grab
    (exclusive access, so swipes never reach a console login), track_gap (s),
    char_timeout (s of silence after which an unfinished swipe is dropped).
    Test hooks: evdev_module, input_device (an open evdev.InputDevice stand-in)."""

    def __init__(self, device="auto", grab=True, track_gap=0.15, usb_ids=None, char_timeout=0.5, bus=None,
                 driver_name="hid-wedge", evdev_module=None, input_device=None, **unknown):
        if unknown:
            raise ConfigError("[magstripe] unknown key %r for driver %r" % (sorted(unknown)[0], driver_name))
        self.device_setting = device
        self.grab = grab
        self.track_gap = track_gap
        self.usb_ids = _parse_usb_ids(usb_ids)
        self.char_timeout = char_timeout
        self._evdev = None if input_device is not None else _load_evdev(evdev_module)
        self._dev = input_device if input_device is not None else self._open()
        try:
            self._grab()
        except HardwareError:
            self._dev.close()
            raise
        self._decoder = WedgeDecoder(char_timeout_ms=char_timeout * 1000)
        self._queue = None
        self._pump = None

    def _open(self):
        evdev = self._evdev
        if self.device_setting != "auto":
            try:
                return evdev.InputDevice(self.device_setting)
            except FileNotFoundError:
                raise HardwareError("card reader %s is not there: is it plugged in?" % self.device_setting)
            except PermissionError:
                raise HardwareError("no permission to read %s: add the user to the 'input' group"
                                    % self.device_setting)
        seen = []
        by_name = None
        for path in evdev.list_devices():
            try:
                dev = evdev.InputDevice(path)
            except OSError:
                continue
            if EV_KEY in dev.capabilities():
                if self._is_reader_by_id(dev):  # an id match beats a name match
                    for other in seen + ([by_name] if by_name is not None else []):
                        other.close()
                    return dev
                if by_name is None and READER_NAME.search(dev.name or ""):
                    by_name = dev
                    continue
            seen.append(dev)
        if by_name is not None:
            for other in seen:
                other.close()
            return by_name
        names = ", ".join("%r" % d.name for d in seen) or "none readable (is the user in the 'input' group?)"
        for other in seen:
            other.close()
        raise HardwareError("no card reader among the input devices (%s): plug it in, or set [magstripe] "
                            "device to its /dev/input/by-id/... path" % names)

    def _is_reader_by_id(self, dev):
        vendor, product = _usb_id(dev)
        if vendor is None:
            return False
        if self.usb_ids:
            return any(v == vendor and p in (None, product) for v, p in self.usb_ids)
        return vendor in READER_VENDORS

    def _grab(self):
        if not self.grab:
            return
        try:
            self._dev.grab()
        except OSError as exc:
            raise HardwareError("cannot grab %s (%s): another program holds it" % (self._dev.path, exc))

    async def _pump_events(self):
        try:
            async for event in self._dev.async_read_loop():
                if event.type == EV_KEY:
                    text = self._decoder.feed(event.code, event.value, _event_ms(event))
                    if text:
                        self._queue.put_nowait(text)
        except OSError as exc:  # unplugged (ENODEV)
            self._queue.put_nowait(HardwareError("card reader %s stopped: %s" % (self._dev.path, exc)))

    async def _next(self, timeout=None):
        if self._pump is None:
            self._queue = asyncio.Queue()
            self._pump = asyncio.ensure_future(self._pump_events())
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        if isinstance(item, Exception):
            self._reopen()
            raise item
        return item

    def _reopen(self):
        """After the reader vanished, the next read looks for it again (USB re-plug)."""
        self._pump = None
        self._decoder.reset()
        if self._evdev is not None:
            try:
                self._dev.close()
            except OSError:
                pass
            try:
                self._dev = self._open()
                self._grab()
            except HardwareError:
                pass  # the next read_swipe fails the same way until it is back

    async def read_swipe(self):
        first = await self._next()
        return await _join_tracks(first, self._next, self.track_gap)

    def selftest(self):
        return True, "card reader %r at %s" % (self._dev.name, self._dev.path)

    def close(self):
        pump, self._pump = self._pump, None
        if pump is not None:
            try:
                pump.cancel()
            except RuntimeError:  # its event loop is already closed
                pass
        dev, self._dev = self._dev, None
        if dev is not None:
            try:
                if self.grab:
                    dev.ungrab()
            except OSError:
                pass
            dev.close()


class SerialMagstripe(hal.MagstripeReader):
    """Board keys: port (e.g. /dev/ttyUSB0 or /dev/serial0), baudrate, timeout (s of
    silence that ends a swipe sent without a line end), track_gap (s).
    Reads in a worker thread (pyserial blocks); lines end with CR and/or LF.
    Test hook: serial_port (an open pyserial port, e.g. serial_for_url('loop://'))."""

    POLL = 0.05  # the worker thread's read granularity (s)

    def __init__(self, port=None, baudrate=9600, timeout=0.5, track_gap=0.15, bus=None,
                 driver_name="serial", serial_port=None, **unknown):
        if unknown:
            raise ConfigError("[magstripe] unknown key %r for driver %r" % (sorted(unknown)[0], driver_name))
        if serial_port is None and not port:
            raise ConfigError("[magstripe] the serial reader needs port (e.g. /dev/ttyUSB0)")
        self.timeout = timeout
        self.track_gap = track_gap
        self.where = port or getattr(serial_port, "name", "serial port")
        self._port = serial_port if serial_port is not None else self._open(port, baudrate)
        self._port.timeout = self.POLL
        self._buf = bytearray()
        self._rx_at = 0.0
        self._lines = collections.deque()  # complete lines: a cancelled read never loses one
        self._lock = threading.Lock()

    def _open(self, port, baudrate):
        import serial

        try:
            return serial.Serial(port, baudrate, timeout=self.POLL)
        except serial.SerialException as exc:
            raise HardwareError("cannot open card reader port %s: %s (is the user in 'dialout'?)" % (port, exc))

    def _split(self):
        while True:
            ends = [i for i in (self._buf.find(b"\r"), self._buf.find(b"\n")) if i >= 0]
            if not ends:
                return
            cut = min(ends)
            line = bytes(self._buf[:cut]).strip(b"\x00 ")
            del self._buf[:cut + 1]
            if line:
                self._lines.append(line)

    def _next_line(self, wait):
        """A complete line, or None after `wait` seconds without one (blocking: run in a thread)."""
        with self._lock:
            deadline = time.monotonic() + wait
            while not self._lines:
                port = self._port
                if port is None:
                    raise HardwareError("card reader %s is closed" % self.where)
                try:
                    chunk = port.read(max(1, port.in_waiting))
                except Exception as exc:  # SerialException, OSError: unplugged
                    raise HardwareError("card reader %s: read failed: %s" % (self.where, exc))
                now = time.monotonic()
                if chunk:
                    self._buf += chunk
                    self._rx_at = now
                    self._split()
                elif self._buf and now - self._rx_at >= self.timeout:
                    line = bytes(self._buf).strip(b"\x00 ")  # no line end: pass it on
                    self._buf.clear()
                    if line:
                        self._lines.append(line)
                elif now >= deadline:
                    return None
            # latin-1 keeps every byte as one character: parse_swipe reports non-ASCII by offset
            return self._lines.popleft().decode("latin-1")

    async def _next(self, wait):
        return await asyncio.to_thread(self._next_line, wait)

    async def read_swipe(self):
        while True:
            first = await self._next(1.0)
            if first is not None:
                return await _join_tracks(first, self._next, self.track_gap)

    def selftest(self):
        return True, "serial card reader on %s" % self.where

    def close(self):
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except Exception:  # closing must not mask the real error
                pass
