"""The console's I key: the EMV test card into the chip slot of a board that has one, and out."""

from kapos.console import Controls
from kapos.ports.sim.chip_slot import SimChipSlot
from kapos.simdata.cards import load


class _Platform:
    def __init__(self, chip):
        self.chip = chip

    def get(self, name):
        return self.chip if name == "chip" else None


class _Terminal:
    def __init__(self, chip):
        self.platform = _Platform(chip)


class _Assembly:
    def __init__(self, chip):
        self.terminal = _Terminal(chip)
        self.testcards = load()


def test_insert_key_toggles_the_card_in_the_slot():
    slot = SimChipSlot()
    controls = Controls(_Assembly(slot))
    assert controls.insert().startswith("inserted emv-tap")
    assert slot.card is not None and slot.card.transceive(bytes.fromhex("00A404000E315041592E5359532E444446303100"))[-2:] == b"\x90\x00"
    card = slot.card
    assert controls.insert() == "card removed" and slot.card is None
    try:
        card.transceive(b"\x00\xb2\x01\x0c\x00")
        raise AssertionError("a removed card answered")
    except Exception as exc:
        assert "removed" in str(exc)


def test_insert_key_on_a_board_without_a_chip_slot_says_so():
    assert "no chip slot" in Controls(_Assembly(None)).insert()
