"""MFRC522 on the Pi's SPI bus: kapos' own driver (drivers/mfrc522.py) over spidev,
polled on a worker thread (ports/shared/nfc_worker.py).

Board keys: bus (for the pin check), spi_bus, spi_device, spi_hz, reset_pin,
poll_interval, token_key (hex, MIFARE key A of the token sector), token_block.
"""

import logging

from kapos import hal
from kapos.drivers.mfrc522 import Mfrc522, Mfrc522NfcReader
from kapos.errors import ConfigError
from kapos.ports.linux import gpio as gpio_mod
from kapos.ports.linux.spi import SpidevBus
from kapos.ports.shared.nfc_worker import NfcWorker

log = logging.getLogger("kapos.nfc")

KEYS = ("bus", "spi_bus", "spi_device", "spi_hz", "reset_pin", "poll_interval", "token_key",
        "token_block", "driver_name")


class Mfrc522Reader(hal.NfcReader):
    def __init__(self, spi_bus=0, spi_device=0, spi_hz=1000000, reset_pin=None, poll_interval=0.15,
                 token_key="FFFFFFFFFFFF", token_block=4, gpio_module=None, spi_handle=None, **options):
        unknown = [k for k in options if k not in KEYS]
        if unknown:
            raise ConfigError("[nfc] unknown key %r for the mfrc522 driver" % unknown[0])
        try:
            key = bytes.fromhex(token_key)
        except ValueError:
            key = b""
        if len(key) != 6:
            raise ConfigError("[nfc] token_key must be 12 hex digits (a MIFARE key)")
        self._bus = SpidevBus(spi_bus, spi_device, spi_hz, handle=spi_handle)
        reset = None
        if reset_pin is not None:
            gpio = gpio_mod.load(gpio_module)
            reset = gpio_mod.OutputPin(gpio, reset_pin, initial=1)
        chip = Mfrc522(self._bus, reset=reset)  # checks VersionReg: a clear error if absent
        if chip.warning:
            log.warning("NFC reader: %s", chip.warning)
        self.reader = Mfrc522NfcReader(chip, poll_interval=poll_interval, key=key, token_block=token_block)
        self.worker = NfcWorker(self.reader)  # SPI exchanges never run on the loop

    async def read_tap(self):
        return await self.worker.read_tap()

    def set_emv_session(self, session):
        self.worker.set_emv_session(session)

    def selftest(self):
        return self.worker.selftest()

    def close(self):
        self.worker.close()
