"""A tap outside a sale (idle, the technician's card test) read through the EMV kernel's
entry point (kapos.emv.tap.TrackReader: PPSE -> SELECT AID -> GPO -> READ RECORD -> 57)
over ISO-DEP, the real driver and an emulated EMV test card. nfc itself knows no EMV."""

import pytest

from kapos.app.chip import ChipSession
from kapos.emv import apdu, kernel
from kapos.emv.tap import TrackReader
from kapos.emv.terminal import TerminalConfig
from kapos.errors import CardReadError
from kapos.nfc import iso14443a, reader, tlv
from kapos.ports.sim.mfrc522_emu import EmvTestCard, IsoDepCard



def uid(text):
    return bytes.fromhex(text.replace(" ", ""))

TRACK2 = "4761739001010010=30122011143804400000"


def read(emu, chip, card, track_reader=None):
    emu.add_card(card)
    target = iso14443a.activate(chip)
    track2, token = reader.read_target(chip, target, read_dep=track_reader or TrackReader())
    assert token is None
    return track2


@pytest.mark.parametrize("options", [
    {},  # GPO format 2, tag 57 in SFI 1 record 2
    {"gpo_format": 1},
    {"track2_in_gpo": True},
    {"pdol": b""},  # no PDOL: GPO with an empty 83 template
    {"record_padding": 180},  # a record longer than one frame: chained answer
])
def test_tap_read_yields_track2_equivalent(rig, options):
    emu, chip = rig
    card = EmvTestCard(uid("08 11 22 33"), track2=TRACK2, **options)
    assert read(emu, chip, card) == TRACK2
    commands = [a[:2] for a in card.apdus]
    assert commands[:3] == [b"\x00\xa4", b"\x00\xa4", b"\x80\xa8"]
    assert card.apdus[0][5:19] == b"2PAY.SYS.DDF01"
    assert b"\x80\xae" not in commands  # no GENERATE AC outside a sale
    assert len(card.apdus) == 5  # the kernel reads the whole AFL (records 1-2), as EMV asks


def test_pdol_gets_this_terminals_data_not_zeros(rig):
    emu, chip = rig
    card = EmvTestCard(uid("08 11 22 33"))
    config = TerminalConfig(currency=978, random_bytes=lambda n: b"\xa5\x5a\xc3\x3c"[:n])
    read(emu, chip, card, TrackReader(config, lambda: ("261201", "123000")))
    # PDOL 9F66(4) 9F02(6) 5F2A(2) 9A(3) 9C(1) 9F37(4): TTQ, zero amount, currency,
    # the terminal's date, purchase, the random source's unpredictable number
    assert card.gpo_data == bytes.fromhex("36804000" "000000000000" "0978" "261201" "00" "a55ac33c")


def test_runtime_idle_reader_uses_the_csprng_and_clock(rig):
    emu, chip = rig
    settings = type("S", (), {"currency_code": "978", "terminal_id": "T0000001", "emv": {}})()

    class Reader:
        session = None

        def set_emv_session(self, session):
            self.session = session

    nfc = Reader()
    session = ChipSession(settings, clock=lambda: 1796132000, random_bytes=lambda n: b"\x11" * n)
    session.follow(nfc, "idle", {})
    assert nfc.session.reads_only
    card = EmvTestCard(uid("08 11 22 33"))
    assert read(emu, chip, card, nfc.session) == TRACK2
    assert card.gpo_data[-4:] == b"\x11" * 4
    assert card.gpo_data[12:15] != b"\x00\x00\x00"  # a real date
    session.follow(nfc, "card", {"type": "sale", "amount": 100})
    assert nfc.session is session  # a sale: the whole kernel


def test_odd_track2_length_is_padded_and_decoded(rig):
    emu, chip = rig
    odd = "5555555555554444=310620112345678"
    assert read(emu, chip, EmvTestCard(uid("08 11 22 33"), track2=odd)) == odd


def test_iso_dep_card_without_ppse_is_not_emv(rig):
    emu, chip = rig
    assert read(emu, chip, IsoDepCard(uid("08 11 22 33"), lambda apdu: b"\x6a\x82")) is None


def test_failing_gpo_is_a_card_read_error(rig):
    emu, chip = rig
    card = EmvTestCard(uid("08 11 22 33"))
    card._pdol_length = lambda: 99  # the card wants another PDOL length: 6700
    with pytest.raises(CardReadError, match="GET PROCESSING OPTIONS failed \\(SW 6700\\)"):
        read(emu, chip, card)


def test_card_with_no_application_we_support_is_refused(rig):
    emu, chip = rig
    card = EmvTestCard(uid("08 11 22 33"), aid=bytes.fromhex("F0000000010203"))
    with pytest.raises(CardReadError, match="no application this terminal supports"):
        read(emu, chip, card)


def test_candidates_by_priority():
    def entry(aid, prio):
        return tlv.encode(0x61, tlv.encode(0x4F, aid) + (tlv.encode(0x87, bytes((prio,))) if prio else b""))

    visa, mc, maestro = (bytes.fromhex(h) for h in ("A0000000031010", "A0000000041010", "A0000000043060"))
    fci = tlv.encode(0x6F, tlv.encode(0xA5, tlv.encode(0xBF0C, entry(visa, 2) + entry(mc, 1)
                                                        + entry(maestro, None))))
    channel = apdu.Channel(lambda command: fci + b"\x90\x00")
    found = kernel.candidates(channel, TerminalConfig(random_bytes=lambda n: bytes(n)))
    assert [c.aid for c in found] == [mc, visa, maestro]


@pytest.mark.parametrize("value, text", [
    (bytes.fromhex("4761739001010010d30122011143804400000f"), TRACK2),
    (bytes.fromhex("5555555555554444d3106201ff"), "5555555555554444=3106201"),
])
def test_track2_text(value, text):
    assert kernel.track2_text(value) == text


@pytest.mark.parametrize("value", [
    bytes.fromhex("4761739001010010"),  # no separator
    bytes.fromhex("47617390d3012201"),  # PAN too short
    bytes.fromhex("4761739001010010d3012a0111"),  # bad digit
])
def test_malformed_track2_does_not_leak_digits(value):
    with pytest.raises(CardReadError) as exc:
        kernel.track2_text(value)
    assert "4761" not in str(exc.value)
