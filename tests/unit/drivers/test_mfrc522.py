"""The MFRC522 driver against the register-level emulator (bytes on the bus, no mocks of
the driver), the Linux spidev bus wrapper, and the polling NfcReader."""

import asyncio
import sys
import types

import pytest

from kapos.drivers import mfrc522 as drv
from kapos.drivers.mfrc522 import Mfrc522, Mfrc522NfcReader
from kapos.errors import CardReadError, HardwareError, LocalProtocolError
from kapos.hal import Pin, SpiBus, Tap
from kapos.nfc import iso14443a
from kapos.nfc.crc import append_crc_a, crc_a_bytes
from kapos.nfc.isodep import IsoDep
from kapos.ports.linux.spi import SpidevBus
from kapos.ports.sim.mfrc522_emu import (
    PARITY_ERR, EmvTestCard, IsoDepCard, MifareClassic1K, Mfrc522Emulator, ScriptedCard,
    VirtualCard, emulated_chip)

UID = bytes.fromhex("04a1b2c3")
TRACK2 = "4761739001010010=30122011143804400000"


class Recorder(SpiBus):
    """Passes transfers to the emulator and keeps them."""

    def __init__(self, emu):
        self.emu = emu
        self.log = []

    def transfer(self, data):
        data = bytes(data)
        out = self.emu.transfer(data)
        self.log.append((data, out))
        return out


class ConstantBus(SpiBus):
    def __init__(self, value):
        self.value = value

    def transfer(self, data):
        return bytes([self.value] * len(data))


# ---- chip identity ----

@pytest.mark.parametrize("version, name", [
    (0x91, "MFRC522 v1.0"), (0x92, "MFRC522 v2.0"), (0x88, "FM17522 (clone)"), (0xB2, "FM17522 v1 (clone)")])
def test_version_check_accepts_genuine_and_clones(version, name):
    emu, chip = emulated_chip(version=version)
    assert chip.version == version and chip.chip == name
    clone = version not in (0x91, 0x92)
    assert chip.selftest() == (True, "%s (VersionReg 0x%02X)%s" % (name, version, ", compatible" if clone else ""))


@pytest.mark.parametrize("bus, text", [
    (ConstantBus(0x00), "VersionReg 0x00: no chip answers"),
    (ConstantBus(0xFF), "VersionReg 0xFF: no chip answers"),
    (Mfrc522Emulator(version=0x37), "VersionReg 0x37: unknown chip"),
])
def test_absent_or_unknown_chip_is_a_clear_hardware_error(bus, text):
    with pytest.raises(HardwareError) as exc:
        Mfrc522(bus)
    assert str(exc.value).startswith("MFRC522 not found") and text in str(exc.value)


def test_spi_address_byte_format():
    # Datasheet 8.1.2: read address byte 1 RRRRRR 0 = 0x80 | reg << 1; write 0 RRRRRR 0.
    emu = Mfrc522Emulator()
    rec = Recorder(emu)
    Mfrc522(rec)
    sent = [d for d, _ in rec.log]
    assert sent[0] == bytes((0x01 << 1, 0x0F))  # CommandReg <- SoftReset
    assert sent[1] == bytes((0x80 | 0x01 << 1, 0))  # read CommandReg (PowerDown bit)
    version = [d for d in sent if d[0] == 0x80 | 0x37 << 1][0]
    assert version == b"\xee\x00"
    assert all(d[0] & 1 == 0 for d in sent)


def test_fifo_reads_are_one_transfer_of_address_bytes():
    emu = Mfrc522Emulator()
    rec = Recorder(emu)
    chip = Mfrc522(rec)
    emu.add_card(ScriptedCard(UID, lambda f, n: bytes(range(40)) if n == 16 else None))
    rec.log.clear()
    assert chip.transceive(b"\x00\x00", 5, tx_crc=False, rx_crc=False) == bytes(range(40))
    fifo_read = [d for d, _ in rec.log if d[0] == 0x80 | 0x09 << 1]
    assert fifo_read == [bytes([0x92] * 40 + [0])]  # 40 address bytes then 0x00: all 40 bytes at once


