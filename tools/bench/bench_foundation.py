#!/usr/bin/env python3
"""Foundation figures, measured where a user feels them:

- CPU per sale on the ISO 8583 path a real terminal takes: swipe, PIN sealed under DUKPT,
  a MACed 0200 over TCP to the reference host (its own process), the 0210, the journal
  (SQLite, synchronous=FULL) and the receipt; the terminal's process and the host's, each;
  the core alone and the in-process reference host beside it, for comparison only;
- idle CPU of `kapos run --headless` as a process, for every board that runs on this machine;
- cold start as a process: from exec to the terminal taking payments (idle screen drawn).

Targets (issue 2): < 2 ms CPU per sale in the core + runtime, < 1 % of a core idle,
< 0.5 s to idle on a PC. A figure that misses its target is printed, marked MISSED.

    .venv/bin/python tools/bench/bench_foundation.py [--sales 40] [--idle-seconds 5]
"""

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from kapos import card as cards  # noqa: E402
from kapos.app.scenario import Player, parse  # noqa: E402
from kapos.simdata.cards import expiry_months_ahead  # noqa: E402
from kapos.core import events as E  # noqa: E402
from kapos.core import machine  # noqa: E402
from kapos.core.settings import Settings  # noqa: E402
from kapos import harness  # noqa: E402
from kapos.local_target import LocalTarget  # noqa: E402
from kapos.wiring import Assembly  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPIRY = expiry_months_ahead(48)  # valid whatever the date the bench runs on
SWIPE = cards.build_track1("4111111111111111", "TEST/VISA", EXPIRY, "101") + \
    cards.build_track2("4111111111111111", EXPIRY, "101")
SALE_SCRIPT = """key 1
keys 100
key ENTER
swipe visa-debit
key 1
keys 1234
key ENTER
expect result approved
expect receipts %d
key ENTER
expect state IDLE
"""
NO_LIMITS = [("limits.daily", "0"), ("monitor.rapid_txn.count", "1000000")]


def _mark(value, target):
    return "" if value < target else "  MISSED"


# ---------------------------------------------------------------- CPU of a process

def process_cpu(pid):
    """CPU seconds process `pid` has used so far, every thread, in nanoseconds' resolution
    (Linux /proc/PID/task/*/schedstat; /proc/PID/stat's 10 ms ticks are too coarse for an
    idle terminal), or None where there is no /proc."""
    total = None
    try:
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, task)) as f:
                total = (total or 0) + int(f.read().split()[0]) / 1e9
    except OSError:
        return total
    return total


class CpuMeter:
    """CPU time spent inside wrapped plain methods (the core + runtime step, device drawing)."""

    def __init__(self):
        self.total = 0.0

    def wrap(self, obj, name):
        original = getattr(obj, name)

        def timed(*args, **kwargs):
            started = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.total += time.process_time() - started
        setattr(obj, name, timed)


# ---------------------------------------------------------------- per sale

def core_sale_events(ref):
    ev = lambda kind, **d: E.Event(kind, time=1795000000.0, date="20261125", **d)  # noqa: E731
    out = [ev(E.KEY, key=k) for k in ["1", "1", "0", "0", "ENTER"]]
    out.append(ev(E.SWIPE, raw=SWIPE))
    out += [ev(E.KEY, key=k) for k in ["1", "1", "2", "3", "4", "ENTER"]]
    out.append(ev(E.PIN_SEALED, block=b"\0" * 16, ksn=None))
    out.append(ev(E.HOST_REPLY, ref=ref, reply={"approved": True, "code": "00", "auth_code": "1"}))
    out.append(ev(E.KEY, key="ENTER"))
    return out


def bench_core(n=2000):
    state, ctx, _ = machine.start(Settings(daily=0))
    started = time.process_time()
    for _ in range(n):
        for event in core_sale_events(ctx.next_ref):
            state, ctx, _ = machine.step(state, ctx, event)
    assert state == "IDLE" and ctx.counters["approved"] == n
    return (time.process_time() - started) / n


