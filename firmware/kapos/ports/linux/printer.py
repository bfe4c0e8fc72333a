"""ESC/POS thermal printers through python-escpos: TTL/RS-232 serial and USB.

The receipt itself is kapos.ports.shared.escpos_receipt (the simulator prints the same
bytes into python-escpos' Dummy). Status comes from DLE EOT (real-time status): the
online flag first, then the paper sensor. No answer at all is "unknown", not "offline":
many TTL printers have their TX unwired (it swings to 5 V) or ignore DLE EOT, and they
print fine -- so the job is sent. Serial writes block for the whole job at 9600 baud, so
a job runs in a worker thread, status check included, with a lock so two jobs never
interleave; `status()` (called on the loop) never queries, it reports the last answer and
refreshes it on a thread. `byte_rate` paces writes for printers without flow control.
"""

import asyncio
import os
import threading
import time

from kapos import hal
from kapos.errors import ConfigError, HardwareError
from kapos.ports.shared import escpos_receipt

STATES = ("ok", "paper-out", "offline", "unknown")
STATUS_MAX_AGE_S = 10.0  # status() refreshes an older answer in the background
RT_ONLINE, RT_PAPER = b"\x10\x04\x01", b"\x10\x04\x04"  # DLE EOT 1 (printer), DLE EOT 4 (roll paper)
CHUNK = 64  # paced writes: bytes per write


def _paced(write, byte_rate, sleep=time.sleep):
    """device.write that keeps to `byte_rate` bytes/s: a printer without flow control
    whose buffer fills while it prints a raster image drops bytes."""
    def paced_write(data):
        data = bytes(data)
        for i in range(0, len(data), CHUNK):
            chunk = data[i:i + CHUNK]
            started = time.monotonic()
            write(chunk)
            rest = len(chunk) / byte_rate - (time.monotonic() - started)
            if rest > 0:
                sleep(rest)
        return len(data)
    return paced_write


class _EscposPrinter(hal.Printer):
    """Common part. Board keys: profile (python-escpos profile, e.g. POS-5890), codepage
    (e.g. CP437, CP858; 'auto' lets python-escpos switch per character), logo (PNG path
    printed on top), status_query (false when the printer's TX is not wired: saves the
    status timeout per job), byte_rate (bytes/s written at most; 0 = as fast as the port)."""

    def _setup(self, printer, profile, codepage, logo, status_query, byte_rate=0):
        self.profile = profile
        self.codepage = codepage
        self.status_query = status_query
        self._lock = threading.Lock()
        self._last_status = "unknown"
        self._status_at = None
        self._refreshing = False
        self.printer = printer
        if byte_rate:
            if not isinstance(byte_rate, (int, float)) or byte_rate < 100:
                raise ConfigError("[printer] byte_rate must be at least 100 bytes/s (or 0 for no pacing), got %r"
                                  % (byte_rate,))
            device = printer.device
            device.write = _paced(device.write, byte_rate)
        self.byte_rate = byte_rate
        if codepage.lower() != "auto":
            codepages = printer.profile.get_code_pages()
            if codepage.upper() not in codepages:
                raise ConfigError("[printer] codepage %r is not in profile %s (known: %s)"
                                  % (codepage, profile, ", ".join(sorted(codepages))))
        self.logo = None
        if logo:
            from PIL import Image

            if not os.path.isfile(logo):
                raise ConfigError("[printer] logo %s: no such file" % logo)
            with Image.open(logo) as image:
                self.logo = image.convert("1")  # decoded once, not per receipt

    def status(self):
        """The last status answer; called on the event loop, so it never waits for the
        printer: an answer older than STATUS_MAX_AGE_S is refreshed on a thread."""
        stale = self._status_at is None or time.monotonic() - self._status_at > STATUS_MAX_AGE_S
        if stale and self.status_query and not self._refreshing:
            self._refreshing = True
            threading.Thread(target=self._refresh, name="kapos-printer-status", daemon=True).start()
        return self._last_status

    def _refresh(self):
        try:
            if self._lock.acquire(timeout=30):  # a job refreshes it anyway
                try:
                    self._status()
                finally:
                    self._lock.release()
        finally:
            self._refreshing = False

    def query_status(self):
        """Ask the printer now (blocking: worker threads and tests)."""
        with self._lock:
            return self._status()

    def _status(self):
        self._last_status = state = self._query()
        self._status_at = time.monotonic()
        return state

    def _query(self):
        if not self.status_query:
            return "unknown"
        printer = self.printer
        try:
            flush = getattr(printer.device, "reset_input_buffer", None)
            if flush is not None:
                flush()  # a stale byte (e.g. an old status) must not answer this query
            online = printer.query_status(RT_ONLINE)
            if not online:
                return "unknown"  # TX not wired, or DLE EOT not supported: print anyway
            paper = printer.query_status(RT_PAPER)
        except NotImplementedError:  # transport cannot read back (e.g. Dummy)
            return "unknown"
        except Exception:  # serial / USB errors: the link is gone
            return "offline"
        if paper and paper[0] & 0x72 == 0x72:  # roll paper end sensor (bits 5-6 with the fixed bits)
            return "paper-out"
        return "offline" if online[0] & 0x08 else "ok"

    def _print(self, receipt):
        with self._lock:
            state = self._status()
            if state in ("paper-out", "offline"):
                raise HardwareError("printer %s" % state)  # before a single byte of the job
            p = self.printer
            try:
                p.hw("INIT")  # ESC @: clears modes left by an aborted job
                if self.codepage.lower() != "auto":
                    p.magic.encoding = None  # ESC @ reset the table: send ESC t again
                    p.charcode(self.codepage)
                if self.logo is not None:
                    p.image(self.logo, center=True)
                escpos_receipt.print_receipt(p, receipt)
                flush = getattr(p.device, "flush", None)
                if flush is not None:
                    flush()
            except HardwareError:
                raise
            except Exception as exc:  # SerialException, USBError, escpos errors
                raise HardwareError("printer write failed: %s" % exc)

    async def print_receipt(self, receipt):
        await asyncio.to_thread(self._print, receipt)

    def selftest(self):
        state = self.status()  # the last answer: the self-test runs on the loop
        detail = state if state != "unknown" else "status unknown (no DLE EOT answer yet; jobs are sent)"
        return state in ("ok", "unknown"), "printer %s (%s): %s" % (self.where, self.profile, detail)

    def close(self):
        printer, self.printer = getattr(self, "printer", None), None
        if printer is not None:
            try:
                printer.close()
            except Exception:  # closing must not mask the real error
                pass


