"""Minimal EMV contactless read (PPSE -> SELECT AID -> GPO -> READ RECORD -> tag 57) over
ISO-DEP, the real driver and an emulated EMV test card."""

import pytest

from kapos.errors import CardReadError
from kapos.nfc import emv, iso14443a, tlv
from kapos.nfc.isodep import IsoDep
from kapos.ports.sim.mfrc522_emu import EmvTestCard, IsoDepCard

from conftest import uid

TRACK2 = "4761739001010010=30122011143804400000"


def session(emu, chip, card):
    emu.add_card(card)
    iso14443a.activate(chip)
    dep = IsoDep(chip)
    dep.activate()
    return dep


@pytest.mark.parametrize("options", [
    {},  # GPO format 2, tag 57 in SFI 1 record 2
    {"gpo_format": 1},
    {"track2_in_gpo": True},
    {"pdol": b""},  # no PDOL: GPO with an empty 83 template
    {"record_padding": 180},  # a record longer than one frame: chained answer
])
def test_emv_read_yields_track2_equivalent(rig, options):
    emu, chip = rig
    card = EmvTestCard(uid("08 11 22 33"), track2=TRACK2, **options)
    dep = session(emu, chip, card)
    assert emv.read_track2(dep) == TRACK2
    commands = [a[:2] for a in card.apdus]
    assert commands[:3] == [b"\x00\xa4", b"\x00\xa4", b"\x80\xa8"]
    assert card.apdus[0][5:19] == b"2PAY.SYS.DDF01"
    if options.get("track2_in_gpo"):
        assert len(card.apdus) == 3  # no READ RECORD needed


def test_pdol_filled_with_terminal_data_and_zeros(rig):
    emu, chip = rig
    card = EmvTestCard(uid("08 11 22 33"))
    dep = session(emu, chip, card)
    emv.read_track2(dep, terminal_data={0x5F2A: b"\x09\x78", 0x9F02: b"\x00\x00\x00\x00\x12\x34"})
    # PDOL 9F66(4) 9F02(6) 5F2A(2) 9A(3) 9C(1) 9F37(4): TTQ default, amount, currency, zeros
    assert card.gpo_data == bytes.fromhex("26800000" "000000001234" "0978" "000000" "00" "00000000")


def test_odd_track2_length_is_padded_and_decoded(rig):
    emu, chip = rig
    odd = "5555555555554444=310620112345678"
    dep = session(emu, chip, EmvTestCard(uid("08 11 22 33"), track2=odd))
    assert emv.read_track2(dep) == odd


def test_iso_dep_card_without_ppse_is_not_emv(rig):
    emu, chip = rig
    dep = session(emu, chip, IsoDepCard(uid("08 11 22 33"), lambda apdu: b"\x6a\x82"))
    assert emv.read_track2(dep) is None


def test_failing_gpo_is_a_card_read_error(rig):
    emu, chip = rig
    card = EmvTestCard(uid("08 11 22 33"))
    card._pdol_length = lambda: 99  # the card wants another PDOL length: 6700
    dep = session(emu, chip, card)
    with pytest.raises(CardReadError, match="GET PROCESSING OPTIONS failed \\(SW 6700\\)"):
        emv.read_track2(dep)


def test_applications_by_priority():
    def entry(aid, prio):
        return tlv.encode(0x61, tlv.encode(0x4F, aid) + (tlv.encode(0x87, bytes((prio,))) if prio else b""))

    fci = tlv.encode(0x6F, tlv.encode(0xA5, tlv.encode(0xBF0C, entry(b"\xa0" * 7, 2) + entry(b"\xb0" * 7, 1)
                                                        + entry(b"\xc0" * 7, None))))
    assert emv.applications(fci) == [b"\xb0" * 7, b"\xa0" * 7, b"\xc0" * 7]


@pytest.mark.parametrize("value, text", [
    (bytes.fromhex("4761739001010010d30122011143804400000f"), TRACK2),
    (bytes.fromhex("5555555555554444d3106201ff"), "5555555555554444=3106201"),
])
def test_track2_text(value, text):
    assert emv.track2_text(value) == text


@pytest.mark.parametrize("value", [
    bytes.fromhex("4761739001010010"),  # no separator
    bytes.fromhex("47617390d3012201"),  # PAN too short
    bytes.fromhex("4761739001010010d3012a0111"),  # bad digit
])
def test_malformed_track2_does_not_leak_digits(value):
    with pytest.raises(CardReadError) as exc:
        emv.track2_text(value)
    assert "4761" not in str(exc.value)
