"""The kapos-87 dialect (docs/protocol.md) as a pyiso8583 specification.

For anyone writing their own client or host with pyiso8583 (https://pypi.org/project/pyiso8583/):

    import iso8583
    from kapos_tools.pyiso8583_spec import KAPOS_87

    raw, _ = iso8583.encode(doc, KAPOS_87)        # doc: {"t": "0200", "3": "000000", ...}
    doc, _ = iso8583.decode(bytearray(raw), KAPOS_87)

Conventions of pyiso8583: keys are strings ("t" MTI, "p" primary and "1" secondary
bitmap, "2".."128" fields); binary fields (52, 53, 55, 64, 128) and the bitmaps are
upper- or lower-case hex strings in the dict, raw bytes on the wire. Everything else is
ASCII text: the value you give is exactly the bytes sent (no padding is added), so fixed
fields must already have their length ("%012d" % amount, terminal ids space-padded).

pyiso8583 checks lengths but not character classes (n, an, ans, z, x+n); the kapos codec
and the reference host do, so keep to the classes in docs/protocol.md section 2.
There is no message header. The file is plain data on purpose: copy it anywhere.
tests/unit/host/test_host_pyiso8583_spec.py proves it equivalent to kapos.host.spec.
"""


def _ascii(len_type, max_len, desc):
    return {"data_enc": "ascii", "len_enc": "ascii", "len_type": len_type,
            "max_len": max_len, "desc": desc}


def _binary(len_type, max_len, desc):
    return {"data_enc": "b", "len_enc": "ascii", "len_type": len_type,
            "max_len": max_len, "desc": desc}


FIXED, LLVAR, LLLVAR = 0, 2, 3

KAPOS_87 = {
    "h": _ascii(FIXED, 0, "Message Header (none)"),
    "t": _ascii(FIXED, 4, "Message Type Identifier"),
    "p": _binary(FIXED, 8, "Bitmap, Primary"),
    "1": _binary(FIXED, 8, "Bitmap, Secondary"),
    "2": _ascii(LLVAR, 19, "Primary account number (n..19)"),
    "3": _ascii(FIXED, 6, "Processing code (n6)"),
    "4": _ascii(FIXED, 12, "Amount, transaction (n12)"),
    "7": _ascii(FIXED, 10, "Transmission date and time (n10, MMDDhhmmss UTC)"),
    "11": _ascii(FIXED, 6, "Systems trace audit number (n6)"),
    "12": _ascii(FIXED, 6, "Time, local transaction (n6)"),
    "13": _ascii(FIXED, 4, "Date, local transaction (n4)"),
    "14": _ascii(FIXED, 4, "Date, expiration (n4)"),
    "22": _ascii(FIXED, 3, "POS entry mode (n3)"),
    "23": _ascii(FIXED, 3, "Card sequence number (n3)"),
    "24": _ascii(FIXED, 3, "Network international identifier (n3)"),
    "25": _ascii(FIXED, 2, "POS condition code (n2)"),
    "35": _ascii(LLVAR, 37, "Track 2 data (z..37)"),
    "37": _ascii(FIXED, 12, "Retrieval reference number (an12)"),
    "38": _ascii(FIXED, 6, "Authorization identification response (an6)"),
    "39": _ascii(FIXED, 2, "Response code (an2)"),
    "41": _ascii(FIXED, 8, "Card acceptor terminal identification (ans8)"),
    "42": _ascii(FIXED, 15, "Card acceptor identification code (ans15)"),
    "48": _ascii(LLLVAR, 999, "Additional data, private: kapos TLV (ans...999)"),
    "49": _ascii(FIXED, 3, "Currency code, transaction (n3)"),
    "50": _ascii(FIXED, 3, "Currency code, settlement (n3)"),
    "52": _binary(FIXED, 16, "PIN data: ISO 9564 format 4 block (b16)"),
    "53": _binary(LLVAR, 16, "Security related control information: DUKPT KSN (b..16)"),
    "54": _ascii(LLLVAR, 120, "Additional amounts (an...120)"),
    "55": _binary(LLLVAR, 255, "ICC data (b...255)"),
    "64": _binary(FIXED, 8, "Message authentication code (b8)"),
    "70": _ascii(FIXED, 3, "Network management information code (n3)"),
    "74": _ascii(FIXED, 10, "Credits, number (n10)"),
    "75": _ascii(FIXED, 10, "Credits, reversal number (n10)"),
    "76": _ascii(FIXED, 10, "Debits, number (n10)"),
    "77": _ascii(FIXED, 10, "Debits, reversal number (n10)"),
    "78": _ascii(FIXED, 10, "Transfer, number (n10)"),
    "79": _ascii(FIXED, 10, "Transfer, reversal number (n10)"),
    "80": _ascii(FIXED, 10, "Inquiries, number (n10)"),
    "81": _ascii(FIXED, 10, "Authorizations, number (n10)"),
    "86": _ascii(FIXED, 16, "Credits, amount (n16)"),
    "87": _ascii(FIXED, 16, "Credits, reversal amount (n16)"),
    "88": _ascii(FIXED, 16, "Debits, amount (n16)"),
    "89": _ascii(FIXED, 16, "Debits, reversal amount (n16)"),
    "90": _ascii(FIXED, 42, "Original data elements (n42)"),
    "97": _ascii(FIXED, 17, "Amount, net settlement (x+n16: C or D + 16 digits)"),
    "128": _binary(FIXED, 8, "Message authentication code (b8)"),
}
