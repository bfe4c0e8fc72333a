"""kapos.host.messages: codes, builders, response matching, STAN.

Processing codes, response codes and the field 90 layout are ISO 8583:1987
(references.md, "ISO 8583:1987 terminal message set").
"""

import pytest

from host_samples import (EUR, ICC, KSN, LOCAL, MAC, MERCHANT, PAN, PIN_BLOCK, TERMINAL,
                          TRACK2, UTC, balance, contactless_auth, every_mti, manual_refund,
                          sale, totals, transfer)
from kapos.errors import DecodeError, LocalProtocolError
from kapos.host import messages as m
from kapos.host.codec import decode, encode


# ---------------------------------------------------------------- codes

def test_processing_codes():
    expected = {"sale": "000000", "cash": "010000", "void": "020000", "refund": "200000",
                "void_refund": "220000", "balance": "310000", "transfer": "400000"}
    for kind, code in expected.items():
        assert m.processing_code(kind) == code
    assert m.processing_code("transfer", m.ACCOUNT_CHECKING, m.ACCOUNT_SAVINGS) == "402010"
    with pytest.raises(LocalProtocolError):
        m.processing_code("bogus")
    with pytest.raises(LocalProtocolError):
        m.processing_code("sale", "1")


@pytest.mark.parametrize("code,text", [
    ("00", "Approved"), ("05", "Do not honour"), ("12", "Invalid transaction"),
    ("13", "Invalid amount"), ("14", "Invalid card number"), ("51", "Insufficient funds"),
    ("54", "Expired card"), ("55", "Incorrect PIN"), ("61", "Exceeds amount limit"),
    ("75", "PIN tries exceeded"), ("91", "Issuer unavailable"),
    ("94", "Duplicate transaction"), ("96", "System malfunction"),
])
def test_response_texts(code, text):
    assert m.response_text(code) == text


def test_response_texts_fit_a_21_column_screen():
    assert all(len(text) <= 21 for text in m.RESPONSE_TEXTS.values())
    assert m.response_text("Z9") == "Declined (Z9)"
    assert m.response_text(None) == "Declined"


def test_approvals():
    assert m.is_approved("00") and m.is_approved("08")
    assert not any(m.is_approved(c) for c in ("05", "10", "51", "91", None))


def test_network_codes_and_entry_modes():
    assert (m.NETWORK_SIGN_ON, m.NETWORK_ECHO) == ("001", "301")
    assert m.pos_entry_mode(m.ENTRY_MAGSTRIPE) == "021"
    assert m.pos_entry_mode(m.ENTRY_CONTACTLESS_CHIP, pin_capable=False) == "072"


@pytest.mark.parametrize("request_mti,response_mti", [
    ("0100", "0110"), ("0200", "0210"), ("0220", "0230"), ("0221", "0230"),
    ("0400", "0410"), ("0401", "0410"), ("0420", "0430"), ("0500", "0510"),
    ("0800", "0810"),
])
def test_response_mti(request_mti, response_mti):
    assert m.response_mti(request_mti) == response_mti


@pytest.mark.parametrize("mti", ["0210", "0230", "0240", "020", None, "02a0"])
def test_response_mti_refuses_non_requests(mti):
    with pytest.raises(LocalProtocolError):
        m.response_mti(mti)


def test_repeat_mti():
    assert m.repeat_mti("0400") == "0401" and m.repeat_mti("0220") == "0221"
    with pytest.raises(LocalProtocolError):
        m.repeat_mti("0401")


# ---------------------------------------------------------------- STAN

def test_next_stan_wraps_to_1():
    assert m.next_stan(0) == 1
    assert m.next_stan(41) == 42
    assert m.next_stan("000041") == 42
    assert m.next_stan(999998) == 999999
    assert m.next_stan(999999) == 1
    for bad in (-1, 1000000, "41", "00004A", None, 1.0):
        with pytest.raises(LocalProtocolError):
            m.next_stan(bad)


