"""A contactless sale through the real MFRC522 driver and emulator: the emulated cards
compute real cryptograms (EMV Book 2 A1 with the public test issuer key), the kernel sends
them in field 55 and the reference host's issuer side verifies them; a one-bit change in
9F26 is declined, a replayed ATC too; fallback to the next application; mag-stripe
profile."""

import pytest

from kapos.errors import CardReadError, CardRejected
from kapos.nfc import tlv
from kapos.ports.sim.cards.emv_blocked_first import blocked_first_tap
from kapos.ports.sim.cards.emv_debit_multi import debit_multi_tap
from kapos.ports.sim.cards.emv_magstripe import magstripe_tap
from kapos.ports.sim.cards.emv_mchip import mchip_tap
from kapos.ports.sim.cards.emv_visa_qvsdc import visa_qvsdc_tap
from kapos_tools.host.emv_auth import EmvIssuer

from emv_rig import UID, config, pan_of, sale, tap


def icc(result):
    return dict(tlv.parse(result.icc_data))


@pytest.mark.parametrize("make, path", [(visa_qvsdc_tap, "qvsdc"), (mchip_tap, "mchip")])
def test_the_host_verifies_the_arqc_of_a_tap(make, path):
    result = tap(make(UID))
    assert result.path == path and result.entry == "contactless"
    issuer = EmvIssuer()
    verdict = issuer.check(pan_of(result), result.pan_sequence, result.icc_data)
    assert verdict.ok, verdict.reason
    data = icc(result)
    assert data[0x9F02] == bytes.fromhex("000000001250") and data[0x9A] == bytes.fromhex("261201")
    assert data[0x9F37] != bytes(4)  # a real unpredictable number, not zeros
    assert data[0x9F27] == b"\x80" and len(data[0x9F26]) == 8
    for tag in (0x9F10, 0x9F36, 0x95, 0x9C, 0x5F2A, 0x82, 0x9F1A, 0x9F33, 0x9F34, 0x84):
        assert tag in data, "%X missing from field 55" % tag
    arpc = issuer.response_icc(verdict, "00")
    assert arpc[:1] == b"\x91" and len(tlv.parse(arpc)[0][1]) == 10


@pytest.mark.parametrize("bit", [0, 7, 63])
def test_one_bit_changed_in_the_cryptogram_is_declined(bit):
    result = tap(visa_qvsdc_tap(UID))
    values = tlv.parse(result.icc_data)
    forged = b""
    for tag, value in values:
        if tag == 0x9F26:
            value = bytearray(value)
            value[bit // 8] ^= 0x80 >> (bit % 8)
        forged += tlv.encode(tag, bytes(value))
    verdict = EmvIssuer().check(pan_of(result), result.pan_sequence, forged)
    assert not verdict.ok and verdict.reason == "ARQC does not verify"
    assert EmvIssuer().response_icc(verdict, "05") is None  # no ARPC for a forgery


def test_a_changed_amount_breaks_the_cryptogram():
    result = tap(visa_qvsdc_tap(UID))
    forged = b"".join(tlv.encode(t, bytes.fromhex("000000000001") if t == 0x9F02 else v)
                      for t, v in tlv.parse(result.icc_data))
    assert not EmvIssuer().check(pan_of(result), result.pan_sequence, forged).ok


def test_a_replayed_cryptogram_or_an_older_atc_is_declined():
    card = visa_qvsdc_tap(UID)
    first = tap(card)
    issuer = EmvIssuer()
    assert issuer.check(pan_of(first), first.pan_sequence, first.icc_data).ok
    replay = issuer.check(pan_of(first), first.pan_sequence, first.icc_data)
    assert not replay.ok and "ATC" in replay.reason
    second = tap(card)  # the same card again: its ATC went up
    assert issuer.check(pan_of(second), second.pan_sequence, second.icc_data).ok


def test_a_card_with_another_issuer_key_is_declined():
    result = tap(visa_qvsdc_tap(UID))
    other = EmvIssuer(keys={"4761": bytes.fromhex("00112233445566778899AABBCCDDEEFF")})
    assert not other.check(pan_of(result), result.pan_sequence, result.icc_data).ok


def test_fallback_when_the_first_application_is_blocked():
    result = tap(blocked_first_tap(UID))
    assert result.aid == bytes.fromhex("A0000000031010") and result.label == "VISA CREDIT"
    assert result.dropped == [("A0000000041010", "SELECT SW 6283")]
    assert EmvIssuer().check(pan_of(result), result.pan_sequence, result.icc_data).ok


def test_fallback_when_the_first_application_refuses_the_gpo():
    card = debit_multi_tap(UID, refuse_first=True)
    result = tap(card)
    assert result.dropped == [("A0000003591010028001", "GPO SW 6985")]
    assert result.aid == bytes.fromhex("A0000000043060") and result.label == "Maestro"
    assert EmvIssuer().check(pan_of(result), result.pan_sequence, result.icc_data).ok


def test_a_multi_aid_card_uses_its_first_priority_application():
    result = tap(debit_multi_tap(UID))
    assert result.label == "girocard" and result.path == "mchip"


def test_mag_stripe_profile_reads_9f6b_and_gets_a_cvc3_over_the_un():
    card = magstripe_tap(UID)
    result = tap(card)
    assert result.path == "magstripe" and result.entry == "contactless_magstripe"
    assert result.track2.startswith("5413330089020011=3012")
    data = icc(result)
    assert len(data[0x9F61]) == 2 and data[0x9F6A] == data[0x9F6A] and data[0x9F6A] != bytes(4)
    ccc = [a for a in card.emv.apdus if a[:2] == b"\x80\x2a"]
    assert len(ccc) == 1 and ccc[0][5:9] == data[0x9F6A]  # the CVC3 covers our UN


def test_above_the_cvm_limit_online_pin_or_cdcvm():
    result = tap(visa_qvsdc_tap(UID), txn=sale(50000), cfg=config(cvm_limit=10000))
    assert result.cvm == "online_pin"
    phone = tap(visa_qvsdc_tap(UID, ctq=b"\x00\x80"), txn=sale(50000), cfg=config(cvm_limit=10000))
    assert phone.cvm == "cdcvm"
    small = tap(visa_qvsdc_tap(UID), txn=sale(500), cfg=config(cvm_limit=10000))
    assert small.cvm == "none"


def test_above_the_contactless_limit_the_card_must_be_inserted():
    with pytest.raises(CardRejected, match="contactless limit"):
        tap(visa_qvsdc_tap(UID), txn=sale(200000), cfg=config(contactless_limit=100000))


def test_no_random_source_no_transaction():
    from kapos.emv.terminal import TerminalConfig
    from kapos.errors import ConfigError
    with pytest.raises(ConfigError, match="random source"):
        tap(visa_qvsdc_tap(UID), cfg=TerminalConfig())


def test_a_card_with_no_supported_application_is_a_clear_error():
    from kapos.ports.sim.cards.emv_app import EmvApplication, EmvCard, EmvContactlessCard
    card = EmvContactlessCard(UID, EmvCard([EmvApplication(bytes.fromhex("A0000009991010"), "X",
                                                           "4761739001010010", "3012")]))
    with pytest.raises(CardReadError, match="no application this terminal supports"):
        tap(card)
