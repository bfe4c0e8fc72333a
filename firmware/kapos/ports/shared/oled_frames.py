"""OLED frames off the event loop: render on the loop (cheap), write on a worker thread.

An SSD1306/SH1106 frame is 1 KB; at the Pi's default 100 kHz I2C that is ~95 ms of bus
time, which must never block the terminal's loop. `FrameWorker` keeps only the newest
frame (a frame superseded while the bus was busy is never sent) and `PageDiff` sends only
the 8-row pages that changed since the last write (one key press usually changes one or
two). Used by the real panel (kapos.ports.linux.display) and the simulated one.
"""

import logging
import threading

from PIL import Image, ImageDraw

from kapos.ports.shared import luma_screen

log = logging.getLogger("kapos.display")

PAGE_ROWS = 8


def render(screen, width=128, height=64):
    """The Screen as a 1-bit image (what luma's canvas would draw)."""
    image = Image.new("1", (width, height))
    luma_screen.draw_screen(ImageDraw.Draw(image), screen, width, height)
    return image


def pages_of(image):
    """Panel RAM layout: per page of 8 rows, one byte per column, bit 0 = the top row."""
    out = []
    for top in range(0, image.height, PAGE_ROWS):
        strip = image.crop((0, top, image.width, top + PAGE_ROWS))
        # rotated clockwise, row x of the strip's image is column x: MSB = bottom row
        out.append(strip.transpose(Image.Transpose.ROTATE_270).tobytes())
    return out


def changed_runs(old, new):
    """[(first page, [page bytes, ...]), ...]: runs of consecutive pages that differ."""
    runs = []
    for i, page in enumerate(new):
        if old is not None and old[i] == page:
            continue
        if runs and runs[-1][0] + len(runs[-1][1]) == i:
            runs[-1][1].append(page)
        else:
            runs.append((i, [page]))
    return runs


class PageDiff:
    """Remembers what the panel holds; `write(pages)` sends only what changed through
    `send_run(first_page, [page bytes])`. After a failed write everything is resent."""

    def __init__(self, send_run):
        self.send_run = send_run
        self.panel = None  # page bytes the panel holds, None: unknown
        self.pages_sent = 0

    def write(self, pages):
        runs = changed_runs(self.panel, pages)
        try:
            for first, run in runs:
                self.send_run(first, run)
                self.pages_sent += len(run)
        except Exception:
            self.panel = None
            raise
        self.panel = list(pages)
        return runs


class FrameWorker:
    """Writes frames with `write(frame)` on its own thread, newest only. `inline=True`
    writes in the caller instead (a panel with no bus time: the plain simulator).
    A write error is kept and raised by the next `submit` (the runtime reports it)."""

    def __init__(self, write, name="display", inline=False):
        self._write = write
        self.name = name
        self.inline = inline
        self._cond = threading.Condition()
        self._next = None
        self._busy = False
        self._closed = False
        self._error = None
        self.frames_written = 0
        self.frames_dropped = 0  # superseded before the bus was free
        self._thread = None
        if not inline:
            self._thread = threading.Thread(target=self._run, name="kapos-" + name, daemon=True)
            self._thread.start()

    def submit(self, frame):
        if self.inline:
            self._write(frame)
            self.frames_written += 1
            return
        with self._cond:
            error, self._error = self._error, None
            if self._next is not None:
                self.frames_dropped += 1
            self._next = frame
            self._cond.notify_all()
        if error is not None:
            raise error

    def _run(self):
        while True:
            with self._cond:
                while self._next is None and not self._closed:
                    self._cond.wait()
                if self._next is None:
                    return
                frame, self._next = self._next, None
                self._busy = True
            try:
                self._write(frame)
                self.frames_written += 1
            except Exception as exc:  # kept for the loop to report; the thread carries on
                log.error("%s write failed: %s", self.name, exc)
                with self._cond:
                    self._error = exc
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def flush(self, timeout=5.0):
        """Wait until the newest frame is on the panel (tests, close). False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._next is None and not self._busy, timeout)

    def close(self, timeout=2.0):
        if self._thread is None:
            return
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