def _unknown(unknown, driver_name):
    if unknown:
        raise ConfigError("[printer] unknown key %r for driver %r" % (sorted(unknown)[0], driver_name))


class SerialEscposPrinter(_EscposPrinter):
    """Board keys: port (/dev/serial0), baudrate (9600 for most TTL printers), timeout
    (s to wait for a status answer), byte_rate (default: none, or 1200 bytes/s when a
    logo is printed above 9600 baud), plus the common keys above.
    Test hook: printer (an escpos printer object, e.g. Dummy or a Serial on a fake port)."""

    def __init__(self, port="/dev/serial0", baudrate=9600, timeout=0.5, profile="POS-5890", codepage="CP437",
                 logo=None, status_query=True, byte_rate=None, bus=None, driver_name="escpos-serial", printer=None,
                 **unknown):
        _unknown(unknown, driver_name)
        self.where = port
        if byte_rate is None:
            # raster logos outrun a printer with no flow control above 9600 baud
            byte_rate = 1200 if logo and baudrate > 9600 else 0
        if printer is None:
            printer = self._open(port, baudrate, timeout, profile)
        self._setup(printer, profile, codepage, logo, status_query, byte_rate)

    @staticmethod
    def _open(port, baudrate, timeout, profile):
        from kapos.ports.shared import escpos_cache

        Serial = escpos_cache.load().Serial
        from escpos.exceptions import DeviceNotFoundError

        # TTL printers wire TX/RX/GND only: no DSR/DTR flow control
        printer = Serial(devfile=port, baudrate=baudrate, timeout=timeout, dsrdtr=False, profile=profile)
        try:
            device = printer.device  # python-escpos opens on first use: open now, fail now
        except DeviceNotFoundError as exc:
            raise HardwareError("cannot open printer port %s: %s (enable_uart=1? user in 'dialout'?)"
                                % (port, str(exc).splitlines()[-1]))
        # a status answer is one byte: stop reading shortly after it, not at the full timeout
        device.inter_byte_timeout = 0.05
        return printer


class UsbEscposPrinter(_EscposPrinter):
    """Board keys: vendor_id, product_id (see `lsusb`), in_ep, out_ep (endpoints,
    python-escpos defaults 0x82 / 0x01), timeout (ms, 0 = none), plus the common keys."""

    def __init__(self, vendor_id=None, product_id=None, in_ep=0x82, out_ep=0x01, timeout=0, profile="POS-5890",
                 codepage="CP437", logo=None, status_query=True, byte_rate=0, bus=None, driver_name="escpos-usb",
                 printer=None, **unknown):
        _unknown(unknown, driver_name)
        self.where = "USB %04x:%04x" % (vendor_id or 0, product_id or 0)
        if printer is None:
            if vendor_id is None or product_id is None:
                raise ConfigError("[printer] escpos-usb needs vendor_id and product_id (from `lsusb`)")
            printer = self._open(vendor_id, product_id, in_ep, out_ep, timeout, profile)
        self._setup(printer, profile, codepage, logo, status_query, byte_rate)

    def _open(self, vendor_id, product_id, in_ep, out_ep, timeout, profile):
        from kapos.ports.shared import escpos_cache

        Usb = escpos_cache.load().Usb
        from escpos.exceptions import DeviceNotFoundError

        try:
            printer = Usb(vendor_id, product_id, timeout=timeout, in_ep=in_ep, out_ep=out_ep, profile=profile)
            printer.device  # open now, fail now
        except RuntimeError:  # python-escpos' way of saying pyusb is missing
            raise HardwareError("USB printing needs pyusb: `pip install pyusb` (and libusb-1.0-0)")
        except DeviceNotFoundError as exc:
            raise HardwareError("printer %s not found or not accessible (%s): plugged in? udev rule for "
                                "the 'lp' or 'plugdev' group?" % (self.where, str(exc).splitlines()[-1]))
        return printer
