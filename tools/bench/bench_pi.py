#!/usr/bin/env python3
"""What a Pi Zero 2 W feels: the terminal on the timed sim board (boards/sim-pi.toml:
OLED frames at 100 kHz I2C, ~95 ms each; MFRC522 at 1 MHz SPI; printer at 9600 baud).

- loop lateness during a sale with an EMV tap [target p99 < 5 ms, max < 20 ms], the
  journal's commits taking an SD card's 20 ms fsync each (journal_fsync_ms)
- keypad: 50 ms presses every 120 ms on the real MatrixKeypad driver over a stand-in
  GPIO matrix, frames being written meanwhile [target 0 lost, press-to-handled < 50 ms]
- cold start of `kapos run --headless` to the idle screen on this PC [target < 0.2 s], the
  imports that take the time, and the resident memory of the terminal with a Pi board's
  driver modules loaded (no pygame)
- settlement: closing a batch of 1k and of 100k journal entries [target: within 2x]
"""

import asyncio
import concurrent.futures
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from kapos.app.scenario import Player, parse  # noqa: E402
from kapos.core import events as E  # noqa: E402
from kapos import harness  # noqa: E402
from kapos.local_target import LocalTarget  # noqa: E402
from kapos.ports.linux.keypad import MatrixKeypad  # noqa: E402
from kapos.wiring import Assembly  # noqa: E402

EMV_SALE = """timeout 20
key 1
keys 780
key ENTER
tap emv-tap
expect screen "1 Debit"
key 1
keys 1234
key ENTER
expect result approved
expect receipt "TAP"
key ENTER
expect state IDLE
"""
NO_LIMITS = [("limits.daily", "0"), ("storage.data_dir", None)]


