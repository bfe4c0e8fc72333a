"""ISO/IEC 14443-3 Type A activation: REQA/WUPA, anticollision and SELECT per cascade level
(cascade tag 0x88, BCC), collisions between cards, HLTA -- the real driver on the emulator."""

import pytest

from kapos.errors import CardReadError
from kapos.nfc import iso14443a
from kapos.ports.sim.mfrc522_emu import IsoDepCard, MifareClassic1K, ScriptedCard, VirtualCard

from nfcbytes import uid


@pytest.mark.parametrize("text, atqa, levels", [
    ("04 a1 b2 c3", b"\x04\x00", 1),
    ("04 11 22 33 44 55 66", b"\x44\x00", 2),
    ("04 11 22 33 44 55 66 77 88 99", b"\x84\x00", 3),
])
def test_anticollision_and_select_for_each_uid_size(rig, text, atqa, levels):
    emu, chip = rig
    emu.add_card(MifareClassic1K(uid(text)))
    target = iso14443a.activate(chip)
    assert target.uid == uid(text)
    assert target.atqa == atqa
    assert target.sak == 0x08 and target.mifare_classic and not target.iso_dep
    pcd = [f for _, who, f, n in emu.rf_log if who == "pcd"]
    # One anticollision + one SELECT per cascade level, SEL codes 93/95/97.
    sels = [f[:2] for f in pcd if f[1:2] == b"\x70"]
    assert sels == [bytes((c, 0x70)) for c in (0x93, 0x95, 0x97)[:levels]]
    if levels > 1:  # cascade tag then BCC in the first level's SELECT
        cl1 = pcd[2]
        assert cl1[2] == 0x88 and cl1[6] == 0x88 ^ cl1[3] ^ cl1[4] ^ cl1[5]


def test_no_card_is_none(rig):
    emu, chip = rig
    assert iso14443a.activate(chip) is None
    assert emu.rf_log[-1][2] == b"\x26" and emu.rf_log[-1][3] == 7  # REQA: 7-bit short frame


def first_difference(a, b):
    """1-based bit position (LSB first, byte by byte) where two UID CL1 differ."""
    for i in range(32):
        if (a[i >> 3] >> (i & 7)) & 1 != (b[i >> 3] >> (i & 7)) & 1:
            return i + 1, (a[i >> 3] >> (i & 7)) & 1


@pytest.mark.parametrize("a, b", [
    ("11 22 33 44", "11 22 33 45"),  # differ in the last byte
    ("f0 00 00 00", "0f 00 00 00"),  # differ in the first bit
    ("12 34 56 78", "12 b4 56 78"),  # differ at bit 16
])
def test_two_cards_collision_resolved_one_selected(rig, a, b):
    emu, chip = rig
    card_a = emu.add_card(MifareClassic1K(uid(a)))
    card_b = emu.add_card(MifareClassic1K(uid(b)))
    target = iso14443a.activate(chip)
    pos, bit_a = first_difference(uid(a), uid(b))
    winner, loser = (card_a, card_b) if bit_a == 1 else (card_b, card_a)
    assert target.uid == winner.uid  # the reader picks the card with a 1 at the collision
    assert winner.state == "active" and loser.state == "idle"
    # The other card is found after the first one is halted.
    assert iso14443a.halt(chip)
    second = iso14443a.activate(chip)
    assert second.uid == loser.uid
    assert iso14443a.halt(chip)
    assert iso14443a.activate(chip) is None


def test_three_cards_and_seven_byte_uids_colliding_at_level_two(rig):
    emu, chip = rig
    uids = [uid("04 11 22 33 44 55 66"), uid("04 11 22 33 44 55 e6"), uid("04 11 22 73 44 55 66")]
    for u in uids:
        emu.add_card(MifareClassic1K(u))
    found = []
    for _ in range(3):
        t = iso14443a.activate(chip)
        found.append(t.uid)
        iso14443a.halt(chip)
    assert sorted(found) == sorted(uids)
    assert iso14443a.activate(chip) is None


def test_cards_of_different_uid_sizes_collide_in_atqa(rig):
    emu, chip = rig
    emu.add_card(MifareClassic1K(uid("01 02 03 04")))
    emu.add_card(MifareClassic1K(uid("04 11 22 33 44 55 66")))
    assert iso14443a.request(chip) == b""  # ATQA 0400 vs 4400: a collision means cards are there
    # A second REQA while they are READY is an error to them: back to IDLE, silent.
    assert iso14443a.request(chip) is None
    seen = set()
    for _ in range(2):
        t = iso14443a.activate(chip)
        seen.add(t.uid)
        iso14443a.halt(chip)
    assert len(seen) == 2


def test_halt_then_only_wupa_wakes(rig):
    emu, chip = rig
    emu.add_card(IsoDepCard(uid("08 12 34 56")))
    t = iso14443a.activate(chip)
    assert t.iso_dep and not t.mifare_classic
    assert iso14443a.halt(chip)
    assert iso14443a.activate(chip) is None
    assert iso14443a.activate(chip, wake=True).uid == uid("08 12 34 56")


def test_field_off_resets_halted_cards(rig):
    emu, chip = rig
    emu.add_card(VirtualCard(uid("01 02 03 04")))
    iso14443a.activate(chip)
    iso14443a.halt(chip)
    chip.antenna_off()
    chip.antenna_on()  # waits the 5 ms power-up guard
    assert iso14443a.activate(chip).uid == uid("01 02 03 04")


def test_bad_bcc_is_a_card_read_error(rig):
    emu, chip = rig

    def responder(frame, nbits):
        if nbits == 7:
            return b"\x04\x00"
        if frame[:2] == b"\x93\x20":
            return b"\x01\x02\x03\x04\xff"  # BCC should be 0x04
        return None

    emu.add_card(ScriptedCard(uid("01020304"), responder))
    with pytest.raises(CardReadError, match="BCC"):
        iso14443a.activate(chip)


def test_cascade_bit_without_cascade_tag_is_refused(rig):
    emu, chip = rig
    from kapos.nfc.crc import append_crc_a

    def responder(frame, nbits):
        if nbits == 7:
            return b"\x44\x00"
        if frame[:2] == b"\x93\x20":
            return b"\x01\x02\x03\x04\x04"
        if frame[:2] == b"\x93\x70":
            return append_crc_a(b"\x04")  # cascade bit set, but CL1 has no 0x88
        return None

    emu.add_card(ScriptedCard(uid("01020304"), responder))
    with pytest.raises(CardReadError, match="cascade tag"):
        iso14443a.activate(chip)


def test_card_that_leaves_during_anticollision_gives_none(rig):
    emu, chip = rig
    emu.add_card(MifareClassic1K(uid("04 11 22 33 44 55 66")))
    emu.remove_card_after(2)  # REQA and the first anticollision reach it
    assert iso14443a.activate(chip) is None