def test_stan_counter():
    stan = m.Stan(999998)
    assert [stan.next(), stan.next(), stan.next()] == ["999999", "000001", "000002"]
    assert stan.last == 2
    assert m.Stan().next() == "000001"
    assert m.stan_text(7) == "000007" and m.stan_text("000007") == "000007"
    for bad in (0, "000000", 1000000, "7"):
        with pytest.raises(LocalProtocolError):
            m.stan_text(bad)


# ---------------------------------------------------------------- financial request

def test_sale_request_fields():
    msg = sale()
    assert msg["mti"] == "0200"
    assert msg[3] == "000000" and msg[4] == "000000001234"
    assert msg[7] == "1125143015" and msg[11] == "000042"
    assert msg[12] == "153015" and msg[13] == "1125"
    assert msg[22] == "021" and msg[25] == "00"
    assert msg[35] == TRACK2 and 2 not in msg and 14 not in msg
    assert msg[41] == "KAPOS001" and msg[42] == "KAPOS-SHOP-01  "
    assert msg[49] == EUR and msg[52] == PIN_BLOCK and msg[53] == KSN
    assert not m.missing_fields(msg)


def test_balance_has_no_amount_and_manual_entry_has_pan_and_expiry():
    assert 4 not in balance() and balance()[3] == "310000"
    refund = manual_refund()
    assert refund[2] == PAN and refund[14] == "2812" and refund[22] == "012"
    assert 35 not in refund


def test_contactless_auth():
    auth = contactless_auth()
    assert auth["mti"] == "0100" and auth[22] == "071" and auth[55] == ICC
    assert 52 not in auth and auth[53] == KSN


def test_transfer_private_data():
    msg = transfer()
    assert msg[3] == "400000"
    assert m.unpack_private(msg[48]) == {"TA": "CL0000123456", "FE": "000000000010"}


@pytest.mark.parametrize("overrides", [
    dict(txn_type="sale", amount=None),
    dict(amount=0), dict(amount=-5), dict(amount=10 ** 12), dict(amount=12.5),
    dict(pan=PAN),  # both PAN and track 2
    dict(track2=None),  # neither
    dict(expiry="2812"),  # expiry comes from track 2
    dict(ksn=None),  # PIN block without KSN
    dict(mti="0400"),
    dict(stan=0), dict(stan=1000000),
    dict(transmission=(2025, 13, 1, 0, 0, 0)), dict(local=(2025, 1)),
    dict(terminal_id="KAPOS0001"), dict(merchant_id=""),
    dict(txn_type="purchase"),
])
def test_financial_request_refusals(overrides):
    with pytest.raises(LocalProtocolError):
        sale(**overrides)


# ---------------------------------------------------------------- reversal / advice

def test_reversal_fills_original_data_elements():
    original = sale()
    rev = m.build_reversal(original, "timeout")
    assert rev["mti"] == "0400"
    assert rev[39] == "68"
    assert rev[90] == "0200" + "000042" + "1125143015" + "0" * 11 + "0" * 11
    assert m.parse_original_data(rev[90]) == ("0200", "000042", "1125143015",
                                              "0" * 11, "0" * 11)
    for number in (3, 4, 7, 11, 12, 13, 22, 25, 41, 42, 49):
        assert rev[number] == original[number]
    # card by PAN + expiry taken from track 2; no track data, PIN block, KSN or MAC
    assert rev[2] == PAN and rev[14] == "2812"
    for number in (35, 52, 53, 55, 64, 128):
        assert number not in rev
    assert not m.missing_fields(rev)


def test_reversal_with_own_stan_response_and_advice():
    original = sale()
    approved = m.build_response(original, "00", {37: "532914000042", 38: "A1B2C3"})
    rev = m.build_reversal(original, "cancelled", response=approved, stan=77,
                           transmission=(2025, 11, 25, 14, 31, 0), advice=True)
    assert rev["mti"] == "0420" and rev[39] == "17"
    assert rev[11] == "000077" and rev[7] == "1125143100"
    assert rev[90][4:10] == "000042" and rev[90][10:20] == "1125143015"
    assert rev[37] == "532914000042" and rev[38] == "A1B2C3"


