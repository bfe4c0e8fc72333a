"""A scripted sale and a settlement on the pico-w port's simulated buses, inside MicroPython.

tests/micropython/pico_run.py compiles this file with mpy-cross (as the firmware: source
compiled on the board would cost heap that a Pico W's main.py does not), writes CONFIG
(host address, initial key, clock stamps) to a JSON file and runs `configure(path)`,
`load()` (the firmware's imports), `await setup()`, one `await run_event(i)` per event of
EVENTS and `report()`, each as its own top-level run. The host link's streams go through
node's `net` (kapos_bridge), because the WebAssembly build has no sockets; on a Pico W
they are asyncio.open_connection.

Memory: this build's gc.collect() does nothing inside a run (it cannot scan the wasm
stack), but it makes the next top-level run start with a collection (otherwise the build
collects only when the heap fills). Each step ends with that request, so gc.mem_alloc()
read at the start of a run is the live heap, and at the end of it the live heap plus everything the step allocated
without any collection: the real peak of a step lies between the two. `mark(label)`
prints both for every step, then asks for the collection before the next run (a
gc.collect() inside a run is what makes the build collect at the next top-level run).
"""

import binascii
import os

CONFIG = {}


def configure(path):
    import json

    with open(path) as f:
        CONFIG.update(json.load(f))


def load():
    """The firmware's imports (a separate step, so the bench can count their heap)."""
    global cards, E, BatchTotals, RecordingScreen, UartPrinter, HostLink, FlashKeyState, Terminal
    from kapos import card as cards
    from kapos.core import events as E
    from kapos.ports.micropython.batch import BatchTotals
    from kapos.ports.micropython.devices import RecordingScreen, UartPrinter
    from kapos.ports.micropython.hostlink import HostLink
    from kapos.ports.micropython.keystate import FlashKeyState
    from kapos.ports.micropython.terminal import Terminal
    collect_before_next_run()


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
    import kapos_bridge

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



S = {}


def begin():
    import gc

    return gc.mem_alloc()


def collect_before_next_run():
    """gc.collect() does nothing inside a run in this build, but it makes the next top-level
    run start with a collection; without it the next run's gc.mem_alloc() counts this
    run's garbage too (collections then come only when the heap fills)."""
    import gc

    gc.collect()


def mark(label, live):
    """One HEAP line: the live heap at the step's start, the heap in use at its end. Printed
    at once, not kept: a list of marks would grow the heap being measured."""
    import gc

    print("HEAP %s %d %d" % (label, live, gc.mem_alloc()))
    collect_before_next_run()


def _track():
    return cards.build_track1("4111111111111111", "TEST/VISA", CONFIG["expiry"], "101") + \
        cards.build_track2("4111111111111111", CONFIG["expiry"], "101")


# the sale (amount 12.60, swipe, debit, PIN 1234), then ENTER (result done) and the
# settlement through the technician menu: MENU, PIN 0000, next page, 5
SALE = [("key", k) for k in "11260"] + [("key", "ENTER"), ("swipe", None), ("key", "1")] + \
    [("key", k) for k in "1234"] + [("key", "ENTER")]
SETTLE = [("key", "ENTER"), ("key", "MENU")] + [("key", k) for k in "0000"] + \
    [("key", "ENTER"), ("key", "MENU"), ("key", "5")]
EVENTS = SALE + SETTLE


async def setup():
    try:
        os.mkdir("/flash")
    except OSError:
        pass
    keys = FlashKeyState("/flash/dukpt.bin")
    keys.load_initial_key(binascii.unhexlify(CONFIG["ik"]), binascii.unhexlify(CONFIG["ik_id"]))
    link = HostLink(keys, CONFIG["terminal_id"], CONFIG["merchant_id"], "978",
                    (CONFIG["host"], CONFIG["port"]), bridge_open, BatchTotals("/flash/batch.json"))
    S["keys"], S["link"], S["uart"], S["screen"] = keys, link, FakeUart(), RecordingScreen()
    S["term"] = Terminal(link, S["screen"], UartPrinter(S["uart"]), clock, random_bytes)
    await S["term"]._run()
    collect_before_next_run()


async def run_event(i):
    live = begin()
    term = S["term"]
    kind, value = EVENTS[i]
    if kind == "key":
        await term.feed(term.event(E.KEY, key=value))
    else:
        await term.feed(term.event(E.SWIPE, raw=_track()))
    if i == len(SALE) - 1:
        S["record"] = term.results[-1] if term.results else {}
        S["sale_screen"] = list(S["screen"].lines)
    mark("sale" if i < len(SALE) else "settle", live)


def report():
    import micropython

    term = S["term"]
    print("MEMINFO-BEGIN")
    micropython.mem_info()
    print("MEMINFO-END")
    record = S.get("record") or {}
    print("STATE %s" % term.state)
    print("OUTCOME %s %s" % (record.get("outcome"), record.get("code", "")))
    print("COUNTER %d" % S["keys"].counter())
    print("SCREEN %s" % " | ".join(S.get("sale_screen") or []))
    print("SETTLE-SCREEN %s" % " | ".join(S["screen"].lines))
    print("BATCH %d" % S["link"].batch.number)
    print("RECEIPT %s" % binascii.hexlify(bytes(S["uart"].sent[:2])).decode())