class PinLog(Pin):
    def __init__(self, target):
        self.target = target
        self.levels = []

    def value(self, level=None):
        if level is not None:
            self.levels.append(level)
        return self.target.value(level)


def test_hard_reset_through_the_pin():
    emu = Mfrc522Emulator()
    emu.regs[0x24] = 0x55  # ModWidthReg, changed before the driver starts
    pin = PinLog(emu.reset_pin)
    Mfrc522(emu, reset=pin, reset_wait=emu.sleep_us)
    assert pin.levels == [0, 1]
    assert emu.regs[0x24] == 0x26  # back to its reset value


def test_configuration_after_init():
    emu, chip = emulated_chip()
    assert emu.regs[0x15] == 0x40  # TxASKReg: 100 % ASK
    assert emu.regs[0x11] & 0x03 == 0x01  # ModeReg CRCPreset 0x6363
    assert emu.regs[0x0E] & 0x80 == 0  # CollReg ValuesAfterColl = 0
    assert emu.field and chip.antenna


# ---- timer ----

@pytest.mark.parametrize("timeout_ms", [0.3, 1, 5, 25, 100, 4953])
def test_timer_registers_from_the_timeout(timeout_ms):
    emu, chip = emulated_chip()
    start = emu.now_us
    assert chip.transceive(b"\x26", timeout_ms, tx_crc=False, rx_crc=False) is None  # no card
    t_mode, prescaler_lo = emu.regs[0x2A], emu.regs[0x2B]
    assert t_mode & 0x80  # TAuto: starts at the end of transmission
    prescaler = ((t_mode & 0x0F) << 8) | prescaler_lo
    reload = (emu.regs[0x2C] << 8) | emu.regs[0x2D]
    period_ms = (2 * prescaler + 1) * (reload + 1) / 13560.0
    assert timeout_ms <= period_ms < timeout_ms + (2 * prescaler + 1) / 13560.0 + 1e-9
    elapsed_ms = (emu.now_us - start) / 1000
    assert timeout_ms < elapsed_ms < timeout_ms + 1  # ended by TimerIRq, in virtual time


def test_timer_registers_are_not_rewritten_for_the_same_timeout():
    emu = Mfrc522Emulator()
    rec = Recorder(emu)
    chip = Mfrc522(rec)
    chip.transceive(b"\x26", 2, tx_crc=False)
    rec.log.clear()
    chip.transceive(b"\x26", 2, tx_crc=False)
    assert not [d for d, _ in rec.log if d[0] in (0x2A << 1, 0x2B << 1, 0x2C << 1, 0x2D << 1)]


class StuckIrq(SpiBus):
    """A chip whose ComIrqReg never shows an interrupt (dead oscillator, broken MISO bit)."""

    def __init__(self, emu):
        self.emu = emu
        self.stuck = False
        self.irq_reads = 0

    def transfer(self, data):
        out = bytearray(self.emu.transfer(data))
        if self.stuck and data[0] == 0x80 | 0x04 << 1:
            self.irq_reads += 1
            out[1] = 0
        return bytes(out)


def test_polling_is_bounded_by_the_timer_and_the_driver_recovers():
    emu = Mfrc522Emulator()
    bus = StuckIrq(emu)
    chip = Mfrc522(bus)
    bus.stuck = True
    with pytest.raises(HardwareError, match="no interrupt"):
        chip.transceive(b"\x26", 2, tx_crc=False)
    assert bus.irq_reads == drv.MIN_POLLS + int(3 * drv.POLLS_PER_MS)
    bus.stuck = False
    emu.add_card(VirtualCard(UID))
    assert iso14443a.activate(chip).uid == UID


# ---- frames ----