class LatenessProbe:
    """A task that asks to wake every `period` s and notes how late each wake-up is."""

    def __init__(self, period=0.002):
        self.period = period
        self.late = []

    async def run(self):
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(self.period)
            self.late.append(loop.time() - asked - self.period)

    def figures(self):
        late = sorted(self.late)
        if not late:
            return 0.0, 0.0, 0.0
        return late[len(late) // 2], late[min(len(late) - 1, int(len(late) * 0.99))], late[-1]


class CallbackCpu:
    """While on: the CPU time (this thread's) of each loop callback. Wall-clock lateness
    also counts other processes on a shared machine; the longest callback's CPU time is
    what the terminal itself holds the loop for."""

    def __init__(self):
        self.longest = 0.0
        self._real = None

    def __enter__(self):
        import asyncio.events

        real = self._real = asyncio.events.Handle._run
        probe = self

        def run(handle):
            started = time.thread_time()
            real(handle)
            probe.longest = max(probe.longest, time.thread_time() - started)

        asyncio.events.Handle._run = run
        return self

    def __exit__(self, *exc):
        import asyncio.events

        asyncio.events.Handle._run = self._real
        return False


def _assembly(data):
    overrides = [(k, v if v is not None else '"%s"' % data) for k, v in NO_LIMITS]
    assembly = Assembly("sim-pi", overrides=overrides)
    _host_on_another_machine(assembly.authorizer.transport)
    return assembly


def _host_on_another_machine(transport):
    """The in-process reference host answers on a thread of its own: on a Pi the host is
    another machine, so its ledger commits are not the terminal loop's to wait for."""
    engine = getattr(transport, "engine", None)
    if engine is None:
        return
    host_thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-host")
    real_request = transport.request

    async def request(payload, timeout, accept=None):
        reply = await asyncio.get_running_loop().run_in_executor(host_thread, engine, bytes(payload))
        transport.engine = lambda _payload: reply  # the loopback then delivers the decided reply
        try:
            return await real_request(payload, timeout, accept)
        finally:
            transport.engine = engine

    transport.request = request


class JournalOnTheLoop:
    """For comparison: journal.aio's writes run inline on the loop (as before the writer
    thread), each still taking the modelled fsync."""

    def __init__(self, journal):
        self.journal = journal

    def __getattr__(self, name):
        method = getattr(self.journal, name)

        async def write(*args, **kwargs):
            return method(*args, **kwargs)

        return write


async def _sale_lateness(journal_on_loop=False):
    with tempfile.TemporaryDirectory(prefix="kapos-bench-pi-") as data:
        assembly = _assembly(data)
        if journal_on_loop:
            assembly.authorizer.journal.aio = JournalOnTheLoop(assembly.authorizer.journal)
        try:
            target = LocalTarget(assembly.terminal, assembly.testcards)
            async with harness.started(assembly):  # the harness on this Assembly
                player = Player(target, default_timeout=20.0)
                await player.play(parse(EMV_SALE))  # warm-up: sign-on, first frames
                probe = LatenessProbe()
                task = asyncio.ensure_future(probe.run())
                started = time.perf_counter()
                with CallbackCpu() as cpu:
                    await player.play(parse(EMV_SALE))
                wall = time.perf_counter() - started
                task.cancel()
                display = assembly.platform.get("display")
                nfc = assembly.platform.get("nfc")
                return probe.figures(), wall, display, nfc, assembly.authorizer.journal.fsync_delay, cpu.longest
        finally:
            assembly.close()


def sale_lateness():
    (p50, p99, worst), wall, display, nfc, fsync, longest = asyncio.run(_sale_lateness())
    print("loop lateness during a sale with an EMV tap (sim-pi: %s OLED, %s NFC, journal commits %.0f ms"
          " each on the writer thread):" % (display.wire.name, nfc.emulator.wire.name, fsync * 1e3))
    print("  p50 %.2f ms, p99 %.2f ms [target < 5 ms]%s, max %.2f ms [target < 20 ms]%s"
          % (p50 * 1e3, p99 * 1e3, _mark(p99, 0.005), worst * 1e3, _mark(worst, 0.020)))
    print("  longest loop callback %.2f ms of CPU (the terminal's own hold on the loop; wall-clock lateness above"
          " also counts other processes: load average %.1f on %d CPUs)" % (longest * 1e3, os.getloadavg()[0], os.cpu_count()))
    print("  sale took %.2f s wall; OLED wire time %.0f ms for %d frames written, %d superseded before sending"
          % (wall, display.wire.total_us / 1e3, display._worker.frames_written, display._worker.frames_dropped))
    (p50, p99, worst), _, _, _, _, longest = asyncio.run(_sale_lateness(journal_on_loop=True))
    print("  for comparison, the same journal writes on the loop: p99 %.2f ms, max %.2f ms, longest callback"
          " %.2f ms of CPU" % (p99 * 1e3, worst * 1e3, longest * 1e3))


# ---------------------------------------------------------------- keypad

class MatrixGpio:
    """An RPi.GPIO stand-in with a 4x4 matrix whose keys are pressed on a wall-clock
    timeline [(start_s, end_s, label)]: rows driven low one at a time, columns read."""

    BCM, IN, OUT, HIGH, LOW, PUD_UP, PUD_DOWN, PUD_OFF = 11, 1, 0, 1, 0, 22, 21, 20

    def __init__(self, layout, rows, cols):
        self.where = {}
        for r, row in enumerate(layout):
            for c, label in enumerate(row):
                self.where[label] = (rows[r], cols[c])
        self.rows, self.cols = rows, cols
        self.low = set()
        self.timeline = []
        self._lock = threading.Lock()

    def setwarnings(self, flag):
        pass

    def setmode(self, mode):
        pass

    def setup(self, number, direction, pull_up_down=None, initial=None):
        with self._lock:
            if direction == self.OUT and initial == self.LOW:
                self.low.add(number)
            else:
                self.low.discard(number)

    def output(self, number, level):
        with self._lock:
            (self.low.discard if level else self.low.add)(number)

    def input(self, number):
        now = time.monotonic()
        with self._lock:
            for start, end, label in self.timeline:
                if start <= now < end:
                    row, col = self.where[label]
                    if number == col and row in self.low:
                        return self.LOW
        return self.HIGH

    def cleanup(self, channels=None):
        pass


async def _keypad(presses=31, hold=0.050, every=0.120):
    layout = [["1", "2", "3", "A"], ["4", "5", "6", "B"], ["7", "8", "9", "C"], ["*", "0", "#", "D"]]
    rows, cols = [5, 6, 13, 19], [12, 16, 20, 21]
    gpio = MatrixGpio(layout, rows, cols)
    keypad = MatrixKeypad(rows, cols, layout=layout, keymap={"A": "CANCEL", "B": "CLEAR", "C": "MENU", "D": "ENTER", "*": "CLEAR", "#": "ENTER"},
                          debounce_ms=30, gpio_module=gpio)
    with tempfile.TemporaryDirectory(prefix="kapos-bench-pi-") as data:
        assembly = _assembly(data)
        assembly.platform.devices["keypad"] = keypad
        handled = []
        original = assembly.terminal.handle

        def handle(event):
            if event.kind == E.KEY:
                handled.append(time.monotonic())
            return original(event)

        assembly.terminal.handle = handle
        try:
            async with harness.started(assembly):  # the harness on this Assembly
                await asyncio.sleep(0.3)  # the idle screen's first frame
                start = time.monotonic() + 0.05
                labels = ["1", "B"]  # a digit then CLEAR: every press changes the screen
                gpio.timeline = [(start + i * every, start + i * every + hold, labels[i % 2]) for i in range(presses)]
                await asyncio.sleep(presses * every + 0.5)
                display = assembly.platform.get("display")
                frames = display._worker.frames_written
        finally:
            assembly.close()
    delays = []
    for (pressed, _, _), seen in zip(gpio.timeline, handled):
        delays.append(seen - pressed)
    return presses, len(handled), delays, frames


def keypad_presses():
    presses, seen, delays, frames = asyncio.run(_keypad())
    lost = presses - seen
    delays.sort()
    worst = delays[-1] if delays else float("inf")
    print("keypad: %d presses of 50 ms every 120 ms, MatrixKeypad (scan thread, 30 ms debounce), %d OLED frames "
          "written meanwhile:" % (presses, frames))
    print("  lost %d [target 0]%s; press-to-handled median %.1f ms, max %.1f ms [target < 50 ms]%s"
          % (lost, _mark(lost, 0), delays[len(delays) // 2] * 1e3 if delays else 0, worst * 1e3, _mark(worst, 0.050)))


# ---------------------------------------------------------------- start-up and footprint

def _installed_env(data):
    """The environment of an installed terminal: bytecode compiled once and kept (pip
    compiles at install; a shell with PYTHONDONTWRITEBYTECODE would recompile every kapos
    module at each start), here under the bench's temp dir, not in the source tree."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(data, "pycache")
    return env


def _cpu_seconds(pid):
    """User + system CPU time of a running process so far (/proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(board, data, launcher=("-m", "kapos.cli"), cpu=None):
    cmd = [sys.executable] + list(launcher) + ["run", "--headless", "--board", board,
                                               "--manage", "127.0.0.1:0", "--set", "storage.data_dir=%s" % data]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=data,
                            env=_installed_env(data))
    line = proc.stdout.readline().decode()  # printed once the idle screen is up
    elapsed = time.perf_counter() - started
    if cpu is not None:
        cpu.append(_cpu_seconds(proc.pid))
    if not line.startswith("kapos: management channel on"):
        proc.kill()
        raise RuntimeError("the terminal did not start: %s" % proc.communicate()[1].decode()[-300:])
    return proc, elapsed


def _stop(proc):
    proc.terminate()
    try:
        return proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def _rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


PI_MODULES = ("kapos.ports.linux.display", "kapos.ports.linux.keypad", "kapos.ports.linux.nfc",
              "kapos.ports.linux.printer", "kapos.ports.linux.magstripe", "kapos.ports.linux.buzzer",
              "kapos.ports.linux.tamper", "kapos.ports.shared.escpos_cache")


def cold_start(runs=7):
    times, cpu = [], []
    with tempfile.TemporaryDirectory(prefix="kapos-bench-start-") as data:
        _stop(_start("sim", data)[0])  # first start: python-escpos' cache, keys, .pyc files
        for _ in range(runs):
            proc, elapsed = _start("sim", data, cpu=cpu)
            _stop(proc)
            times.append(elapsed)
        proc, _ = _start("sim", data, ["-X", "importtime", "-m", "kapos.cli"])
        err = _stop(proc)[1].decode()
    median = statistics.median(times)
    print("cold start, exec -> idle screen (`kapos run --headless --board sim`, warm disk cache):")
    print("  median %.3f s, best %.3f s of %d [target < 0.2 s]%s; CPU time to the idle screen median %.2f s"
          " (load average %.1f on %d CPUs)" % (median, min(times), runs, _mark(median, 0.2), statistics.median(cpu),
                                              os.getloadavg()[0], os.cpu_count()))
    top = []  # (cumulative us, module) of the modules imported at the top level
    for line in err.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2]
            if len(name) - len(name.lstrip()) == 1:  # nested imports are indented further
                top.append((int(parts[1]), name.strip()))
    top.sort(reverse=True)
    print("  import breakdown (-X importtime, inflated by the tracing; top-level imports):")
    for us, name in top[:12]:
        print("    %7.1f ms  %s" % (us / 1000, name))
    with tempfile.TemporaryDirectory(prefix="kapos-bench-rss-") as data:
        preload = "import %s; import runpy, sys; sys.argv[0] = 'kapos'; runpy.run_module('kapos.cli', " \
                  "run_name='__main__')" % ", ".join(PI_MODULES)
        proc, _ = _start("sim", data, ["-c", preload])
        time.sleep(1.0)  # the start-up self-test and first frames
        rss = _rss_kb(proc.pid)
        probe = subprocess.run([sys.executable, "-c", "import sys; import %s; import kapos.wiring, "
                                "kapos.ports.sim.outputs; print('pygame' in sys.modules)" % ", ".join(PI_MODULES)],
                               capture_output=True, text=True)
        _stop(proc)
    print("  resident memory, idle, with a Pi board's driver modules (luma.oled, python-escpos, ...) loaded: "
          "%.1f MB; pygame imported: %s" % ((rss or 0) / 1024, probe.stdout.strip() or probe.stderr[-200:]))


# ---------------------------------------------------------------- settlement

def _fill_batch(journal, n):
    """n approved sales in the open batch, written behind the journal's back in one
    transaction (a bench, not a sale path), then its running totals counted once."""
    batch, now = journal.current_batch(), time.time()
    db = sqlite3.connect(journal.path)
    with db:
        db.executemany("INSERT INTO txns (ref, stan, mti, type, amount, total, transmission, batch, status, "
                       "created, updated) VALUES (?, ?, '0200', 'sale', 100, 100, '0000000000', ?, 'approved', ?, ?)",
                       ((i, "%06d" % (i % 999999 + 1), batch, now, now) for i in range(n)))
    db.close()
    journal.rebuild_totals()


def _one_sale(journal):
    """One more sale through the journal's own writes (what each entry costs to count)."""
    stan = journal.next_stan()
    txn = journal.begin(None, stan, "0200", "sale", 250, 0, 250, "0000000000", journal.current_batch())
    journal.record_result(txn, True, "00")


def settlement(sizes=(1000, 100000), repeats=5):
    from kapos.io.journal import Journal

    print("settlement: closing a batch and reading its totals (running totals row, journal on this PC's disk):")
    figures = []
    with tempfile.TemporaryDirectory(prefix="kapos-bench-settle-") as directory:
        for n in sizes:
            journal = Journal(os.path.join(directory, "j%d" % n))
            try:
                _fill_batch(journal, n)
                started = time.perf_counter()
                for _ in range(repeats):
                    _one_sale(journal)
                per_sale = (time.perf_counter() - started) / repeats
                started = time.perf_counter()
                number = journal.close_batch()
                totals = journal.batch_totals(number)
                settle = time.perf_counter() - started
                started = time.perf_counter()
                assert journal.recount_totals(number) == totals
                recount = time.perf_counter() - started
            finally:
                journal.close()
            figures.append(settle)
            print("  %7d entries: close + totals %6.2f ms (a full recount would take %7.1f ms); one sale's "
                  "begin + result %5.2f ms" % (n, settle * 1e3, recount * 1e3, per_sale * 1e3))
    ratio = figures[-1] / figures[0]
    print("  %dk / %dk = %.2fx [target < 2x]%s" % (sizes[-1] // 1000, sizes[0] // 1000, ratio, _mark(ratio, 2)))


def _mark(value, limit):
    return "  OK" if value <= limit else "  OVER"


def main():
    sale_lateness()
    keypad_presses()
    cold_start()
    settlement()


if __name__ == "__main__":
    main()
