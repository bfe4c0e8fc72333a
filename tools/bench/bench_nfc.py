#!/usr/bin/env python3
"""SPI traffic and modeled bus time per tap, measured on the MFRC522 emulator with the real
driver: a UID read (4/7-byte UIDs), an ISO-DEP APDU exchange, a full EMV contactless read.

Bus time is modeled as bits / SPI clock + a fixed per-transfer overhead (spidev ioctl),
at the board's default 1 MHz."""

from kapos.drivers.mfrc522 import Mfrc522NfcReader
from kapos.nfc import iso14443a
from kapos.nfc.isodep import IsoDep
from kapos.ports.sim.mfrc522_emu import EmvTestCard, IsoDepCard, MifareClassic1K, emulated_chip

SPI_HZ = 1000000
OVERHEAD_US = 20.0


def modeled_ms(stats):
    return (stats["bytes_out"] * 8 / SPI_HZ * 1e6 + stats["transfers"] * OVERHEAD_US) / 1000


def report(label, stats):
    print("%-36s %6d SPI bytes %5d transfers %5d irq polls  %6.2f ms bus time"
          % (label, stats["bytes_out"], stats["transfers"], stats["irq_polls"], modeled_ms(stats)))


def main():
    for uid in (bytes.fromhex("04A2B3C4"), bytes.fromhex("04A2B3C4D5E6F7")):
        emu, chip = emulated_chip([MifareClassic1K(uid)])
        emu.reset_stats()
        target = iso14443a.activate(chip)
        iso14443a.halt(chip)
        assert target.uid == uid
        report("UID read, %d-byte UID" % len(uid), emu.stats)

    echo = IsoDepCard(bytes.fromhex("08112233"), lambda apdu: bytes(40) + b"\x90\x00")
    emu, chip = emulated_chip([echo])
    target = iso14443a.activate(chip)
    dep = IsoDep(chip)
    dep.activate()
    emu.reset_stats()
    dep.exchange(bytes(20))
    report("ISO-DEP exchange, 20 B -> 42 B", emu.stats)

    emu, chip = emulated_chip([EmvTestCard(bytes.fromhex("08A1B2C3"))])
    reader = Mfrc522NfcReader(chip, field_off_between_polls=False)
    emu.reset_stats()
    tap = reader.poll_once()
    assert tap is not None and tap.track2
    report("EMV contactless read (PPSE..tag 57)", emu.stats)

    emu, chip = emulated_chip([])
    reader = Mfrc522NfcReader(chip, field_off_between_polls=False)
    emu.reset_stats()
    reader.poll_once()
    report("empty poll (no card)", emu.stats)


if __name__ == "__main__":
    main()
