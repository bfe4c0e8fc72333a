"""NFC on a worker thread: the loop keeps running while the chip is polled and a card is
read (the bus here blocks until the loop itself releases it: on the loop that would
never happen), results and errors come back to read_tap(), and the sim board's reader
moves its cards in and out of the field on the worker."""

import asyncio
import threading

import pytest

from kapos.drivers.mfrc522 import Mfrc522, Mfrc522NfcReader
from kapos.errors import CardReadError
from kapos.hal import SpiBus, Tap
from kapos.ports.shared.nfc_worker import NfcWorker
from kapos.ports.sim.mfrc522_emu import EmvTestCard, Mfrc522Emulator, ScriptedCard
from kapos.ports.sim.nfc_emulated import EmulatedMfrc522Reader

UID = bytes.fromhex("04a1b2c3")
TRACK2 = "4761739001010010=30122011143804400000"


class GatedBus(SpiBus):
    """The emulator behind a bus whose transfers wait for `gate` once it is closed."""

    def __init__(self, emu):
        self.emu = emu
        self.gate = threading.Event()
        self.gate.set()
        self.threads = set()
        self.waited_too_long = False

    def transfer(self, data):
        self.threads.add(threading.current_thread())
        if not self.gate.wait(5.0):
            self.waited_too_long = True
            self.gate.set()
        return self.emu.transfer(data)


def make_reader(card=None):
    emu = Mfrc522Emulator(realtime=True)
    bus = GatedBus(emu)
    chip = Mfrc522(bus, reset=emu.reset_pin, reset_wait=emu.sleep_us)
    reader = Mfrc522NfcReader(chip, poll_interval=0.01)
    if card is not None:
        emu.add_card(card)
    bus.threads.clear()  # construction (reset, configuration) is the caller's, once
    return emu, bus, NfcWorker(reader)


def test_card_read_runs_off_the_loop_while_the_loop_keeps_running():
    emu, bus, worker = make_reader(EmvTestCard(UID, track2=TRACK2))

    async def main():
        bus.gate.clear()  # the bus stalls until the loop runs the next line
        reading = asyncio.ensure_future(worker.read_tap())
        await asyncio.sleep(0.05)
        bus.gate.set()  # only reachable if the read is not blocking the loop
        return await asyncio.wait_for(reading, 10)

    try:
        tap = asyncio.run(main())
        polled_from = set(bus.threads)
    finally:
        worker.close()
    assert isinstance(tap, Tap) and tap.track2 == TRACK2
    assert not bus.waited_too_long
    assert polled_from and threading.main_thread() not in polled_from


def test_read_errors_reach_read_tap():
    emu, bus, worker = make_reader(ScriptedCard(UID, lambda data, nbits: (b"\x04", 3) if nbits == 7 else None))

    async def main():
        return await asyncio.wait_for(worker.read_tap(), 10)

    try:
        with pytest.raises(CardReadError):
            asyncio.run(main())
    finally:
        worker.close()


def test_sim_reader_puts_cards_in_the_field_on_the_worker():
    reader = EmulatedMfrc522Reader(poll_interval=0.01)
    added = []
    original = reader.emulator.add_card
    reader.emulator.add_card = lambda card, settle=True: (added.append(threading.current_thread()),
                                                          original(card, settle))[1]

    async def main():
        reader.inject(Tap(UID, track2=TRACK2))
        return await asyncio.wait_for(reader.read_tap(), 10)

    try:
        tap = asyncio.run(main())
    finally:
        reader.close()
    # the emulated EMV card (ports/sim/emv_cards.py) keeps PAN, expiry and service code
    assert tap.track2.split("=")[0] == TRACK2.split("=")[0]
    assert tap.track2.split("=")[1][:7] == TRACK2.split("=")[1][:7]
    assert added and threading.main_thread() not in added
    assert reader.emulator.cards == []  # taken away once read
