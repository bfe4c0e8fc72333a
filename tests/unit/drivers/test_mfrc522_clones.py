"""Cheap reader boards: MFRC522 clones and compatibles, the hard-reset timing of datasheet
8.8.2, collisions that also break parity, and RFCfgReg's reserved bits."""

import pytest

from kapos.drivers.mfrc522 import OSCILLATOR_START_US, Mfrc522
from kapos.errors import HardwareError
from kapos.hal import Pin, SpiBus
from kapos.nfc import iso14443a
from kapos.ports.sim.chips import PERSONALITIES
from kapos.ports.sim.mfrc522_emu import MifareClassic1K, Mfrc522Emulator, emulated_chip


@pytest.mark.parametrize("persona", PERSONALITIES, ids=lambda p: p.key)
def test_every_chip_personality_is_driven_and_clones_are_named_in_a_warning(persona):
    emu, chip = emulated_chip(chip=persona.key)
    assert chip.version == persona.version
    emu.add_card(MifareClassic1K(bytes.fromhex("04a1b2c3")))
    assert iso14443a.activate(chip).uid == bytes.fromhex("04a1b2c3")
    if persona.version in (0x91, 0x92):
        assert chip.warning is None
    else:
        assert chip.chip in chip.warning and "0x%02X" % persona.version in chip.warning


class TimedPin(Pin):
    """The NRSTPD line, noting the emulator's clock at each edge."""

    def __init__(self, emu):
        self.emu = emu
        self.edges = []

    def value(self, level=None):
        if level is not None:
            self.edges.append((level, self.emu.now_us))
        return self.emu.reset_pin.value(level)


class TimedBus(SpiBus):
    """The SPI bus, noting the emulator's clock at each transfer."""

    def __init__(self, emu):
        self.emu = emu
        self.times = []

    def transfer(self, data):
        self.times.append(self.emu.now_us)
        return self.emu.transfer(data)


def test_hard_reset_holds_the_line_low_and_waits_for_the_oscillator():
    emu = Mfrc522Emulator(chip="clone-0x12")
    pin, bus = TimedPin(emu), TimedBus(emu)
    Mfrc522(bus, reset=pin, reset_wait=emu.sleep_us)
    (low, t_low), (high, t_high) = pin.edges
    assert (low, high) == (0, 1) and t_high - t_low >= 0.1
    assert bus.times[0] - t_high >= OSCILLATOR_START_US  # no SPI before the oscillator runs


def test_without_the_oscillator_wait_the_chip_does_not_answer():
    # the emulator ignores SPI while the oscillator starts, so a driver that skips the
    # wait reads VersionReg 0x00 -- as a real board does
    emu = Mfrc522Emulator(chip="fm17522")
    with pytest.raises(HardwareError, match="VersionReg 0x00"):
        Mfrc522(emu, reset=emu.reset_pin, reset_wait=lambda us: emu.sleep_us(us) if us < 1000 else None)


def test_a_glitch_on_the_reset_line_is_not_a_reset():
    emu = Mfrc522Emulator()
    emu.sleep_us(10000)
    emu.regs[0x24] = 0x55
    emu.reset_pin.value(0)
    emu.reset_pin.value(1)  # no time at all low
    assert emu.regs[0x24] == 0x55
    emu.reset_pin.value(0)
    emu.sleep_us(1)
    emu.reset_pin.value(1)
    assert emu.regs[0x24] == 0x26


def test_two_cards_in_the_field_anticollision_picks_one_despite_parity_errors():
    # collided bits come with ParityErr; the collision must be read first, not a transmission error
    emu, chip = emulated_chip()
    emu.add_card(MifareClassic1K(bytes.fromhex("04a1b2c3")))
    emu.add_card(MifareClassic1K(bytes.fromhex("04a1b2d3")))
    target = iso14443a.activate(chip)
    assert target is not None and target.uid in (bytes.fromhex("04a1b2c3"), bytes.fromhex("04a1b2d3"))


def test_rx_gain_keeps_rfcfgreg_reserved_bits():
    emu = Mfrc522Emulator()
    emu.sleep_us(10000)
    chip = Mfrc522(emu, rx_gain=7)
    assert chip.version == 0x92
    assert emu.regs[0x26] == 0x78  # reset value 0x48: bit 3 (reserved) kept, RxGain 7