def test_full_64_byte_fifo_both_ways():
    emu, chip = emulated_chip()
    seen = []

    def responder(frame, nbits):
        seen.append(frame)
        return append_crc_a(bytes(range(62)))

    emu.add_card(ScriptedCard(UID, responder))
    assert chip.transceive(bytes(range(62)), 5) == bytes(range(62))  # 64 with CRC, not cut at 16
    assert seen[-1] == append_crc_a(bytes(range(62)))
    with pytest.raises(LocalProtocolError, match="64-byte FIFO"):
        chip.transceive(bytes(63), 5)


def test_answer_longer_than_the_fifo():
    emu, chip = emulated_chip()
    emu.add_card(ScriptedCard(UID, lambda f, n: bytes(70)))
    with pytest.raises(CardReadError, match="longer than the 64-byte FIFO"):
        chip.transceive(b"\x00", 5, rx_crc=False)


def test_crc_error_parity_error_and_collision_are_card_read_errors():
    emu, chip = emulated_chip()
    emu.add_card(ScriptedCard(UID, lambda f, n: b"\x01\x02\x03\x04"))
    with pytest.raises(CardReadError, match="CRC_A"):
        chip.transceive(b"\x00", 5)
    emu.inject_rx_error(PARITY_ERR)
    with pytest.raises(CardReadError, match="transmission error"):
        chip.transceive(b"\x00", 5, rx_crc=False)
    emu.add_card(ScriptedCard(UID, lambda f, n: b"\x01\x02\x03\x05"))
    with pytest.raises(CardReadError, match="collision"):
        chip.transceive(b"\x00", 5, rx_crc=False)


def test_bit_frames_report_last_bits_and_collision_position():
    emu, chip = emulated_chip()
    emu.add_card(ScriptedCard(UID, lambda f, n: (b"\x0a", 4)))
    assert chip.transceive_bits(b"\x26", 7, 0, 1) == (b"\x0a", 4, 0)
    emu.remove_card()
    emu.add_card(ScriptedCard(UID, lambda f, n: b"\x10\xff"))
    emu.add_card(ScriptedCard(UID, lambda f, n: b"\x00\xff"))
    data, last, coll = chip.transceive_bits(b"\x93\x20", 0, 0, 1)
    assert coll == 5 and data == b"\x00\x00"  # bits from the collision on read as 0
    data, last, coll = chip.transceive_bits(b"\x93\x21\x00", 1, 1, 1)  # RxAlign 1 shifts positions
    assert coll == 6


def test_crc_coprocessor_matches_the_software_crc():
    emu, chip = emulated_chip()
    for data in (b"\x00\x00", b"\x12\x34", b"\x50\x00", bytes(range(64))):
        assert chip.calc_crc(data) == crc_a_bytes(data)


def test_antenna_switches_the_field_and_cards_lose_state():
    emu, chip = emulated_chip()
    card = emu.add_card(VirtualCard(UID))
    iso14443a.activate(chip)
    iso14443a.halt(chip)
    assert card.state == "halt"
    chip.antenna_off()
    assert not emu.field and card.state == "off"
    t = emu.now_us
    chip.antenna_on()
    assert emu.field and emu.now_us - t >= 5000  # the ISO 14443-3 power-up guard
    assert card.state == "idle"


def test_delay_uses_the_chip_timer_or_the_sleep_hook():
    emu, chip = emulated_chip()
    t = emu.now_us
    chip.delay_us(2000)
    assert 2000 <= emu.now_us - t < 3500
    emu2 = Mfrc522Emulator()
    chip2 = Mfrc522(emu2, sleep_us=emu2.sleep_us)
    n = emu2.stats["transfers"]
    chip2.delay_us(2000)
    assert emu2.stats["transfers"] == n


def test_mfauthent_argument_checks():
    emu, chip = emulated_chip()
    with pytest.raises(LocalProtocolError):
        chip.mf_authenticate(0x60, 4, b"\xff" * 5, UID, 5)


# ---- Linux spidev bus ----

class FakeSpiDev:
    instances = []

    def __init__(self):
        self.opened = None
        self.closed = False
        FakeSpiDev.instances.append(self)

    def open(self, bus, device):
        self.opened = (bus, device)

    def xfer2(self, values):
        return [0x5A] * len(values)

    def close(self):
        self.closed = True


