"""Simulated output devices: OLED display, thermal printer, buzzer, clock."""
import asyncio
import os
import time

from kapos import hal
from kapos.errors import HardwareError
from kapos.ports.shared import escpos_cache, escpos_receipt, oled_frames, receipt_png
from kapos.ports.sim.wire import Wire


class RecordingOled:
    """An in-memory panel keeping its frames (and PNGs on request): what the simulated
    board's OLED shows. Frames are drawn by oled_frames.render as for the real panel, so
    neither luma.emulator (it would pull pygame in) nor luma.core (~20 ms of a cold
    start) is needed here."""

    def __init__(self, width=128, height=64, keep=200):
        self.width, self.height = width, height
        self.size = (width, height)
        self.mode = "1"
        self.image = None
        self.frames = []
        self.keep = keep
        self.frame_count = 0

    def display(self, image):
        self.image = image.copy()
        self.frames.append(self.image)
        del self.frames[:-self.keep]
        self.frame_count += 1


class SimDisplay(hal.Display):
    """The OLED twin. With `wire_time = true` it takes a real panel's I2C time (`i2c_hz`,
    default the Pi's 100 kHz) on the same writer thread and page diff as the real one;
    without, frames are drawn at once in the caller."""

    def __init__(self, width=128, height=64, out_dir=None, wire_time=False, i2c_hz=100000, **options):
        self.width, self.height = width, height
        self.device = RecordingOled(width, height)
        self.out_dir = out_dir
        self.fail = None  # an exception to raise on show (fault injection)
        self.screens = []
        self.wire = Wire.i2c(i2c_hz) if wire_time else None
        self._pages = oled_frames.PageDiff(self._send_run)
        self._worker = oled_frames.FrameWorker(self._write, "sim-display", inline=self.wire is None)

    def show(self, screen):
        if self.fail is not None:
            raise self.fail
        self.screens.append(screen)
        del self.screens[:-200]
        self._worker.submit(oled_frames.render(screen, self.width, self.height))

    def _write(self, image):
        self._pages.write(oled_frames.pages_of(image))
        self.device.display(image)
        if self.out_dir:
            self.save_png(os.path.join(self.out_dir, "screen-%04d.png" % self.device.frame_count))

    def _send_run(self, first, pages):
        if self.wire is not None:  # the window command, then the data in 32-byte smbus blocks
            n = sum(len(p) for p in pages)
            self.wire.send(7 + n + 2 * ((n + 31) // 32), transfers=1 + (n + 31) // 32)

    def flush(self, timeout=5.0):
        return self._worker.flush(timeout)

    def close(self):
        self._worker.flush(1.0)
        self._worker.close()

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
    """python-escpos's Dummy printer: real ESC/POS bytes, kept per job. With
    `wire_time = true` a job takes its real time at `baudrate`, on a worker thread (as
    the serial printer's job does)."""

    def __init__(self, profile="POS-5890", out_dir=None, wire_time=False, baudrate=9600, **options):
        self.profile = profile
        self.out_dir = out_dir
        self.jobs = []  # (Receipt, escpos bytes)
        self.paper_out = False
        self.offline = False
        self.wire = Wire.uart(baudrate) if wire_time else None

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
        printer = escpos_cache.load().Dummy(profile=self.profile)  # python-escpos: at first use
        escpos_receipt.print_receipt(printer, receipt)
        if self.wire is not None:
            await asyncio.to_thread(self.wire.send, len(printer.output))
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
        self._skipped = 0.0
        if start is not None:
            self.set_time(start)

    def set_time(self, epoch):
        """The wall clock set (a jump: the monotonic clock does not move)."""
        self._offset = float(epoch) - time.time()

    def skip(self, seconds):
        """Time passing at once (tests): both clocks move on by `seconds`."""
        self._offset += seconds
        self._skipped += seconds

    def now(self):
        return time.time() + self._offset

    def monotonic(self):
        return time.monotonic() + self._skipped

    def selftest(self):
        return True, "sim clock%s" % (" (set)" if self._offset else "")
