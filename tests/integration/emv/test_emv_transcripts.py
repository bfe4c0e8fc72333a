"""The kernel replayed against recordings of real cards (emv_transcripts.py cites them):
what it reads, what it sends, and what goes to the host."""

import pytest

from kapos.emv import apdu, kernel
from kapos.emv.terminal import TerminalConfig, Transaction
from kapos.errors import CardReadError
from kapos.nfc import tlv

from emv_transcripts import MC_DEBIT, VISA_DEBIT, TranscriptCard

UN = b"\x1a\x2b\x3c\x4d"


def config():
    return TerminalConfig(country=276, currency=978, random_bytes=lambda n: UN, cvm_limit=5000)


def test_real_visa_debit_qvsdc():
    card = TranscriptCard(VISA_DEBIT)
    result = kernel.run(apdu.Channel(card), config(), Transaction("sale", 1999, "261201"))
    assert result.path == "qvsdc" and result.entry == "contactless"
    assert result.track2 == "4871780082770574=25072211328662101000"
    assert result.pan_sequence == "01"
    assert result.label == "comdirect Debit"  # the preferred name (9F11 = 1)
    gpo = [c for c in card.sent if c[:2] == b"\x80\xa8"][0]
    # PDOL 9F66 9F02 9F03 9F1A 95 5F2A 9A 9C 9F37: real terminal data, not zeros
    assert gpo[5:7] == b"\x83\x21"
    assert gpo[11:17] == bytes.fromhex("000000001999") and gpo[23:25] == bytes.fromhex("0276")
    assert gpo[30:32] == bytes.fromhex("0978") and gpo[32:35] == bytes.fromhex("261201")
    assert gpo[36:40] == UN
    assert [c[:4].hex() for c in card.sent[3:]] == ["00b20114", "00b20214", "00b20314"]
    icc = dict(tlv.parse(result.icc_data))
    assert icc[0x9F26] == bytes.fromhex("ec1c5779ff267037") and icc[0x9F36] == b"\x00\xc3"
    assert icc[0x9F10] == bytes.fromhex("06011203a00000") and icc[0x9F27] == b"\x80"
    assert icc[0x84] == bytes.fromhex("a0000000031010") and icc[0x9F37] == UN


def test_real_debit_mastercard_asks_for_an_arqc_with_its_cdol1():
    card = TranscriptCard(MC_DEBIT)
    with pytest.raises(CardReadError, match=r"GENERATE AC failed \(SW 6D00\)"):
        kernel.run(apdu.Channel(card), config(), Transaction("sale", 1999, "261201", "101500"))
    assert card.sent[2] == bytes.fromhex("80a8000002830000")  # no PDOL: an empty 83
    reads = [c.hex() for c in card.sent if c[1] == 0xB2]
    assert reads == ["00b2010c00", "00b2011400", "00b2012400", "00b2022400"]
    gen_ac = card.sent[-1]
    assert gen_ac[:4] == bytes.fromhex("80ae8000") and gen_ac[4] == 66  # CDOL1: 66 bytes
    data = gen_ac[5:5 + 66]
    assert data[:6] == bytes.fromhex("000000001999") and data[12:14] == bytes.fromhex("0276")
    assert data[19:21] == bytes.fromhex("0978") and data[21:24] == bytes.fromhex("261201")
    assert data[25:29] == UN and data[29:30] == b"\x22"  # terminal type 22
    assert data[40:43] == b"\x1f\x00\x02"  # CVM results: below the CVM limit, none needed
    assert data[43:46] == bytes.fromhex("101500")  # 9F21 transaction time