def test_spidev_is_imported_lazily():
    import importlib

    sys.modules.pop("spidev", None)
    importlib.reload(sys.modules["kapos.ports.linux.spi"])
    assert "spidev" not in sys.modules


def test_missing_device_node_says_how_to_enable_spi(monkeypatch):
    monkeypatch.setattr("os.path.exists", lambda p: False)
    with pytest.raises(HardwareError) as exc:
        SpidevBus(0, 1)
    assert "/dev/spidev0.1 is missing" in str(exc.value)
    assert "dtparam=spi=on in /boot/firmware/config.txt" in str(exc.value)


def test_missing_spidev_module(monkeypatch):
    monkeypatch.setattr("os.path.exists", lambda p: True)
    monkeypatch.setitem(sys.modules, "spidev", None)
    with pytest.raises(HardwareError, match="spidev module is missing"):
        SpidevBus(0, 0)


def test_opens_configures_and_closes_spidev(monkeypatch):
    monkeypatch.setattr("os.path.exists", lambda p: True)
    monkeypatch.setitem(sys.modules, "spidev", types.SimpleNamespace(SpiDev=FakeSpiDev))
    bus = SpidevBus(1, 2, speed_hz=4000000, mode=0)
    dev = FakeSpiDev.instances[-1]
    assert dev.opened == (1, 2) and dev.max_speed_hz == 4000000 and dev.mode == 0
    assert bus.transfer(b"\x01\x02") == b"\x5a\x5a"
    bus.close()
    bus.close()
    assert dev.closed
    with pytest.raises(HardwareError, match="closed"):
        bus.transfer(b"\x00")


def test_permission_and_io_errors(monkeypatch):
    class Denied(FakeSpiDev):
        def open(self, bus, device):
            raise PermissionError(13, "Permission denied")

    class Broken(FakeSpiDev):
        def xfer2(self, values):
            raise OSError(5, "Input/output error")

    monkeypatch.setattr("os.path.exists", lambda p: True)
    monkeypatch.setitem(sys.modules, "spidev", types.SimpleNamespace(SpiDev=Denied))
    with pytest.raises(HardwareError, match="'spi' group"):
        SpidevBus()
    bus = SpidevBus(handle=Broken())
    with pytest.raises(HardwareError, match="SPI transfer on /dev/spidev0.0 failed"):
        bus.transfer(b"\x00\x00")


def test_driver_through_spidev_bus_on_the_emulator():
    emu = Mfrc522Emulator()
    chip = Mfrc522(SpidevBus(0, 0, speed_hz=4000000, handle=emu), reset=emu.reset_pin, reset_wait=emu.sleep_us)
    emu.add_card(MifareClassic1K(UID))
    assert iso14443a.activate(chip).uid == UID


# ---- the polling reader ----

def reader_with(card, realtime=False, **options):
    emu, chip = emulated_chip(realtime=realtime)
    if card is not None:
        emu.add_card(card)
    return emu, chip, Mfrc522NfcReader(chip, **options)


def test_poll_once_taps_by_card_type():
    emu, chip, reader = reader_with(MifareClassic1K(UID, blocks={4: b"TOKEN-0000000042"}))
    tap = reader.poll_once()
    assert isinstance(tap, Tap) and tap.uid == UID and tap.token == b"TOKEN-0000000042" and tap.track2 is None

    emu, chip, reader = reader_with(EmvTestCard(bytes.fromhex("08123456"), track2=TRACK2))
    tap = reader.poll_once()
    assert tap.track2 == TRACK2 and tap.token is None

    emu, chip, reader = reader_with(VirtualCard(bytes.fromhex("04112233445566"), sak=0x00))  # e.g. Ultralight
    tap = reader.poll_once()
    assert tap.uid == bytes.fromhex("04112233445566") and tap.track2 is None and tap.token is None

    key = bytes.fromhex("a0a1a2a3a4a5")
    emu, chip, reader = reader_with(MifareClassic1K(UID, key_a={1: key}))
    assert reader.poll_once().token is None  # not our key: the UID alone
    emu, chip, reader = reader_with(MifareClassic1K(UID, key_a={1: key}, blocks={4: b"x" * 16}), key=key)
    assert reader.poll_once().token == b"x" * 16


