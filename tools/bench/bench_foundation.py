#!/usr/bin/env python3
"""Foundation figures: CPU per sale (core alone, and core + runtime + sim devices), idle CPU
on the simulated board, and start-up time to the idle screen.

Targets (issue 2): < 2 ms CPU per sale, < 1 % of a core idle, < 0.5 s to idle on a PC.
"""

import asyncio
import os
import subprocess
import sys
import time

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from kapos import card as cards  # noqa: E402
from kapos.app.testcards import expiry_months_ahead  # noqa: E402
from kapos.app.scenario import Player, parse  # noqa: E402
from kapos.core import events as E  # noqa: E402
from kapos.core import machine  # noqa: E402
from kapos.core.settings import Settings  # noqa: E402
from kapos.local_target import LocalTarget  # noqa: E402
from kapos.wiring import Assembly  # noqa: E402

EXPIRY = expiry_months_ahead(48)  # valid whatever the date the bench runs on
SWIPE = cards.build_track1("4111111111111111", "TEST/VISA", EXPIRY, "101") + \
    cards.build_track2("4111111111111111", EXPIRY, "101")
SALE_SCRIPT = """key 1
keys 1235
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


def core_sale_events(ref):
    ev = lambda kind, **d: E.Event(kind, time=1795000000.0, date="20261125", **d)  # noqa: E731
    keys = ["1", "1", "2", "3", "5", "ENTER"]
    out = [ev(E.KEY, key=k) for k in keys]
    out.append(ev(E.SWIPE, raw=SWIPE))
    out += [ev(E.KEY, key=k) for k in ["1", "1", "2", "3", "4", "ENTER"]]
    out.append(ev(E.PIN_SEALED, block=b"\0" * 16, ksn=None))
    out.append(ev(E.HOST_REPLY, ref=ref, reply={"approved": True, "code": "00", "auth_code": "1"}))
    out.append(ev(E.KEY, key="ENTER"))
    return out


def bench_core(n=2000):
    state, ctx, _ = machine.start(Settings(daily=0))
    started = time.process_time()
    for i in range(n):
        for event in core_sale_events(ctx.next_ref):
            state, ctx, _ = machine.step(state, ctx, event)
    per = (time.process_time() - started) / n
    assert state == "IDLE" and ctx.counters["approved"] == n
    return per


class CpuMeter:
    """Accumulates the CPU time spent inside wrapped methods (the terminal's own work,
    without the scenario player driving it)."""

    def __init__(self):
        self.total = 0.0

    def wrap(self, obj, name):
        original = getattr(obj, name)
        meter = self

        if asyncio.iscoroutinefunction(original):
            async def timed(*args, **kwargs):
                started = time.process_time()
                try:
                    return await original(*args, **kwargs)
                finally:
                    meter.total += time.process_time() - started
        else:
            def timed(*args, **kwargs):
                started = time.process_time()
                try:
                    return original(*args, **kwargs)
                finally:
                    meter.total += time.process_time() - started
        setattr(obj, name, timed)


async def _runtime_sales(n):
    assembly = Assembly("sim", overrides=[("host.reply_delay", "0"), ("limits.daily", "0"),
                                          ("monitor.rapid_txn.count", "1000000")], fresh_storage=True)
    meter, devices = CpuMeter(), CpuMeter()
    meter.wrap(assembly.terminal, "handle")
    meter.wrap(assembly.platform.printer, "print_receipt")
    devices.wrap(assembly.platform.display, "show")
    devices.wrap(assembly.platform.printer, "print_receipt")
    target = LocalTarget(assembly.terminal, assembly.testcards)
    async with assembly.terminal.running():
        player = Player(target)
        await player.play(parse(SALE_SCRIPT % 1))  # warm-up
        meter.total = devices.total = 0.0
        frames_before = assembly.platform.display.device.frame_count
        started = time.process_time()
        for i in range(n):
            await player.play(parse(SALE_SCRIPT % (i + 2)))
        per_with_driver = (time.process_time() - started) / n
        frames = (assembly.platform.display.device.frame_count - frames_before) / n
    assembly.close()
    return meter.total / n, devices.total / n, per_with_driver, frames


async def _idle_cpu(seconds):
    assembly = Assembly("sim", fresh_storage=True)
    async with assembly.terminal.running():
        started_cpu, started = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        used = time.process_time() - started_cpu
        wall = time.perf_counter() - started
    assembly.close()
    return used / wall


async def _startup_in_process():
    started = time.perf_counter()
    assembly = Assembly("sim", fresh_storage=True)
    async with assembly.terminal.running():
        elapsed = time.perf_counter() - started
        assert "Sale" in assembly.terminal.screen.text()
    assembly.close()
    return elapsed


def startup_cold(tmp="/tmp/kapos-bench-idle.scenario"):
    with open(tmp, "w") as f:
        f.write('expect screen "1 Sale"\n')
    best = None
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kapos.cli", "run", "--script", tmp], check=True,
                       capture_output=True)
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    return best


def main():
    core = bench_core()
    print("core only: %.3f ms CPU per sale (%d events)" % (core * 1000, len(core_sale_events(1))))
    n = 50
    per, in_devices, per_with_driver, frames = asyncio.run(_runtime_sales(n))
    print("core + runtime: %.2f ms CPU per sale over %d sales [target < 2 ms]" % ((per - in_devices) * 1000, n))
    print("  + sim device work (%.0f luma frames drawn, ESC/POS receipt): %.2f ms, total %.2f ms"
          % (frames, in_devices * 1000, per * 1000))
    print("  the same with the scenario player driving it: %.2f ms CPU per sale" % (per_with_driver * 1000))
    idle = asyncio.run(_idle_cpu(10.0))
    print("idle CPU over 10 s on the sim board: %.3f %% of a core [target < 1 %%]" % (idle * 100))
    print("start-up to idle screen, in process: %.3f s [target < 0.5 s]" % asyncio.run(_startup_in_process()))
    print("start-up to idle screen, cold `kapos run --script` process (import + run + exit): %.3f s"
          % startup_cold())


if __name__ == "__main__":
    main()
