"""The sim board's NFC through the REAL MFRC522 driver and ISO 14443 stack, against the
register-level chip emulator (board option `[nfc] driver = "mfrc522-emulated"`).

A tap injected by a scenario or the console puts a virtual card in the emulated field
(a MIFARE Classic token, or an EMV card with real keys: ports/sim/emv_cards.py); the driver's
poller finds it, reads it over emulated SPI, and the card leaves the field once read.
Polling runs on the same worker thread as on a Pi (ports/shared/nfc_worker.py); cards
enter and leave the field on that thread, between poll cycles.

Board keys: poll_interval, version or chip (a personality of ports/sim/chips.py),
spi_hz, wire_time (true: every SPI transfer takes its real time at spi_hz).
"""

import threading

from kapos import hal
from kapos.drivers.mfrc522 import Mfrc522, Mfrc522NfcReader
from kapos.ports.shared.nfc_worker import NfcWorker
from kapos.ports.sim import emv_cards
from kapos.ports.sim.cards.emv_app import EmvContactlessCard
from kapos.ports.sim.mfrc522_emu import MifareClassic1K, Mfrc522Emulator
from kapos.ports.sim.wire import Wire


class _FieldWorker(NfcWorker):
    """The worker, with the simulated hand: cards put in and taken out between cycles."""

    def __init__(self, reader, owner):
        NfcWorker.__init__(self, reader, name="sim-nfc")
        self.owner = owner

    def _cycle(self):
        with self._lock:
            self.cycles += 1
            self.owner._apply_pending()
            dropped = self.reader.dropped
            try:
                tap = self.reader.poll_with_field(self._sleep)
            except Exception:
                self.owner._leave_field()  # the card is taken away once read (or failed)
                raise
            if tap is not None or self.reader.dropped != dropped:  # read, or its sale ended
                self.owner._leave_field()
            return tap


class EmulatedMfrc522Reader(hal.NfcReader):
    def __init__(self, poll_interval=0.05, version=None, chip=None, spi_hz=1000000, wire_time=False, **options):
        wire = Wire.spi(spi_hz) if wire_time else None
        self.emulator = Mfrc522Emulator(version=version, chip=chip, spi_hz=spi_hz, realtime=True, wire=wire)
        self.chip = Mfrc522(self.emulator, reset=self.emulator.reset_pin, reset_wait=self.emulator.sleep_us)
        self.reader = Mfrc522NfcReader(self.chip, poll_interval=poll_interval)
        self.worker = _FieldWorker(self.reader, self)
        self._in_field = None
        self._pending = []
        self._pending_lock = threading.Lock()

    def inject(self, tap):
        """Present a card: `tap` says what the card is (uid, and track 2 for EMV)."""
        if isinstance(tap, Exception):
            raise tap
        if tap.track2:  # a chip card with real keys and an ATC (ports/sim/emv_cards.py)
            card = EmvContactlessCard(tap.uid, emv_cards.card_for(tap.track2, tap.profile))
        else:  # a closed-loop token: its anti-clone block in block 4, if it has one
            card = MifareClassic1K(tap.uid, blocks={4: tap.token} if tap.token else None)
        with self._pending_lock:
            self._pending.append(card)

    def _apply_pending(self):
        with self._pending_lock:
            cards, self._pending = self._pending, []
        for card in cards:
            self._leave_field()
            self.reader.card_left()  # a new presentation: the hand took the last card away
            self.emulator.add_card(card)
            self._in_field = card

    def _leave_field(self):
        if self._in_field is not None:
            self.emulator.remove_card(self._in_field)
            self._in_field = None

    async def read_tap(self):
        return await self.worker.read_tap()

    def set_emv_session(self, session):
        self.worker.set_emv_session(session)

    @property
    def spi_bytes(self):
        return self.emulator.stats

    def selftest(self):
        return self.worker.selftest()

    def close(self):
        self.worker.close()