def test_reversal_of_an_authorization_and_a_repeat():
    auth = contactless_auth()
    assert m.build_reversal(auth, "error")[90][:4] == "0100"
    repeat = dict(sale(), mti="0201")
    assert m.build_reversal(repeat, "timeout")[90][:4] == "0200"


def test_reversal_refusals():
    with pytest.raises(LocalProtocolError):
        m.build_reversal(sale(), "because")
    with pytest.raises(LocalProtocolError):
        m.build_reversal(m.build_network("001", 1, UTC, TERMINAL), "timeout")
    original = sale()
    del original[7]
    with pytest.raises(LocalProtocolError):
        m.build_reversal(original, "timeout")


# ---------------------------------------------------------------- reconciliation

def test_reconciliation_totals_and_net_amount():
    recon = m.build_reconciliation(totals(), 48, UTC, TERMINAL, MERCHANT, EUR)
    assert recon["mti"] == "0500"
    assert recon[74] == "0000000002" and recon[76] == "0000000040"
    assert recon[77] == "0000000001" and recon[78] == "0000000003"
    assert recon[80] == "0000000005" and 79 not in recon and 81 not in recon
    assert recon[86] == "0000000000001500" and recon[88] == "0000000000123456"
    # (123456 - 1234) - (1500 - 0) = 120722 owed to the merchant
    assert recon[97] == "D0000000000120722"
    assert recon[50] == EUR
    assert not m.missing_fields(recon)


def test_reconciliation_net_credit_and_refusals():
    t = dict(totals(), credits_amount=200000)
    assert m.build_reconciliation(t, 1, UTC, TERMINAL)[97] == "C0000000000077778"  # 122222 - 200000
    zero = {k: 0 for k in ("credits_count", "credits_reversal_count", "debits_count",
                           "debits_reversal_count", "credits_amount",
                           "credits_reversal_amount", "debits_amount",
                           "debits_reversal_amount")}
    assert m.build_reconciliation(zero, 1, UTC, TERMINAL)[97] == "C" + "0" * 16
    for bad in (dict(totals(), refunds=1), {"debits_count": 1},
                dict(totals(), debits_amount=-1), dict(totals(), debits_count=10 ** 10)):
        with pytest.raises(LocalProtocolError):
            m.build_reconciliation(bad, 1, UTC, TERMINAL)


# ---------------------------------------------------------------- network, response

def test_network_request():
    msg = m.build_network(m.NETWORK_ECHO, 50, UTC, "T1")
    assert msg == {"mti": "0800", 7: "1125143015", 11: "000050", 41: "T1      ", 70: "301"}
    with pytest.raises(LocalProtocolError):
        m.build_network("999", 50, UTC, TERMINAL)


def test_build_response_echoes_but_never_card_data():
    request = sale()
    request[2] = PAN
    del request[35]
    response = m.build_response(request, "51")
    assert response["mti"] == "0210" and response[39] == "51"
    for number in (3, 4, 7, 11, 12, 13, 41, 42, 49):
        assert response[number] == request[number]
    for number in (2, 35, 52, 53, 55, 64):
        assert number not in response


def test_response_matches():
    request = sale()
    response = m.build_response(request, "00")
    assert m.response_matches(request, response)
    assert m.response_matches(request, {k: v for k, v in response.items() if k != 4})
    assert not m.response_matches(request, dict(response, mti="0230"))
    assert not m.response_matches(request, dict(response, mti="0200"))
    assert not m.response_matches(request, {**response, 11: "000043"})
    assert not m.response_matches(request, {**response, 41: "KAPOS002"})
    assert not m.response_matches(request, {**response, 4: "000000001235"})
    assert not m.response_matches(request, {k: v for k, v in response.items() if k != 11})
    assert not m.response_matches(response, response)
    repeat = dict(request, mti="0201")
    assert m.response_matches(repeat, response)


