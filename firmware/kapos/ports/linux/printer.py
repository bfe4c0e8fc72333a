"""ESC/POS thermal printers through python-escpos: TTL/RS-232 serial and USB.

The receipt itself is kapos.ports.shared.escpos_receipt (the simulator prints the same
bytes into python-escpos' Dummy). Status comes from DLE EOT (real-time status): paper
sensor first, then the online flag; no answer at all means the printer is off or its TX
line is not wired. Serial writes block for the whole job at 9600 baud, so a job runs in
a worker thread, status check included, with a lock so two jobs never interleave.
"""

import asyncio
import os
import threading

from kapos import hal
from kapos.errors import ConfigError, HardwareError
from kapos.ports.shared import escpos_receipt

STATES = ("ok", "paper-out", "offline", "unknown")


class _EscposPrinter(hal.Printer):
    """Common part. Board keys: profile (python-escpos profile, e.g. POS-5890), codepage
    (e.g. CP437, CP858; 'auto' lets python-escpos switch per character), logo (PNG path
    printed on top), status_query (false when the printer's TX is not wired)."""

    def _setup(self, printer, profile, codepage, logo, status_query):
        self.profile = profile
        self.codepage = codepage
        self.status_query = status_query
        self._lock = threading.Lock()
        self._last_status = "unknown"
        self.printer = printer
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
        # called on the event loop: never wait for a job that is printing, report the last answer
        if not self._lock.acquire(blocking=False):
            return self._last_status
        try:
            return self._status()
        finally:
            self._lock.release()

    def _status(self):
        self._last_status = state = self._query()
        return state

    def _query(self):
        if not self.status_query:
            return "unknown"
        printer = self.printer
        try:
            flush = getattr(printer.device, "reset_input_buffer", None)
            if flush is not None:
                flush()  # a stale byte (e.g. an old status) must not answer this query
            paper = printer.paper_status()  # no answer -> 2 (python-escpos' default)
            online = printer.is_online()  # no answer -> False
        except NotImplementedError:  # transport cannot read back (e.g. Dummy)
            return "unknown"
        except Exception:  # serial / USB errors: the link is gone
            return "offline"
        if paper == 0:
            return "paper-out"
        return "ok" if online else "offline"

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
        state = self.status()
        return state in ("ok", "unknown"), "printer %s (%s): %s" % (self.where, self.profile, state)

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
    (s to wait for a status answer), plus the common keys above.
    Test hook: printer (an escpos printer object, e.g. Dummy or a Serial on a fake port)."""

    def __init__(self, port="/dev/serial0", baudrate=9600, timeout=0.5, profile="POS-5890", codepage="CP437",
                 logo=None, status_query=True, bus=None, driver_name="escpos-serial", printer=None, **unknown):
        _unknown(unknown, driver_name)
        self.where = port
        if printer is None:
            printer = self._open(port, baudrate, timeout, profile)
        self._setup(printer, profile, codepage, logo, status_query)

    @staticmethod
    def _open(port, baudrate, timeout, profile):
        from escpos.exceptions import DeviceNotFoundError
        from escpos.printer import Serial

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
                 codepage="CP437", logo=None, status_query=True, bus=None, driver_name="escpos-usb",
                 printer=None, **unknown):
        _unknown(unknown, driver_name)
        self.where = "USB %04x:%04x" % (vendor_id or 0, product_id or 0)
        if printer is None:
            if vendor_id is None or product_id is None:
                raise ConfigError("[printer] escpos-usb needs vendor_id and product_id (from `lsusb`)")
            printer = self._open(vendor_id, product_id, in_ep, out_ep, timeout, profile)
        self._setup(printer, profile, codepage, logo, status_query)

    def _open(self, vendor_id, product_id, in_ep, out_ep, timeout, profile):
        from escpos.exceptions import DeviceNotFoundError
        from escpos.printer import Usb

        try:
            printer = Usb(vendor_id, product_id, timeout=timeout, in_ep=in_ep, out_ep=out_ep, profile=profile)
            printer.device  # open now, fail now
        except RuntimeError:  # python-escpos' way of saying pyusb is missing
            raise HardwareError("USB printing needs pyusb: `pip install pyusb` (and libusb-1.0-0)")
        except DeviceNotFoundError as exc:
            raise HardwareError("printer %s not found or not accessible (%s): plugged in? udev rule for "
                                "the 'lp' or 'plugdev' group?" % (self.where, str(exc).splitlines()[-1]))
        return printer
