"""kapos.emv.apdu and dol: GET RESPONSE on 61xx, resend with the card's Le on 6Cxx,
bounded rounds, and DOL filling (numeric left-padded, unknown tags as zeros)."""

import pytest

from kapos.emv import apdu, dol
from kapos.errors import RemoteProtocolError


class Script:
    """A card that answers from a list and records what it got."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.got = []

    def __call__(self, command):
        self.got.append(bytes(command))
        return self.answers.pop(0)


def test_61xx_is_followed_by_get_response_and_the_parts_are_joined():
    card = Script([b"\x6f\x02\x61\x05", b"\x84\x03ABC\x90\x00"])
    data, sw = apdu.Channel(card).send(0x00, 0xA4, 0x04, 0x00, b"\xa0\x00\x00\x00\x03")
    assert sw == 0x9000 and data == b"\x6f\x02\x84\x03ABC"
    assert card.got[1] == b"\x00\xc0\x00\x00\x05"


def test_6cxx_resends_the_command_with_the_right_le():
    card = Script([b"\x6c\x1c", b"\x70\x00\x90\x00"])
    data, sw = apdu.Channel(card).send(0x00, 0xB2, 0x01, 0x0C)
    assert sw == 0x9000 and card.got == [b"\x00\xb2\x01\x0c\x00", b"\x00\xb2\x01\x0c\x1c"]


def test_endless_61xx_is_cut_off():
    card = Script([b"\x61\x10"] * 40)
    with pytest.raises(RemoteProtocolError, match="GET RESPONSE"):
        apdu.Channel(card).send(0x80, 0xA8, 0x00, 0x00, b"\x83\x00")


def test_a_response_without_a_status_word_is_an_error():
    with pytest.raises(RemoteProtocolError):
        apdu.Channel(Script([b"\x90"])).send(0x00, 0xA4, 0x04, 0x00, b"x")


def test_trace_records_each_exchange():
    trace = []
    apdu.Channel(Script([b"\x61\x01", b"\x01\x90\x00"]), trace).send(0x00, 0xA4, 0x04, 0x00, b"A")
    assert len(trace) == 2 and trace[1][1] == b"\x01\x90\x00"


def test_dol_fill_pads_numbers_on_the_left_and_unknown_tags_with_zeros():
    pdol = bytes.fromhex("9F0208" "5F2A02" "9F4E04" "DF810105")  # amount asked as 8 bytes
    data = {0x9F02: bytes.fromhex("000000001250"), 0x5F2A: bytes.fromhex("0978"), 0x9F4E: b"AB"}
    assert dol.fill(pdol, data) == bytes.fromhex("0000000000001250" "0978" "41420000" "0000000000")


def test_dol_fill_cuts_numbers_on_the_left():
    assert dol.fill(bytes.fromhex("9F0203"), {0x9F02: bytes.fromhex("000000123456")}) == bytes.fromhex("123456")
