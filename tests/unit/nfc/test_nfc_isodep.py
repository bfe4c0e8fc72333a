"""ISO/IEC 14443-4 (ISO-DEP) over the real driver and the emulated chip and cards:
RATS/ATS, I-blocks and block numbers, chaining both ways, R(ACK)/R(NAK), S(WTX),
S(DESELECT), and a card that leaves the field mid-exchange."""

import pytest

from kapos.errors import CardReadError, LocalProtocolError, RemoteProtocolError
from kapos.nfc import iso14443a
from kapos.nfc.isodep import IsoDep, fwt_ms, parse_ats
from kapos.ports.sim.mfrc522_emu import PARITY_ERR, IsoDepCard, MifareClassic1K, SlowIsoDepCard

from nfcbytes import uid

UID = uid("08 6a 5b 4c")


def echo(apdu):
    """Answers with as many bytes as P1 P2 say (big-endian), then the command, then 9000."""
    n = (apdu[2] << 8) | apdu[3]
    return bytes(i & 0xFF for i in range(n)) + apdu[4:] + b"\x90\x00"


def open_session(emu, chip, card, **options):
    emu.add_card(card)
    target = iso14443a.activate(chip)
    assert target.iso_dep
    dep = IsoDep(chip, **options)
    dep.activate()
    return dep


def frames(emu, who):
    return [f for _, w, f, n in emu.rf_log if w == who]


def test_rats_asks_for_64_byte_frames_and_ats_is_parsed(rig):
    emu, chip = rig
    dep = open_session(emu, chip, IsoDepCard(UID, echo, fsci=5, fwi=6, historical=b"KAPOS"))
    rats = [f for f in frames(emu, "pcd") if f[0] == 0xE0][0]
    assert rats[:2] == b"\xe0\x50"  # FSDI 5 = 64 bytes, CID 0
    assert (dep.fsc, dep.fwi, dep.sfgi, dep.historical) == (64, 6, 0, b"KAPOS")


def test_fwt_formula():
    # ISO 14443-4: FWT = (256 x 16 / fc) x 2^FWI
    assert fwt_ms(0) == pytest.approx(0.302, abs=0.001)
    assert fwt_ms(4) == pytest.approx(4.833, abs=0.001)
    assert fwt_ms(14) == pytest.approx(4949.0, abs=1)


@pytest.mark.parametrize("ats, expected", [
    (b"\x01", (32, 4, 0, b"")),  # no T0: FSCI 2, FWI 4, SFGI 0
    (b"\x02\x05", (64, 4, 0, b"")),  # only FSCI
    (b"\x05\x78\x80\x81\x02", (256, 8, 1, b"")),
    (b"\x04\x2c\xf0\xaa", (256, 4, 0, b"\xaa")),  # FSCI 12 -> 256 (kept to ISO 2008 table), FWI 15 (RFU) -> 4
])
def test_parse_ats(ats, expected):
    assert parse_ats(ats) == expected


@pytest.mark.parametrize("ats", [b"", b"\x03\x78", b"\x02\x70\x00"])
def test_malformed_ats(ats):
    with pytest.raises(RemoteProtocolError):
        parse_ats(ats)


def test_short_exchange_and_block_numbers_toggle(rig):
    emu, chip = rig
    card = IsoDepCard(UID, echo)
    dep = open_session(emu, chip, card)
    for i in range(3):
        assert dep.exchange(b"\x00\x00\x00\x02") == b"\x00\x01\x90\x00"
    pcbs = [f[0] for f in frames(emu, "pcd") if f[0] & 0xE2 == 0x02]
    assert pcbs == [0x02, 0x03, 0x02]  # I-block numbers alternate (ISO 14443-4 rule B)
    picc = [f[0] for f in frames(emu, "picc") if f[0] & 0xE2 == 0x02]
    assert picc == [0x02, 0x03, 0x02]


def test_chaining_in_both_directions(rig):
    emu, chip = rig
    card = IsoDepCard(UID, echo, fsci=8)  # card takes 256-byte frames; our FIFO limits to 64
    dep = open_session(emu, chip, card)
    command = b"\x80\x10\x01\x2c" + bytes([200]) + bytes(range(200))  # answer: 300 + 205 bytes
    answer = dep.exchange(command)
    assert card.apdus[-1] == command
    assert answer == bytes(i & 0xFF for i in range(300)) + command[4:] + b"\x90\x00"
    pcd, picc = frames(emu, "pcd"), frames(emu, "picc")
    assert max(len(f) for f in pcd) == 64 and max(len(f) for f in picc) == 64  # full FIFO, FSD 64
    chained_out = [f for f in pcd if f[0] & 0xF2 == 0x12]
    assert len(chained_out) == 3  # 205 bytes = 61 + 61 + 61 + 22
    acks_from_card = [f for f in picc if f[0] & 0xF6 == 0xA2]
    assert len(acks_from_card) == 3
    chained_in = [f for f in picc if f[0] & 0xF2 == 0x12]
    assert len(chained_in) == 8  # 507 bytes in blocks of 61
    acks_from_us = [f for f in pcd if f[0] & 0xF6 == 0xA2]
    assert len(acks_from_us) == 8
    # Block numbers of the whole conversation alternate on each side.
    numbers = [f[0] & 1 for f in pcd if f[0] & 0xE2 == 0x02 or f[0] & 0xE6 == 0xA2]
    assert numbers == [i % 2 for i in range(len(numbers))]


def test_small_card_frame_size(rig):
    emu, chip = rig
    dep = open_session(emu, chip, IsoDepCard(UID, echo, fsci=0))  # FSC 16
    assert dep.exchange(b"\x00\x00\x00\x10" + bytes(40)) == bytes(range(16)) + bytes(40) + b"\x90\x00"
    assert max(len(f) for f in frames(emu, "pcd")[3:]) <= 16


