"""A scripted sale on the pico-w port's simulated buses, run inside MicroPython.

tests/micropython/test_mpy_pico_sale.py prepends CONFIG (host address, initial key, clock
stamps) and BOOT_TOTAL (the heap before imports; this build grows it on demand) and appends `await sale()` (runPythonAsync runs it at top level). The host link's streams go through node's `net` (kapos_bridge), because the
WebAssembly build has no sockets; on a Pico W they are asyncio.open_connection."""

import binascii
import gc
import os

import kapos_bridge
from kapos import card as cards
from kapos.core import events as E
from kapos.ports.micropython.devices import RecordingScreen, UartPrinter
from kapos.ports.micropython.hostlink import HostLink
from kapos.ports.micropython.keystate import FlashKeyState
from kapos.ports.micropython.terminal import Terminal


class BridgeReader:
    def __init__(self, conn):
        self.conn = conn

    async def read(self, n):
        return binascii.unhexlify(await self.conn.read(n))


class BridgeWriter:
    def __init__(self, conn):
        self.conn = conn

    def write(self, data):
        self.conn.write(binascii.hexlify(data).decode())

    async def drain(self):
        pass

    def close(self):
        self.conn.close()


async def bridge_open(host, port):
    conn = await kapos_bridge.connect(host, port)
    return BridgeReader(conn), BridgeWriter(conn)


class FakeUart:
    def __init__(self):
        self.sent = bytearray()

    def write(self, data):
        self.sent += data


def clock():
    return CONFIG["time"], CONFIG["date"], tuple(CONFIG["utc"]), tuple(CONFIG["local"])


def random_bytes(n):
    if hasattr(os, "urandom"):  # a Pico W has it (the RP2040's ring oscillator)
        return bytes(os.urandom(n))
    import random  # the WebAssembly build has not; PIN block fill in a test only
    return bytes(random.getrandbits(8) for _ in range(n))


async def sale():
    try:
        os.mkdir("/flash")
    except OSError:
        pass
    keys = FlashKeyState("/flash/dukpt.bin")
    keys.load_initial_key(binascii.unhexlify(CONFIG["ik"]), binascii.unhexlify(CONFIG["ik_id"]))
    link = HostLink(keys, CONFIG["terminal_id"], CONFIG["merchant_id"], "978",
                    (CONFIG["host"], CONFIG["port"]), bridge_open)
    uart = FakeUart()
    screen = RecordingScreen()
    term = Terminal(link, screen, UartPrinter(uart), clock, random_bytes)
    await term._run()
    gc.collect()
    start = gc.mem_alloc()
    peak = [start]

    def sample(*args):
        peak[0] = max(peak[0], gc.mem_alloc())

    real_execute = term._execute

    async def execute(command):  # every command of the sale, sampled before and after
        sample()
        await real_execute(command)
        sample()
    term._execute = execute
    track = cards.build_track1("4111111111111111", "TEST/VISA", CONFIG["expiry"], "101") + \
        cards.build_track2("4111111111111111", CONFIG["expiry"], "101")
    script = [("key", k) for k in "11260"] + [("key", "ENTER"), ("swipe", track), ("key", "1")] + \
        [("key", k) for k in "1234"] + [("key", "ENTER")]
    for kind, value in script:
        if kind == "key":
            await term.feed(term.event(E.KEY, key=value))
        else:
            await term.feed(term.event(E.SWIPE, raw=value))
    record = term.results[-1] if term.results else {}
    print("HEAP-START %d" % start)
    print("HEAP-PEAK %d" % peak[0])
    print("HEAP-GREW %d" % (gc.mem_free() + gc.mem_alloc() - BOOT_TOTAL))
    print("STATE %s" % term.state)
    print("OUTCOME %s %s" % (record.get("outcome"), record.get("code", "")))
    print("COUNTER %d" % keys.counter())
    print("SCREEN %s" % " | ".join(screen.lines))
    print("RECEIPT %s" % binascii.hexlify(bytes(uart.sent[:2])).decode())