@pytest.mark.parametrize("name,message", every_mti(), ids=[s[0] for s in every_mti()])
def test_every_sample_has_its_required_fields_and_encodes(name, message):
    assert m.missing_fields(message) == ()
    assert decode(encode(message)) == message


def test_missing_fields():
    assert m.missing_fields({"mti": "0210", 11: "000001"}) == (3, 39, 41)
    assert m.missing_fields({"mti": "0999"}) == ()


# ---------------------------------------------------------------- field contents

def test_additional_amounts_round_trip():
    amounts = [("00", m.AMOUNT_LEDGER_BALANCE, EUR, 104500),
               ("00", m.AMOUNT_AVAILABLE_BALANCE, EUR, -2500)]
    text = m.format_additional_amounts(amounts)
    assert text == "0001978C000000104500" + "0002978D000000002500"
    assert m.parse_additional_amounts(text) == amounts
    assert m.balance_from({54: text}) == -2500
    assert m.balance_from({54: text[:20]}) == 104500
    assert m.balance_from({}) is None


@pytest.mark.parametrize("text,offset", [
    ("0001978C00000010450", 0), ("0001978X000000104500", 7), ("00A1978C000000104500", 0),
    ("0001978C00000010450A", 8), ("0001978C000000104500" + "0002978C00000000250A", 28),
])
def test_additional_amounts_rejections(text, offset):
    with pytest.raises(DecodeError) as info:
        m.parse_additional_amounts(text)
    assert (info.value.field, info.value.offset) == (54, offset)


def test_additional_amounts_refusals():
    with pytest.raises(LocalProtocolError):
        m.format_additional_amounts([("0", "01", EUR, 1)])
    with pytest.raises(LocalProtocolError):
        m.format_additional_amounts([("00", "01", EUR, 10 ** 12)])
    with pytest.raises(LocalProtocolError):
        m.format_additional_amounts([("00", "01", EUR, 1)] * 7)


def test_private_data_round_trip_and_rejections():
    text = m.pack_private([("TK", "TOKEN-0001"), ("TA", "CL0000123456")])
    assert text == "TK010TOKEN-0001TA012CL0000123456"
    assert m.unpack_private(text) == {"TK": "TOKEN-0001", "TA": "CL0000123456"}
    assert m.unpack_private("") == {}
    for bad, offset in (("TK01", 0), ("tk001x", 0), ("TK0x1x", 2), ("TK005abc", 0),
                        ("TK001aTK001b", 6)):
        with pytest.raises(DecodeError) as info:
            m.unpack_private(bad)
        assert (info.value.field, info.value.offset) == (48, offset)
    for bad in ([("T", "x")], [("TK", "a"), ("TK", "b")], [("TK", 5)], [("TK", "x" * 995)]):
        with pytest.raises(LocalProtocolError):
            m.pack_private(bad)


def test_original_data_refusals():
    with pytest.raises(LocalProtocolError):
        m.original_data("200", "000042", "1125143015")
    with pytest.raises(DecodeError):
        m.parse_original_data("0" * 41)


def test_time_formatting():
    assert m.format_transmission(UTC) == "1125143015"
    assert m.format_local_time(LOCAL) == "153015"
    assert m.format_local_date(LOCAL) == "1125"
    with pytest.raises(LocalProtocolError):
        m.format_transmission((2025, 11, 25, 24, 0, 0))
    with pytest.raises(LocalProtocolError):
        m.format_transmission(None)


def test_builders_do_not_touch_their_inputs():
    original = sale()
    snapshot = dict(original)
    m.build_reversal(original, "timeout")
    m.build_response(original, "00", {38: "ABC123"})
    assert original == snapshot
    assert MAC == original[64]
