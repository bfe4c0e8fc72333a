"""Realistic sample messages for the kapos.host tests (one per MTI of the dialect).

Card data is test data: 4761739001010010 is a Visa test PAN used by EMV test card sets.
"""

from kapos.host import messages as m
from kapos.host.codec import mac_field

UTC = (2025, 11, 25, 14, 30, 15, 1, 329)
LOCAL = (2025, 11, 25, 15, 30, 15, 1, 329)
TERMINAL = "KAPOS001"
MERCHANT = "KAPOS-SHOP-01"
EUR = "978"
PAN = "4761739001010010"
TRACK2 = "4761739001010010=28122011143804400000"  # 37 characters, the field maximum
PIN_BLOCK = bytes.fromhex("8a3b7c1f22d9e04b5a6c7d8e9f012345")  # ISO 9564 format 4, 16 bytes
KSN = bytes.fromhex("123456789012345600000001")  # AES DUKPT KSN, 12 bytes
MAC = bytes.fromhex("0123456789abcdef")
# EMV contactless ICC data (BER-TLV): ARQC, CID, IAD, UN, ATC, TVR, date, type, amount,
# currency, AIP, country, terminal capabilities.
ICC = bytes.fromhex(
    "9f26088f1a2b3c4d5e6f70"
    "9f270180"
    "9f100706010a03a00000"
    "9f37041a2b3c4d"
    "9f36020001"
    "95050000000000"
    "9a03251125"
    "9c0100"
    "9f0206000000001234"
    "5f2a020978"
    "82022000"
    "9f1a020250"
    "9f3303e0f8c8"
)


def sale(**overrides):
    """A swiped sale with online PIN and a MAC (0200)."""
    args = dict(txn_type="sale", amount=1234, stan=42, transmission=UTC, local=LOCAL,
                terminal_id=TERMINAL, merchant_id=MERCHANT, currency=EUR, track2=TRACK2,
                pin_block=PIN_BLOCK, ksn=KSN)
    args.update(overrides)
    message = m.build_financial_request(**args)
    message[64] = MAC
    return message


def contactless_auth():
    """A contactless EMV authorization (0100) with ICC data."""
    return m.build_financial_request(
        "sale", 1234, 43, UTC, LOCAL, TERMINAL, MERCHANT, EUR, track2=TRACK2,
        pan_entry=m.ENTRY_CONTACTLESS_CHIP, icc=ICC, mti=m.MTI_AUTH_REQUEST, ksn=KSN)


def manual_refund():
    return m.build_financial_request(
        "refund", 500, 44, UTC, LOCAL, TERMINAL, MERCHANT, EUR, pan=PAN, expiry="2812",
        pan_entry=m.ENTRY_MANUAL, pin_capable=False)


def balance():
    return m.build_financial_request(
        "balance", None, 45, UTC, LOCAL, TERMINAL, MERCHANT, EUR, track2=TRACK2,
        pin_block=PIN_BLOCK, ksn=KSN)


def transfer():
    return m.build_financial_request(
        "transfer", 2500, 46, UTC, LOCAL, TERMINAL, MERCHANT, EUR, track2=TRACK2,
        pin_block=PIN_BLOCK, ksn=KSN,
        private={m.PRIVATE_TRANSFER_TARGET: "CL0000123456", m.PRIVATE_FEE: "000000000010"})


def totals():
    return {"credits_count": 2, "credits_amount": 1500, "credits_reversal_count": 0,
            "credits_reversal_amount": 0, "debits_count": 40, "debits_amount": 123456,
            "debits_reversal_count": 1, "debits_reversal_amount": 1234,
            "transfer_count": 3, "inquiries_count": 5}


def every_mti():
    """[(name, message)] covering every MTI of the dialect, with realistic fields."""
    s = sale()
    approved = m.build_response(s, "00", {37: "532914000042", 38: "A1B2C3", 64: MAC})
    auth = contactless_auth()
    auth_resp = m.build_response(auth, "00", {37: "532914000043", 38: "123456",
                                              55: bytes.fromhex("910a1122334455667788990a")})
    bal = balance()
    bal_resp = m.build_response(bal, "00", {54: m.format_additional_amounts(
        [("00", m.AMOUNT_LEDGER_BALANCE, EUR, 104500),
         ("00", m.AMOUNT_AVAILABLE_BALANCE, EUR, -2500)])})
    advice = dict(manual_refund(), mti="0220")  # as another terminal sends it (kapos sends none)
    advice.update({38: "OFF001", 39: "00"})
    reversal = m.build_reversal(s, "timeout", stan=47, transmission=UTC)
    reversal[mac_field(reversal)] = MAC  # 128: field 90 needs the secondary bitmap
    rev_advice = m.build_reversal(s, "cancelled", response=approved, advice=True)
    recon = m.build_reconciliation(totals(), 48, UTC, TERMINAL, MERCHANT, EUR)
    recon[128] = MAC
    sign_on = m.build_network(m.NETWORK_SIGN_ON, 49, UTC, TERMINAL)
    echo = m.build_network(m.NETWORK_ECHO, 50, UTC, TERMINAL)
    return [
        ("0100 contactless", auth),
        ("0110 approved", auth_resp),
        ("0200 sale", s),
        ("0210 approved", approved),
        ("0200 refund manual", manual_refund()),
        ("0200 balance", bal),
        ("0210 balance", bal_resp),
        ("0200 transfer", transfer()),
        ("0210 declined", m.build_response(transfer(), "51")),
        ("0220 advice", advice),
        ("0230", m.build_response(advice, "00")),
        ("0400 reversal", reversal),
        ("0410", m.build_response(reversal, "00")),
        ("0420 reversal advice", rev_advice),
        ("0430", m.build_response(rev_advice, "00")),
        ("0500 reconciliation", recon),
        ("0510", m.build_response(recon, "00", {128: MAC})),
        ("0800 sign-on", sign_on),
        ("0810 sign-on", m.build_response(sign_on, "00")),
        ("0800 echo", echo),
        ("0810 echo", m.build_response(echo, "00")),
    ]