def start_host(directory):
    """The reference host as its own process, on a free loopback port: (process, port)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kapos_tools.host", "--listen", "127.0.0.1:0", "--db",
         os.path.join(directory, "host.db"), "--quiet", "--auto-enroll", "--daily-limit", "100000000"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=directory)
    line = proc.stdout.readline().decode()
    if not line.startswith("kapos host listening on"):
        proc.kill()
        raise RuntimeError("the host did not start: %r" % line)
    return proc, int(line.split()[4].rsplit(":", 1)[1])


async def _sales(overrides, n, host_pid=None):
    """n sales on the sim board driven by the scenario player: a dict of CPU seconds per sale
    (terminal process, its core + runtime step, its drawing, the host process or None) and
    the wall time per sale."""
    with tempfile.TemporaryDirectory(prefix="kapos-bench-") as data:
        assembly = Assembly("sim", overrides=NO_LIMITS + [("storage.data_dir", '"%s"' % data)] + overrides)
        target = LocalTarget(assembly.terminal, assembly.testcards)
        step, drawing = CpuMeter(), CpuMeter()
        step.wrap(assembly.terminal, "handle")
        drawing.wrap(assembly.platform.get("display"), "show")
        try:
            async with harness.started(assembly):  # the harness on this Assembly
                player = Player(target, default_timeout=15.0)
                await player.play(parse(SALE_SCRIPT.replace("expect receipts %d\n", "")))  # warm-up: sign-on
                await player.play(parse('timeout 15\nexpect receipt "%s"\n' % "TOTAL"))
                per_sale_receipts = len(target.receipt_texts)  # one copy, or merchant + cardholder
                host_before = process_cpu(host_pid) if host_pid else None
                step.total = drawing.total = 0.0
                cpu, wall = time.process_time(), time.perf_counter()
                for i in range(n):
                    await player.play(parse(SALE_SCRIPT % ((i + 2) * per_sale_receipts)))
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                host = (process_cpu(host_pid) - host_before) / n if host_before is not None else None
        finally:
            assembly.close()
    return {"terminal": cpu / n, "step": (step.total - drawing.total) / n, "drawing": drawing.total / n,
            "host": host, "wall": wall / n}


def per_sale(n):
    print("per sale (%d sales of 1.00 with PIN, receipt printed, scenario player driving):" % n)
    with tempfile.TemporaryDirectory(prefix="kapos-bench-host-") as directory:
        host, port = start_host(directory)
        try:
            iso = asyncio.run(_sales(
                [("host.mode", '"iso8583"'), ("host.address", '"127.0.0.1:%d"' % port)], n, host.pid))
        finally:
            host.terminate()
            host.wait(10)
    print("  ISO 8583 path (DUKPT PIN + MAC, TCP to the reference host, journal synchronous=FULL):")
    print("    terminal process %6.2f ms CPU per sale, of which:" % (iso["terminal"] * 1000))
    print("      core + runtime step   %6.2f ms [target < 2 ms]%s" % (iso["step"] * 1000, _mark(iso["step"], 0.002)))
    print("      drawing the screens   %6.2f ms (luma frames, as the real OLED driver draws them)"
          % (iso["drawing"] * 1000))
    print("      the rest              %6.2f ms (host link, DUKPT, journal, receipt, asyncio, the scenario player)"
          % ((iso["terminal"] - iso["step"] - iso["drawing"]) * 1000))
    if iso["host"] is not None:
        print("    host process     %6.2f ms CPU per sale (ledger synchronous=FULL)" % (iso["host"] * 1000))
    print("    wall time        %6.1f ms per sale" % (iso["wall"] * 1000))
    bank = asyncio.run(_sales([("host.reply_delay", "0")], n))
    print("  for comparison, the in-process reference host (loopback, no TCP; scripted runs): %.2f ms CPU per sale"
          % (bank["terminal"] * 1000))
    core = bench_core()
    print("  the core alone (%d events): %.3f ms CPU per sale%s"
          % (len(core_sale_events(1)), core * 1000, _mark(core, 0.002)))


# ---------------------------------------------------------------- a terminal process

def _boards():
    folder = os.path.join(ROOT, "boards")
    for name in sorted(f[:-len(".toml")] for f in os.listdir(folder) if f.endswith(".toml")):
        with open(os.path.join(folder, name + ".toml"), "rb") as f:
            yield name, tomllib.load(f)["board"]


def start_terminal(board, data_dir):
    """`kapos run --headless` as a newcomer or a service starts it; returns (process, seconds
    from exec until it takes payments) or (None, the reason it did not start)."""
    cmd = [sys.executable, "-m", "kapos.cli", "run", "--headless", "--board", board, "--manage", "127.0.0.1:0",
           "--set", "storage.data_dir=%s" % data_dir]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=data_dir)
    line = proc.stdout.readline().decode()  # printed once the idle screen is up and the channel listens
    elapsed = time.perf_counter() - started
    if not line.startswith("kapos: management channel on"):
        proc.kill()
        err = proc.communicate()[1].decode().strip().splitlines()
        return None, (err[-1] if err else "exited %s" % proc.returncode)
    return proc, elapsed


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def idle_per_board(seconds):
    print("idle CPU of `kapos run --headless` as a process, over %.0f s once it is idle [target < 1 %%]:" % seconds)
    for name, board in _boards():
        if board.get("runtime", "cpython") != "cpython":
            print("  %-11s not measured here: runs under %s" % (name, board["runtime"]))
            continue
        with tempfile.TemporaryDirectory(prefix="kapos-bench-idle-") as data:
            proc, started = start_terminal(name, data)
            if proc is None:
                print("  %-11s not measured here: %s" % (name, started))
                continue
            try:
                time.sleep(0.5)  # the start-up self-test and first frames are not idling
                before, wall = process_cpu(proc.pid), time.perf_counter()
                if before is None:
                    print("  %-11s not measured: no /proc on this system" % name)
                    continue
                time.sleep(seconds)
                share = (process_cpu(proc.pid) - before) / (time.perf_counter() - wall)
            finally:
                stop(proc)
        print("  %-11s %.4f %% of a core%s" % (name, share * 100, _mark(share, 0.01)))


def cold_start(runs=5):
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="kapos-bench-start-") as data:
            proc, elapsed = start_terminal("sim", data)
            if proc is None:
                raise RuntimeError("the terminal did not start: %s" % elapsed)
            stop(proc)
            times.append(elapsed)
    best, median = min(times), statistics.median(times)
    print("cold start as a process (exec -> imports -> board, keys, journal -> idle screen, "
          "`kapos run --headless`, sim):")
    print("  median %.3f s, best %.3f s of %d [target < 0.5 s]%s" % (median, best, runs, _mark(median, 0.5)))


def main(argv=()):
    """Called with no arguments by tools/bench/run.py (`make bench`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=40)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    args = parser.parse_args(list(argv))
    logging.getLogger().setLevel(logging.ERROR)  # the public-test-key warning of every terminal
    per_sale(args.sales)
    idle_per_board(args.idle_seconds)
    cold_start()


if __name__ == "__main__":
    main(sys.argv[1:])
