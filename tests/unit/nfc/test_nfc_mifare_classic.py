"""MIFARE Classic through the chip's MFAuthent (Crypto1 in the MFRC522): authentication
with key A/B, wrong keys, block read/write, and leaving the crypto session."""

import pytest

from kapos.errors import CardReadError, LocalProtocolError
from kapos.nfc import iso14443a
from kapos.nfc.mifare_classic import KEY_A, KEY_B, MifareClassic, is_trailer, sector_of
from kapos.ports.sim.mfrc522_emu import MifareClassic1K

from nfcbytes import uid

KEY = bytes.fromhex("a0a1a2a3a4a5")
KEY_B_VALUE = bytes.fromhex("b0b1b2b3b4b5")
TOKEN = b"KAPOS-TOKEN-0042"


def selected(emu, chip, card):
    emu.add_card(card)
    target = iso14443a.activate(chip)
    assert target.mifare_classic
    return MifareClassic(chip, target.uid)


@pytest.mark.parametrize("text", ["04 a1 b2 c3", "04 11 22 33 44 55 66"])
def test_auth_with_key_a_and_read(rig, text):
    emu, chip = rig
    mc = selected(emu, chip, MifareClassic1K(uid(text), blocks={4: TOKEN}, key_a={1: KEY}))
    mc.authenticate(4, KEY, KEY_A)
    assert mc.read_block(4) == TOKEN
    assert mc.read_block(5) == bytes(16)
    trailer = mc.read_block(7)
    assert trailer[:6] == bytes(6) and trailer[6:10] == b"\xff\x07\x80\x69"  # key A never readable
    mc.halt()
    mc.stop()
    assert emu.regs[0x08] & 0x08 == 0  # Status2Reg MFCrypto1On cleared


def test_auth_with_key_b(rig):
    emu, chip = rig
    mc = selected(emu, chip, MifareClassic1K(uid("01 02 03 04"), blocks={8: TOKEN}, key_b={2: KEY_B_VALUE}))
    mc.authenticate(8, KEY_B_VALUE, KEY_B)
    assert mc.read_block(8) == TOKEN


def test_wrong_key_is_refused_then_a_new_select_and_right_key_work(rig):
    emu, chip = rig
    card = MifareClassic1K(uid("01 02 03 04"), blocks={4: TOKEN}, key_a={1: KEY})
    mc = selected(emu, chip, card)
    with pytest.raises(CardReadError, match="authentication refused for block 4 \\(key A\\)") as exc:
        mc.authenticate(4, b"\xff" * 6)
    assert "ff" not in str(exc.value).lower()  # no key material in messages
    assert card.state == "idle"  # a failed authentication drops the card to IDLE
    mc = MifareClassic(chip, iso14443a.activate(chip).uid)
    mc.authenticate(4, KEY)
    assert mc.read_block(4) == TOKEN


def test_write_and_read_back(rig):
    emu, chip = rig
    card = MifareClassic1K(uid("01 02 03 04"))
    mc = selected(emu, chip, card)
    mc.authenticate(5)
    mc.write_block(5, TOKEN)
    assert mc.read_block(5) == TOKEN
    assert bytes(card.mem[5]) == TOKEN


def test_write_guards(rig):
    emu, chip = rig
    mc = selected(emu, chip, MifareClassic1K(uid("01 02 03 04")))
    mc.authenticate(0)
    with pytest.raises(LocalProtocolError):
        mc.write_block(0, TOKEN)
    with pytest.raises(LocalProtocolError):
        mc.write_block(3, TOKEN)
    with pytest.raises(LocalProtocolError):
        mc.write_block(1, b"short")
    with pytest.raises(LocalProtocolError):
        mc.authenticate(1, b"\x00" * 5)


def test_block_outside_the_authenticated_sector_is_nak(rig):
    emu, chip = rig
    mc = selected(emu, chip, MifareClassic1K(uid("01 02 03 04")))
    mc.authenticate(4)
    with pytest.raises(CardReadError, match="refused READ of block 8"):
        mc.read_block(8)


def test_read_without_auth_gets_no_answer(rig):
    emu, chip = rig
    mc = selected(emu, chip, MifareClassic1K(uid("01 02 03 04")))
    with pytest.raises(CardReadError, match="no answer"):
        mc.read_block(4)


def test_forgetting_to_stop_crypto_breaks_the_next_poll(rig):
    # The emulator models Crypto1 as "the chip encrypts": a REQA sent while MFCrypto1On is
    # set is noise to a fresh card. This is why reader.read_target always calls stop().
    emu, chip = rig
    mc = selected(emu, chip, MifareClassic1K(uid("01 02 03 04")))
    mc.authenticate(4)
    mc.halt()
    emu.add_card(MifareClassic1K(uid("05 06 07 08")))
    assert iso14443a.activate(chip) is None
    mc.stop()
    assert iso14443a.activate(chip).uid == uid("05 06 07 08")


def test_sector_arithmetic():
    assert [sector_of(b) for b in (0, 3, 4, 63, 128, 143, 144, 255)] == [0, 0, 1, 15, 32, 32, 33, 39]
    assert [is_trailer(b) for b in (3, 4, 7, 131, 143, 255)] == [True, False, True, False, True, True]
