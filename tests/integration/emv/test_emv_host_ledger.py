"""Online authorization with cryptograms at the reference host (Ledger.handle): a tap
through the real MFRC522 driver and emulator, its ICC data in field 55 and the PAN
sequence number in field 23; the host verifies the ARQC, answers with an ARPC in field 55
(checked here with pyemv, an independent implementation), declines a one-bit change in
9F26 or a replayed ATC and moves no money for them."""

import time

import pyemv
import pytest

from kapos.simdata.cards import expiry_months_ahead
from kapos.host import messages as m
from kapos.nfc import tlv
from kapos.ports.sim.cards.emv_mchip import mchip_tap
from kapos.ports.sim.cards.emv_visa_qvsdc import visa_qvsdc_tap
from kapos_tools.host import Ledger
from kapos_tools.host.emv_auth import TEST_IMK

from emv_rig import UID, pan_of, tap

UTC = time.gmtime()
EXPIRY = expiry_months_ahead(48)
CARDS = '''
[[card]]
id = "emv-visa"
pan = "4761739001010010"
expires_in_months = 48
balance = 100000

[[card]]
id = "emv-mc"
pan = "5413330089010434"
expires_in_months = 48
balance = 100000
'''


@pytest.fixture
def ledger(tmp_path):
    path = tmp_path / "cards.toml"
    path.write_text(CARDS)
    ledger = Ledger(":memory:")
    ledger.load_cards(str(path))
    return ledger


def request(stan, result, icc=None, amount=1250):
    message = m.build_financial_request(
        "sale", amount, stan, UTC, UTC, "KAPOS001", "KAPOS-MERCHANT1", "978",
        track2=result.track2, pan_entry=m.ENTRY_CONTACTLESS_CHIP, private="BN006000001",
        icc=result.icc_data if icc is None else icc)
    message[23] = "0" + result.pan_sequence
    return message


def flip(icc, tag, bit=0):
    out = b""
    for t, v in tlv.parse(icc):
        if t == tag:
            v = bytearray(v)
            v[bit // 8] ^= 0x80 >> (bit % 8)
        out += tlv.encode(t, bytes(v))
    return out


def pyemv_arpc(result, arc):
    data = dict(tlv.parse(result.icc_data))
    mk = pyemv.kd.derive_icc_mk_a(TEST_IMK, pan_of(result), result.pan_sequence)
    sk = pyemv.kd.derive_common_sk(mk, data[0x9F36] + bytes(6))
    return pyemv.ac.generate_arpc_1(sk, data[0x9F26], arc)


@pytest.mark.parametrize("make", [visa_qvsdc_tap, mchip_tap])
def test_a_tap_is_approved_with_an_arpc_the_card_can_check(ledger, make):
    result = tap(make(UID, expiry=EXPIRY))
    before = ledger.balance(pan_of(result))
    reply = ledger.handle(request(1, result))
    assert reply[39] == "00"
    issuer = dict(tlv.parse(reply[55]))[0x91]
    assert issuer[8:] == b"00" and issuer[:8] == pyemv_arpc(result, b"00")
    assert ledger.balance(pan_of(result)) == before - 1250


def test_one_bit_changed_in_9f26_is_declined_and_moves_nothing(ledger):
    result = tap(visa_qvsdc_tap(UID, expiry=EXPIRY))
    before = ledger.balance(pan_of(result))
    reply = ledger.handle(request(1, result, icc=flip(result.icc_data, 0x9F26, 5)))
    assert reply[39] == "05" and 55 not in reply
    assert ledger.balance(pan_of(result)) == before


def test_a_replayed_cryptogram_is_declined_even_with_a_new_stan(ledger):
    result = tap(visa_qvsdc_tap(UID, expiry=EXPIRY))
    assert ledger.handle(request(1, result))[39] == "00"
    assert ledger.handle(request(2, result))[39] == "05"  # same ATC again: a clone or a replay


def test_another_pan_sequence_number_does_not_verify(ledger):
    result = tap(visa_qvsdc_tap(UID, expiry=EXPIRY))
    message = request(1, result)
    message[23] = "002"
    assert ledger.handle(message)[39] == "05"


def test_a_cryptogram_over_another_amount_or_currency_is_declined(ledger):
    card = visa_qvsdc_tap(UID, expiry=EXPIRY)
    first = tap(card)  # signed 12.50; the message asks for 999.99
    assert ledger.handle(request(1, first, amount=99999))[39] == "05"
    second = tap(card)
    message = request(2, second)
    message[49] = "840"  # 5F2A is the terminal's currency (978 here), not 840
    assert ledger.handle(message)[39] == "05"
    third = tap(card)
    assert ledger.handle(request(3, third))[39] == "00"  # the same card, honest message
