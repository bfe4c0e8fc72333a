"""The sim board's contact chip slot: the twin of ports/linux/pcsc.py's PcscContactReader.

A test card inserted here is an emulated EMV card with real keys and an ATC
(ports/sim/emv_cards.py, the same objects a tap uses, contact interface: PSE, second
GENERATE AC). `wait_insert()` returns the inserted card (its `transceive(apdu)` is what
the EMV kernel talks to), `wait_removal()` returns once it is out. A card pulled while
the kernel talks to it answers nothing: transceive raises CardReadError, as a real reader
does. Profile "mute" is a card whose chip answers 6F00 to everything (a chip failure,
for the fallback to the stripe)."""

import asyncio
import threading

from kapos import hal
from kapos.errors import CardReadError
from kapos.ports.sim import emv_cards

MUTE = "mute"


class _MuteChip:
    def respond(self, apdu):
        return b"\x6f\x00"  # no precise diagnosis: the chip is dead


class SimContactCard:
    """One insertion of a card; dead once removed (a new insertion is a new object)."""

    def __init__(self, emv_card):
        self.emv_card = emv_card
        self.protocol = "T=1"
        self.atr = bytes.fromhex("3B8980014B41504F532D454D56")
        self.inserted = True
        self.apdus = 0
        self._lock = threading.Lock()

    def transceive(self, apdu):
        with self._lock:  # the kernel runs on a worker thread; removal comes from the loop
            if not self.inserted:
                raise CardReadError("chip: the card was removed")
            self.apdus += 1
            return bytes(self.emv_card.respond(bytes(apdu)))

    def pull(self):
        with self._lock:
            self.inserted = False

    def close(self):
        pass


class SimChipSlot(hal.Device):
    name = "chip"

    def __init__(self, **options):
        self.card = None  # the SimContactCard in the slot, or None
        self.present = True  # False: behave as if the reader were unplugged
        self._changed = None
        self.insertions = 0

    def _event(self):
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def insert(self, track2, profile=None):
        """Put a card into the slot (from the loop's thread: scenario, console, web)."""
        # the card first: an unknown profile (ConfigError) leaves the slot as it was
        chip = _MuteChip() if profile == MUTE else emv_cards.card_for(track2, profile, contact=True)
        if self.card is not None:
            self.remove()
        self.card = SimContactCard(chip)
        self.insertions += 1
        self._event().set()
        return self.card

    def inject(self, value):
        """(track2, profile) inserts that card; None takes the card out."""
        if value is None:
            self.remove()
        else:
            self.insert(*value)

    def remove(self):
        if self.card is not None:
            self.card.pull()
            self.card = None
            self._event().set()

    async def wait_insert(self):
        while True:
            if not self.present:
                raise CardReadError("chip reader not found")
            if self.card is not None and self.card.inserted:
                return self.card
            event = self._event()
            event.clear()
            await event.wait()

    async def wait_removal(self, card=None):
        while self.card is not None and (card is None or self.card is card):
            event = self._event()
            event.clear()
            await event.wait()

    def selftest(self):
        return (True, "sim chip slot") if self.present else (False, "chip reader not found")

    def close(self):
        self.remove()