def test_no_card_is_none_and_a_card_is_reported_once_per_tap():
    emu, chip, reader = reader_with(None)
    assert reader.poll_once() is None
    card = emu.add_card(EmvTestCard(bytes.fromhex("08123456")))
    assert reader.poll_once().track2 == TRACK2
    assert reader.poll_once() is None  # halted (DESELECT): silent
    chip.antenna_off()  # field off between polls: the card wakes up again ...
    assert reader.poll_once() is None  # ... and is still the same tap
    emu.remove_card(card)
    assert reader.poll_once() is None  # gone: the tap has ended
    emu.add_card(card)
    assert reader.poll_once().track2 == TRACK2


def test_read_error_is_raised_once_per_tap():
    def responder(frame, nbits):
        return b"\x04\x00" if nbits == 7 else b"\x01\x02\x03\x04\xff"  # bad BCC

    emu, chip, reader = reader_with(ScriptedCard(UID, responder))
    with pytest.raises(CardReadError):
        reader.poll_once()
    assert reader.poll_once() is None


def test_card_removed_mid_emv_read_then_next_card_reads():
    emu, chip, reader = reader_with(EmvTestCard(bytes.fromhex("08123456"), fwi=4))
    emu.remove_card_after(8)
    with pytest.raises(CardReadError, match="stopped answering"):
        reader.poll_once()
    assert reader.poll_once() is None
    emu.add_card(MifareClassic1K(UID, blocks={4: b"T" * 16}))
    assert reader.poll_once().token == b"T" * 16


def test_read_tap_waits_for_a_card_and_switches_the_field_off_between_polls():
    # realtime: the awaited 5 ms power-up guard must count for the emulated cards
    emu, chip, reader = reader_with(None, realtime=True, poll_interval=0.001)
    field_seen = []

    async def scenario():
        async def insert_later():
            await asyncio.sleep(0.02)
            field_seen.append(emu.field)
            emu.add_card(EmvTestCard(bytes.fromhex("08123456")))

        tap, _ = await asyncio.gather(reader.read_tap(), insert_later())
        return tap

    tap = asyncio.run(scenario())
    assert tap.track2 == TRACK2
    assert reader.polls >= 2
    assert not emu.field  # off after the poll
    # The card stays: the next read_tap does not report it again.
    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(asyncio.wait_for(reader.read_tap(), 0.05))


def test_read_tap_with_the_field_kept_on():
    emu, chip, reader = reader_with(MifareClassic1K(UID), field_off_between_polls=False, poll_interval=0.001)
    tap = asyncio.run(reader.read_tap())
    assert tap.uid == UID and emu.field
    reader.close()
    assert not emu.field


# ---- traffic figures (what `make bench` reports) ----

def spi_bytes(emu, action):
    emu.reset_stats()
    action()
    s = emu.stats
    return s["bytes_out"], s["bytes_out"] - 2 * s["irq_polls"]


def test_spi_bytes_per_uid_read_and_per_iso_dep_exchange():
    emu, chip = emulated_chip()
    emu.add_card(VirtualCard(UID))
    total, without_polls = spi_bytes(emu, lambda: (iso14443a.activate(chip), iso14443a.halt(chip)))
    assert without_polls < 250 and total < 600

    emu, chip = emulated_chip()
    emu.add_card(IsoDepCard(bytes.fromhex("08123456"), lambda apdu: bytes(32) + b"\x90\x00"))
    iso14443a.activate(chip)
    dep = IsoDep(chip)
    dep.activate()
    total, without_polls = spi_bytes(emu, lambda: dep.exchange(bytes.fromhex("00A404000E325041592E5359532E444446303100")))
    assert without_polls < 150  # 20-byte APDU out, 34 bytes back
