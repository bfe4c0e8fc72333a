"""The sim board's NFC through the REAL MFRC522 driver and ISO 14443 stack, against the
register-level chip emulator (board option `[nfc] driver = "mfrc522-emulated"`).

A tap injected by a scenario or the console puts a virtual card in the emulated field
(a MIFARE Classic token, or an EMV card carrying the track 2 equivalent); the driver's
poller finds it, reads it over emulated SPI, and the card leaves the field once read.
"""

from kapos import hal
from kapos.drivers.mfrc522 import Mfrc522, Mfrc522NfcReader
from kapos.ports.sim.mfrc522_emu import EmvTestCard, MifareClassic1K, Mfrc522Emulator


class EmulatedMfrc522Reader(hal.NfcReader):
    def __init__(self, poll_interval=0.05, version=0x92, **options):
        self.emulator = Mfrc522Emulator(version=version, realtime=True)
        self.chip = Mfrc522(self.emulator, reset=self.emulator.reset_pin, reset_wait=self.emulator.sleep_us)
        self.reader = Mfrc522NfcReader(self.chip, poll_interval=poll_interval)
        self._in_field = None

    def inject(self, tap):
        """Present a card: `tap` says what the card is (uid, and track 2 for EMV)."""
        if isinstance(tap, Exception):
            raise tap
        if tap.track2:
            card = EmvTestCard(tap.uid, track2=tap.track2)
        else:  # a closed-loop token: its anti-clone block in block 4, if it has one
            card = MifareClassic1K(tap.uid, blocks={4: tap.token} if tap.token else None)
        self._leave_field()
        self.emulator.add_card(card)
        self._in_field = card

    def _leave_field(self):
        if self._in_field is not None:
            self.emulator.remove_card(self._in_field)
            self._in_field = None

    async def read_tap(self):
        try:
            return await self.reader.read_tap()
        finally:
            self._leave_field()  # the card is taken away once read (or failed)

    @property
    def spi_bytes(self):
        return self.emulator.stats

    def selftest(self):
        return self.reader.selftest()

    def close(self):
        self.reader.close()
