"""The timed sim board (boards/sim-pi.toml): buses that take real wire time. Ordering,
not timings: with the OLED's I2C bus held mid-frame and the NFC reader mid-exchange, the
loop still handles keys and a whole EMV sale; the panel catches up with the newest
screen once the bus is free."""

import asyncio
import contextlib
import tempfile
import threading

from kapos.app.scenario import Player, parse
from kapos.local_target import LocalTarget
from kapos.wiring import Assembly


@contextlib.asynccontextmanager
async def running_sim_pi():
    """The sim-pi board running in this loop (its own temp data dir, the in-process bank)."""
    with tempfile.TemporaryDirectory(prefix="kapos-test-") as data:
        assembly = Assembly("sim-pi", overrides=[("host.reply_delay", "0"), ("storage.data_dir", '"%s"' % data)])
        try:
            async with assembly.terminal.running():
                player = Player(LocalTarget(assembly.terminal, assembly.testcards), default_timeout=3.0)
                assembly.play = lambda text: player.play(parse(text))
                yield assembly
        finally:
            assembly.close()


class HeldWire:
    """Wraps a sim Wire: while `held`, sending blocks (a bus stuck mid-transfer)."""

    def __init__(self, wire):
        self.wire = wire
        self.free = threading.Event()
        self.blocked = threading.Event()
        self.timed_out = False
        self._send = wire.send
        wire.send = self.send

    def send(self, *args, **kwargs):
        if not self.free.is_set():
            self.blocked.set()
            if not self.free.wait(10.0):
                self.timed_out = True
        return self._send(*args, **kwargs)


def test_a_sale_runs_while_the_oled_bus_is_held():
    async def go():
        async with running_sim_pi() as r:
            display = r.platform.display
            held = HeldWire(display.wire)
            await r.play("key 1\n")
            assert await asyncio.to_thread(held.blocked.wait, 5.0)  # a frame is stuck on the bus
            await r.play("timeout 20\nkeys 780\nkey ENTER\ntap emv-tap\nexpect screen \"1 Debit\"\n"
                         "key 1\nkeys 1234\nkey ENTER\nexpect result approved\n")
            assert not held.free.is_set()  # everything above ran with the bus still held
            held.free.set()
            assert await asyncio.to_thread(display.flush, 10.0)
            assert not held.timed_out
            expected = display.device.image.tobytes()
            from kapos.ports.shared.oled_frames import render
            assert expected == render(r.terminal.screen).tobytes()  # the newest screen, not a stale one
            assert display._worker.frames_dropped > 0  # superseded frames were never sent

    asyncio.run(go())
