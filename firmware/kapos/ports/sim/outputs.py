"""Simulated output devices: OLED display, thermal printer, buzzer, clock."""
import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # luma.emulator imports pygame
import time

from escpos.printer import Dummy
from luma.emulator.device import emulator

from kapos import hal
from kapos.errors import HardwareError
from kapos.ports.shared import escpos_receipt, luma_screen, receipt_png


class RecordingOled(emulator):
    """A luma.emulator device that keeps its frames in memory (and as PNGs on request)
    instead of opening a window: what the simulated board's OLED shows."""

    def __init__(self, width=128, height=64, keep=200):
        emulator.__init__(self, width, height, rotate=0, mode="1", transform="none", scale=1)
        self.frames = []
        self.keep = keep
        self.frame_count = 0

    def display(self, image):
        self._last_image = image.copy()
        self.frames.append(self._last_image)
        del self.frames[:-self.keep]
        self.frame_count += 1

    @property
    def image(self):
        return self._last_image


class SimDisplay(hal.Display):
    def __init__(self, width=128, height=64, out_dir=None, **options):
        self.width, self.height = width, height
        self.device = RecordingOled(width, height)
        self.out_dir = out_dir
        self.fail = None  # an exception to raise on show (fault injection)
        self.screens = []

    def show(self, screen):
        if self.fail is not None:
            raise self.fail
        luma_screen.show_on(self.device, screen)
        self.screens.append(screen)
        del self.screens[:-200]
        if self.out_dir:
            self.save_png(os.path.join(self.out_dir, "screen-%04d.png" % self.device.frame_count))

    @property
    def image(self):
        return self.device.image

    def save_png(self, path, scale=4):
        image = self.device.image
        if image is None:
            return None
        big = image.convert("L").resize((image.width * scale, image.height * scale), 0)
        big.save(path)
        return path

    def selftest(self):
        return True, "sim OLED %dx%d" % (self.width, self.height)


class SimPrinter(hal.Printer):
    """python-escpos's Dummy printer: real ESC/POS bytes, kept per job."""

    def __init__(self, profile="POS-5890", out_dir=None, **options):
        self.profile = profile
        self.out_dir = out_dir
        self.jobs = []  # (Receipt, escpos bytes)
        self.paper_out = False
        self.offline = False

    def status(self):
        if self.offline:
            return "offline"
        return "paper-out" if self.paper_out else "ok"

    def selftest(self):
        state = self.status()
        return state == "ok", "sim printer: %s" % state

    async def print_receipt(self, receipt):
        state = self.status()
        if state != "ok":
            raise HardwareError("printer %s" % state)
        printer = Dummy(profile=self.profile)
        escpos_receipt.print_receipt(printer, receipt)
        self.jobs.append((receipt, printer.output))
        del self.jobs[:-50]
        if self.out_dir:
            n = len(self.jobs)
            receipt_png.save(receipt, os.path.join(self.out_dir, "receipt-%02d.png" % n))
            with open(os.path.join(self.out_dir, "receipt-%02d.txt" % n), "w") as f:
                f.write(receipt.text())

    def last(self):
        return self.jobs[-1] if self.jobs else None


class SimBuzzer(hal.Buzzer):
    def __init__(self, **options):
        self.beeps = []

    def beep(self, kind):
        self.beeps.append(kind)
        del self.beeps[:-1000]

    def selftest(self):
        return True, "sim buzzer"


class SimClock(hal.Clock):
    """Real time, or a fixed start time that then advances at the real rate
    (deterministic receipts for scenarios and docs)."""

    def __init__(self, start=None, **options):
        self._offset = 0.0
        if start is not None:
            self.set_time(start)

    def set_time(self, epoch):
        self._offset = float(epoch) - time.time()

    def now(self):
        return time.time() + self._offset

    def selftest(self):
        return True, "sim clock%s" % (" (set)" if self._offset else "")