def test_waiting_time_extension(rig):
    emu, chip = rig
    card = SlowIsoDepCard(UID, echo, wtx_rounds=2, wtxm=3, fwi=4)
    dep = open_session(emu, chip, card)
    assert dep.exchange(b"\x00\x00\x00\x04") == b"\x00\x01\x02\x03\x90\x00"
    assert card.wtx_sent == 2 and dep.wtx_count == 2
    wtx_answers = [f[:2] for f in frames(emu, "pcd") if f[0] == 0xF2]
    assert wtx_answers == [b"\xf2\x03", b"\xf2\x03"]  # S(WTX) answered with the same WTXM


def test_a_card_slower_than_fwt_without_wtx_fails(rig):
    emu, chip = rig
    card = IsoDepCard(UID, echo, fwi=4, processing_us=3 * fwt_ms(4) * 1000)
    dep = open_session(emu, chip, card)
    with pytest.raises(CardReadError, match="stopped answering"):
        dep.exchange(b"\x00\x00\x00\x04")


def test_wtx_requests_are_bounded(rig):
    emu, chip = rig
    dep = open_session(emu, chip, SlowIsoDepCard(UID, echo, wtx_rounds=5, wtxm=1), max_wtx=3)
    with pytest.raises(CardReadError, match="more time"):
        dep.exchange(b"\x00\x00\x00\x04")


def test_bad_wtxm_is_a_protocol_error(rig):
    emu, chip = rig
    dep = open_session(emu, chip, SlowIsoDepCard(UID, echo, wtxm=0))
    with pytest.raises(RemoteProtocolError, match="WTXM"):
        dep.exchange(b"\x00\x00\x00\x04")


def test_garbled_answer_recovered_with_r_nak(rig):
    emu, chip = rig
    dep = open_session(emu, chip, IsoDepCard(UID, echo))
    emu.inject_rx_error(PARITY_ERR)
    assert dep.exchange(b"\x00\x00\x00\x02") == b"\x00\x01\x90\x00"
    assert [f[0] for f in frames(emu, "pcd")[-2:]] == [0x02, 0xB2]  # I(0), then R(NAK,0)


class DeafCard(IsoDepCard):
    """Misses the I-blocks whose numbers are listed (counting I-blocks from 1)."""

    def __init__(self, *args, deaf=(), **kw):
        IsoDepCard.__init__(self, *args, **kw)
        self.deaf = deaf
        self.i_blocks = 0

    def _block(self, data, nbits):
        if data[0] & 0xE2 == 0x02:
            self.i_blocks += 1
            if self.i_blocks in self.deaf:
                return None
        return IsoDepCard._block(self, data, nbits)


def test_card_missed_our_block_gets_it_again(rig):
    emu, chip = rig
    card = DeafCard(UID, echo, deaf=(2,), fwi=2)
    dep = open_session(emu, chip, card)
    assert dep.exchange(b"\x00\x00\x00\x01") == b"\x00\x90\x00"
    assert dep.exchange(b"\x00\x00\x00\x03") == b"\x00\x01\x02\x90\x00"  # lost once: NAK -> ACK -> resend
    # I(1) lost -> R(NAK,1) -> the card, still at block 0, answers R(ACK,0) -> I(1) again (rule 6)
    assert [f[0] for f in frames(emu, "pcd")[-3:]] == [0x03, 0xB3, 0x03]
    assert [f[0] for f in frames(emu, "picc")[-2:]] == [0xA2, 0x03]
    assert len(card.apdus) == 2


def test_lost_chained_answer_is_asked_again_with_r_ack(rig):
    emu, chip = rig
    dep = open_session(emu, chip, IsoDepCard(UID, echo))
    emu.rf_log.clear()
    emu.inject_rx_error(0)  # first answer clean
    emu.inject_rx_error(PARITY_ERR)  # second chained block garbled
    answer = dep.exchange(b"\x00\x00\x00\xc8")
    assert answer == bytes(range(200)) + b"\x90\x00"
    acks = [f for f in frames(emu, "pcd") if f[0] & 0xF6 == 0xA2]
    assert acks[0] == acks[1]  # rule 5: the same R(ACK) again


def test_card_leaves_field_mid_exchange_then_driver_still_works(rig):
    emu, chip = rig
    card = IsoDepCard(UID, echo, fwi=4)
    dep = open_session(emu, chip, card)
    emu.remove_card_after(2)  # our I-block and one R(ACK) still reach it
    with pytest.raises(CardReadError, match="stopped answering"):
        dep.exchange(b"\x00\x00\x01\x00")
    assert card.state == "off" and not emu.cards
    # Same driver, next card: a full activation and exchange.
    dep2 = open_session(emu, chip, IsoDepCard(uid("08 01 02 03"), echo))
    assert dep2.exchange(b"\x00\x00\x00\x02") == b"\x00\x01\x90\x00"


def test_deselect_halts_the_card(rig):
    emu, chip = rig
    card = IsoDepCard(UID, echo)
    dep = open_session(emu, chip, card)
    assert dep.deselect() is True
    assert card.state == "halt"
    with pytest.raises(LocalProtocolError):
        dep.exchange(b"\x00\x00\x00\x00")


def test_rats_to_a_card_without_iso_dep(rig):
    emu, chip = rig
    emu.add_card(MifareClassic1K(uid("01 02 03 04")))
    iso14443a.activate(chip)
    with pytest.raises(CardReadError, match="RATS"):
        IsoDep(chip).activate()
