"""The terminal's ISO 8583 message set: MTIs, codes and small pure builders.

Builders return message dicts for `kapos.host.codec.encode`. They take everything they
need as arguments (STAN, time tuples, ids): no clock, no counters, no I/O. They check the
meaning of their arguments (LocalProtocolError); `encode` checks every field's format.
MACs are added afterwards by the security layer (`codec.mac_field`, `codec.with_mac`).

Time arguments are tuples (year, month, day, hour, minute, second, ...) as returned by
`time.gmtime()` / `time.localtime()` on CPython and MicroPython: `transmission` is UTC
(field 7), `local` is the terminal's local time (fields 12 and 13).

Fixed-length ans identifiers (terminal id, merchant id) are right-padded with spaces by
the builders; everything else must already have its exact length.

Fields per message (M mandatory, C conditional, E echoed from the request)
    0100/0200  M 3 7 11 12 13 22 25 41 42 49; C 4 (not for balance), 35 or 2+14,
               24, 48, 52+53, 53, 55; MAC 64
    0110/0210  M 3 11 39 41; E 4 7 12 13 24 42 49; C 37 38 (approved), 54 (balance),
               55 (issuer data); MAC 64
    0220       M 3 4 7 11 12 13 22 25 39 41 42 49; C 2 14 38 48 55; MAC 64
    0230       M 11 39 41; E 3 4 7 12 13 42 49
    0400/0420  M 3 7 11 39 (reason) 41 90; C 2 4 12 13 14 22 25 37 38 42 48 49; MAC 128
    0410/0430  M 11 39 41; E 3 4 7 12 13 42 49 90
    0500       M 7 11 41 74 75 76 77 86 87 88 89 97; C 42 50 78 79 80 81; MAC 128
    0510       M 11 39 41; E 7 42 50
    0800/0810  M 7 11 41 70 (+39 in 0810); C 48 (SV version, ST self-test) in 0800
A reversal or advice never carries track 2 (35), the PIN block (52) or the KSN (53).
"""

from kapos.errors import DecodeError, LocalProtocolError
from kapos import txn_types
from kapos.host import private48
from kapos.host.codec import MTI

# ---- message type identifiers (ISO 8583:1987, version 0) ----
MTI_AUTH_REQUEST = "0100"
MTI_AUTH_RESPONSE = "0110"
MTI_FINANCIAL_REQUEST = "0200"
MTI_FINANCIAL_RESPONSE = "0210"
MTI_ADVICE = "0220"
MTI_ADVICE_RESPONSE = "0230"
MTI_REVERSAL_REQUEST = "0400"
MTI_REVERSAL_RESPONSE = "0410"
MTI_REVERSAL_ADVICE = "0420"
MTI_REVERSAL_ADVICE_RESPONSE = "0430"
MTI_RECONCILIATION_REQUEST = "0500"
MTI_RECONCILIATION_RESPONSE = "0510"
MTI_NETWORK_REQUEST = "0800"
MTI_NETWORK_RESPONSE = "0810"

REQUEST_MTIS = ("0100", "0200", "0220", "0400", "0420", "0500", "0620", "0800")
RESPONSE_MTIS = ("0110", "0210", "0230", "0410", "0430", "0510", "0630", "0810")
MTI_ALERT = "0620"  # administrative advice: a terminal's anomaly alert (48 AR rule, AD detail)
PRIVATE_ALERT_RULE = private48.ALERT_RULE
PRIVATE_ALERT_DETAIL = private48.ALERT_DETAIL

# ---- field 3, processing code: transaction type (2) + from account (2) + to account (2) ----
# The type's two digits come from its row in kapos.txn_types (00 sale, 01 cash, 02 void,
# 20 refund, 22 void of a refund, 31 balance, 40 transfer, ...).
ACCOUNT_DEFAULT = "00"
ACCOUNT_SAVINGS = "10"
ACCOUNT_CHECKING = "20"
ACCOUNT_CREDIT = "30"

# ---- field 22, POS entry mode: PAN entry mode (2 digits) + PIN entry capability (1) ----
ENTRY_UNKNOWN = "00"
ENTRY_MANUAL = "01"
ENTRY_MAGSTRIPE = "02"
ENTRY_CONTACTLESS_CHIP = "07"  # network convention (after 1987)
ENTRY_CONTACTLESS_MAGSTRIPE = "91"  # network convention (after 1987)
ENTRY_FALLBACK = "80"  # magnetic stripe read after the chip failed (network convention, after 1987)
PIN_CAPABLE = "1"
PIN_NOT_CAPABLE = "2"

# ---- field 25, POS condition code ----
CONDITION_NORMAL = "00"
CONDITION_CUSTOMER_NOT_PRESENT = "01"
CONDITION_UNATTENDED = "02"

# ---- field 70, network management information code ----
NETWORK_SIGN_ON = "001"
NETWORK_SIGN_OFF = "002"
NETWORK_KEY_CHANGE = "101"
NETWORK_CUTOVER = "201"
NETWORK_ECHO = "301"
NETWORK_CODES = (NETWORK_SIGN_ON, NETWORK_SIGN_OFF, NETWORK_KEY_CHANGE, NETWORK_CUTOVER,
                 NETWORK_ECHO)

# ---- field 39, response codes (ISO 8583:1987) with short texts for a 21-column screen ----
APPROVED = "00"
RESPONSE_TEXTS = {
    "00": "Approved",
    "01": "Refer to issuer",
    "03": "Invalid merchant",
    "04": "Pick up card",
    "05": "Do not honour",
    "06": "Error",
    "08": "Approved with ID",
    "12": "Invalid transaction",
    "13": "Invalid amount",
    "14": "Invalid card number",
    "15": "No such issuer",
    "17": "Customer cancelled",
    "19": "Re-enter transaction",
    "25": "Record not found",
    "30": "Format error",
    "41": "Lost card",
    "43": "Stolen card",
    "51": "Insufficient funds",
    "54": "Expired card",
    "55": "Incorrect PIN",
    "57": "Not permitted (card)",
    "58": "Not permitted (term)",
    "61": "Exceeds amount limit",
    "62": "Restricted card",
    "63": "Security violation",
    "65": "Exceeds usage limit",
    "68": "Response too late",
    "75": "PIN tries exceeded",
    "91": "Issuer unavailable",
    "92": "Routing error",
    "94": "Duplicate transaction",
    "96": "System malfunction",
}
# 08 is an approval ("honour with identification"); no partial approvals (10) are
# requested by this terminal, so any other code is a decline.
APPROVED_CODES = ("00", "08")

# Field 39 of a reversal (0400/0420) says why the terminal reverses.
REVERSAL_REASONS = {
    "timeout": "68",  # no (valid) response in time: response received too late
    "cancelled": "17",  # customer cancellation
    "error": "06",  # terminal error after approval (printer, card removed, bad MAC)
}

# ---- fields a message must carry (the codec checks formats, this checks presence) ----
REQUIRED_FIELDS = {
    "0100": (3, 7, 11, 12, 13, 22, 25, 41, 42, 49),
    "0110": (3, 11, 39, 41),
    "0200": (3, 7, 11, 12, 13, 22, 25, 41, 42, 49),
    "0210": (3, 11, 39, 41),
    "0220": (3, 4, 7, 11, 12, 13, 22, 25, 39, 41, 42, 49),
    "0230": (11, 39, 41),
    "0400": (3, 7, 11, 39, 41, 90),
    "0410": (11, 39, 41),
    "0420": (3, 7, 11, 39, 41, 90),
    "0430": (11, 39, 41),
    "0500": (7, 11, 41, 74, 75, 76, 77, 86, 87, 88, 89, 97),
    "0510": (11, 39, 41),
    "0620": (7, 11, 41, 48),
    "0630": (11, 39, 41),
    "0800": (7, 11, 41, 70),
    "0810": (11, 39, 41, 70),
}

# Request fields a response echoes (build_response) - never card data, PIN or MAC.
ECHO_FIELDS = (3, 4, 7, 11, 12, 13, 24, 41, 42, 49, 50, 70, 90)

# Fields copied from a request into its reversal (card data other than the PAN and
# expiry, PIN, KSN and MAC are never copied). The terminal sends no 0220 advice (it
# decides nothing offline); the reference host answers other terminals' advices.
_COPIED_FIELDS = (2, 3, 4, 12, 13, 14, 22, 24, 25, 41, 42, 48, 49)

# Reconciliation totals: key -> (field, digits). Counts are n10, amounts n16.
TOTALS_FIELDS = {
    "credits_count": (74, 10),
    "credits_reversal_count": (75, 10),
    "debits_count": (76, 10),
    "debits_reversal_count": (77, 10),
    "transfer_count": (78, 10),
    "transfer_reversal_count": (79, 10),
    "inquiries_count": (80, 10),
    "authorizations_count": (81, 10),
    "credits_amount": (86, 16),
    "credits_reversal_amount": (87, 16),
    "debits_amount": (88, 16),
    "debits_reversal_amount": (89, 16),
}
_MANDATORY_TOTALS = ("credits_count", "credits_reversal_count", "debits_count",
                     "debits_reversal_count", "credits_amount", "credits_reversal_amount",
                     "debits_amount", "debits_reversal_amount")

# ---- field 54, additional amounts: 20-character blocks ----
AMOUNT_LEDGER_BALANCE = "01"
AMOUNT_AVAILABLE_BALANCE = "02"
AMOUNT_FEE = "42"

# ---- field 48, kapos private data: TAG (2 chars A-Z0-9) LLL (3 digits) VALUE ----
# ---- field 48, kapos private data: tags, codec and checks in kapos.host.private48 ----
PRIVATE_TRANSFER_TARGET = private48.TRANSFER_TARGET
PRIVATE_FEE = private48.FEE
PRIVATE_TOKEN = private48.TOKEN


# ---------------------------------------------------------------- small helpers

def _digits(value, size, what):
    """`value` (int >= 0) as exactly `size` digits."""
    if type(value) is not int or value < 0 or value >= 10 ** size:
        raise LocalProtocolError("%s must be an int from 0 to %d digits" % (what, size))
    return ("%0" + str(size) + "d") % value


def _pad(value, size, what):
    """A fixed ans identifier right-padded with spaces."""
    if type(value) is not str or not 0 < len(value) <= size:
        raise LocalProtocolError("%s must be a str of 1 to %d characters" % (what, size))
    return value + " " * (size - len(value))


def _is_digits(text):
    if type(text) is not str or not text:
        return False
    for c in text:
        if c not in "0123456789":
            return False
    return True


def format_transmission(t):
    """Field 7 MMDDhhmmss from a UTC time tuple."""
    _check_time(t)
    return "%02d%02d%02d%02d%02d" % (t[1], t[2], t[3], t[4], t[5])


def format_local_time(t):
    """Field 12 hhmmss from a local time tuple."""
    _check_time(t)
    return "%02d%02d%02d" % (t[3], t[4], t[5])


def format_local_date(t):
    """Field 13 MMDD from a local time tuple."""
    _check_time(t)
    return "%02d%02d" % (t[1], t[2])


def _check_time(t):
    try:
        ok = 1 <= t[1] <= 12 and 1 <= t[2] <= 31 and 0 <= t[3] <= 23 and 0 <= t[4] <= 59 \
            and 0 <= t[5] <= 60
    except (TypeError, IndexError):
        ok = False
    if not ok:
        raise LocalProtocolError("a time is a tuple (year, month, day, hour, minute, second)")


def stan_text(stan):
    """A STAN as field 11: int 1..999999 or a 6-digit str."""
    if type(stan) is str:
        if len(stan) == 6 and _is_digits(stan) and stan != "000000":
            return stan
    elif type(stan) is int and 1 <= stan <= 999999:
        return "%06d" % stan
    raise LocalProtocolError("a STAN is 000001..999999")


def next_stan(last):
    """The STAN after `last` (int or 6-digit str): 999999 wraps to 1; 0 means none yet."""
    if type(last) is str and len(last) == 6 and _is_digits(last):
        last = int(last)
    if type(last) is not int or not 0 <= last <= 999999:
        raise LocalProtocolError("a STAN is 000000..999999")
    return 1 if last >= 999999 else last + 1


class Stan:
    """The STAN counter as a value: `Stan(last).next()` -> "000042" and advances.

    Persisting `last` (before the message is sent) is the caller's job.
    """

    def __init__(self, last=0):
        next_stan(last)  # validates
        self.last = int(last)

    def next(self):
        self.last = next_stan(self.last)
        return "%06d" % self.last

    def __repr__(self):
        return "Stan(%06d)" % self.last


def processing_code(txn_type, from_account=ACCOUNT_DEFAULT, to_account=ACCOUNT_DEFAULT):
    """Field 3 for a transaction type ('sale', 'cash', 'refund', ...) and account types."""
    row = txn_types.get(txn_type) if type(txn_type) is str else None
    if row is None:
        raise LocalProtocolError("unknown transaction type %s" % txn_type)
    code = row["code"] + "0000"
    for account in (from_account, to_account):
        if type(account) is not str or len(account) != 2 or not _is_digits(account):
            raise LocalProtocolError("an account type is 2 digits")
    return code[:2] + from_account + to_account


def pos_entry_mode(pan_entry, pin_capable=True):
    """Field 22 from a PAN entry mode (ENTRY_*) and the terminal's PIN capability."""
    if type(pan_entry) is not str or len(pan_entry) != 2 or not _is_digits(pan_entry):
        raise LocalProtocolError("a PAN entry mode is 2 digits")
    return pan_entry + (PIN_CAPABLE if pin_capable else PIN_NOT_CAPABLE)


def response_text(code):
    """A short text for a field 39 response code (unknown codes included)."""
    text = RESPONSE_TEXTS.get(code)
    if text is None:
        return "Declined (%s)" % code if type(code) is str and len(code) == 2 else "Declined"
    return text


def is_approved(code):
    return code in APPROVED_CODES


def response_mti(mti):
    """The MTI answering a request or advice MTI: 0200 -> 0210, 0220/0221 -> 0230."""
    if type(mti) is not str or len(mti) != 4 or not _is_digits(mti) or mti[2] not in "02":
        raise LocalProtocolError("not a request or advice MTI")
    return mti[:2] + ("1" if mti[2] == "0" else "3") + "0"


def repeat_mti(mti):
    """The repeat of a request MTI: 0400 -> 0401, 0220 -> 0221 (same response MTI)."""
    response_mti(mti)  # validates
    if mti[3] != "0":
        raise LocalProtocolError("MTI %s is already a repeat" % mti)
    return mti[:3] + "1"


def missing_fields(message):
    """Required fields (REQUIRED_FIELDS) absent from `message`, as a tuple."""
    required = REQUIRED_FIELDS.get(message.get(MTI), ())
    return tuple(n for n in required if n not in message)


# ---------------------------------------------------------------- field contents

def original_data(mti, stan, transmission, acquirer="00000000000",
                  forwarding="00000000000"):
    """Field 90: original MTI n4, STAN n6, transmission date/time n10, acquiring and
    forwarding institution ids n11 each (zero-filled when unused)."""
    parts = (mti, stan, transmission, acquirer, forwarding)
    sizes = (4, 6, 10, 11, 11)
    for part, size in zip(parts, sizes):
        if type(part) is not str or len(part) != size or not _is_digits(part):
            raise LocalProtocolError("field 90 needs n4 n6 n10 n11 n11")
    return "".join(parts)


def parse_original_data(text):
    """Field 90 -> (mti, stan, transmission, acquirer, forwarding)."""
    if type(text) is not str or len(text) != 42 or not _is_digits(text):
        raise DecodeError("original data elements are 42 digits", 90, 0)
    return text[:4], text[4:10], text[10:20], text[20:31], text[31:42]


pack_private = private48.pack  # field 48 codec and tags: kapos.host.private48
unpack_private = private48.unpack


def format_additional_amounts(amounts):
    """Field 54 from [(account type, amount type, currency, signed amount int)]: blocks of
    account type n2, amount type n2, currency n3, sign C/D, amount n12 (C when >= 0)."""
    out = []
    for account, kind, currency, amount in amounts:
        for part, size in ((account, 2), (kind, 2), (currency, 3)):
            if type(part) is not str or len(part) != size or not _is_digits(part):
                raise LocalProtocolError("field 54: account n2, amount type n2, currency n3")
        if type(amount) is not int:
            raise LocalProtocolError("field 54: an amount is an int")
        sign = "C" if amount >= 0 else "D"
        out.append(account + kind + currency + sign + _digits(abs(amount), 12, "field 54 amount"))
    if len(out) > 6:
        raise LocalProtocolError("field 54 holds at most 6 amounts")
    return "".join(out)


def parse_additional_amounts(text):
    """Field 54 -> [(account type, amount type, currency, signed amount int)].
    DecodeError offsets are within the field's value."""
    if type(text) is not str:
        raise DecodeError("additional amounts are text", 54, 0)
    if len(text) % 20:
        raise DecodeError("additional amounts are 20-character blocks", 54, len(text) - len(text) % 20)
    result = []
    for pos in range(0, len(text), 20):
        block = text[pos:pos + 20]
        if not _is_digits(block[:7]):
            raise DecodeError("bad additional amount header", 54, pos)
        if block[7] not in ("C", "D"):
            raise DecodeError("additional amount sign is not C or D", 54, pos + 7)
        if not _is_digits(block[8:]):
            raise DecodeError("additional amount is not 12 digits", 54, pos + 8)
        amount = int(block[8:])
        result.append((block[:2], block[2:4], block[4:7], amount if block[7] == "C" else -amount))
    return result


def balance_from(response):
    """The available (else ledger) balance in field 54 of a response, as a signed int, or
    None when there is none."""
    if 54 not in response:
        return None
    found = {}
    for account, kind, currency, amount in parse_additional_amounts(response[54]):
        found.setdefault(kind, amount)
    if AMOUNT_AVAILABLE_BALANCE in found:
        return found[AMOUNT_AVAILABLE_BALANCE]
    return found.get(AMOUNT_LEDGER_BALANCE)


def _card_from_track2(track2):
    """(PAN, expiry or None) from field 35 data: PAN up to the separator, YYMM after it."""
    pos = 0
    while pos < len(track2) and track2[pos] in "0123456789":
        pos += 1
    pan = track2[:pos]
    expiry = track2[pos + 1:pos + 5]
    if not pan:
        raise LocalProtocolError("track 2 data has no PAN")
    return pan, (expiry if len(expiry) == 4 and _is_digits(expiry) else None)


# ---------------------------------------------------------------- builders

def build_financial_request(txn_type, amount, stan, transmission, local, terminal_id,
                            merchant_id, currency, pan=None, expiry=None, track2=None,
                            pan_entry=ENTRY_MAGSTRIPE, pin_capable=True,
                            condition=CONDITION_NORMAL, pin_block=None, ksn=None, icc=None,
                            private=None, nii=None, mti=MTI_FINANCIAL_REQUEST,
                            from_account=ACCOUNT_DEFAULT, to_account=ACCOUNT_DEFAULT):
    """A 0200 (or 0100 with mti=MTI_AUTH_REQUEST) for one transaction.

    amount: int in minor units (None only for a type whose row asks for none - a balance,
    a release - which then omits field 4).
    Card: `track2` (swipe, or contactless track 2 equivalent) or `pan` with `expiry`
    (manual entry); not both. `icc` is field 55 (EMV contactless), `pin_block` field 52
    (needs `ksn`, field 53; `ksn` alone is fine for a MACed message without PIN).
    `private` is field 48 as a str or a {tag: value} dict (pack_private).
    """
    if mti not in (MTI_FINANCIAL_REQUEST, MTI_AUTH_REQUEST):
        raise LocalProtocolError("a financial request is 0200 or 0100")
    message = {MTI: mti, 3: processing_code(txn_type, from_account, to_account)}
    if amount is None:
        row = txn_types.get(txn_type)
        if row is None or row["amount"] or row["posting"] == "void":
            raise LocalProtocolError("a %s needs an amount" % txn_type)
    else:
        if type(amount) is not int or amount <= 0:
            raise LocalProtocolError("the amount must be a positive int (minor units)")
        message[4] = _digits(amount, 12, "amount")
    if (track2 is None) == (pan is None):
        raise LocalProtocolError("give either track 2 data or a PAN, not both or none")
    if track2 is not None:
        if expiry is not None:
            raise LocalProtocolError("the expiry comes from track 2 data")
        message[35] = track2
    else:
        message[2] = pan
        if expiry is not None:
            message[14] = expiry
    message[7] = format_transmission(transmission)
    message[11] = stan_text(stan)
    message[12] = format_local_time(local)
    message[13] = format_local_date(local)
    message[22] = pos_entry_mode(pan_entry, pin_capable)
    if nii is not None:
        message[24] = nii
    message[25] = condition
    message[41] = _pad(terminal_id, 8, "terminal id")
    message[42] = _pad(merchant_id, 15, "merchant id")
    if private is not None:
        message[48] = pack_private(private) if isinstance(private, dict) else private
    message[49] = currency
    if pin_block is not None:
        if ksn is None:
            raise LocalProtocolError("a PIN block needs its KSN (field 53)")
        message[52] = pin_block
    if ksn is not None:
        message[53] = ksn
    if icc is not None:
        message[55] = icc
    return message


def _derived(original, mti, stan, transmission, allowed):
    """Fields of a reversal / advice copied from `original` (a 0100/0200 dict)."""
    if type(original) is not dict or original.get(MTI) not in allowed:
        raise LocalProtocolError("%s cannot be built from that message" % mti)
    message = {MTI: mti}
    for number in _COPIED_FIELDS:
        if number in original:
            message[number] = original[number]
    if 2 not in message and 35 in original:
        pan, expiry = _card_from_track2(original[35])
        message[2] = pan
        if expiry is not None and 14 not in message:
            message[14] = expiry
    message[7] = original[7] if transmission is None else format_transmission(transmission)
    message[11] = original[11] if stan is None else stan_text(stan)
    return message


def build_reversal(original, reason, response=None, stan=None, transmission=None,
                   advice=False):
    """A 0400 reversal request (0420 reversal advice with advice=True) of `original`.

    reason: a REVERSAL_REASONS key ('timeout', 'cancelled', 'error') or a 2-character
    response code; it goes in field 39. Field 90 carries the original MTI, STAN and
    transmission date/time with zero-filled institution ids. The card is identified by
    PAN and expiry only (from field 2/14, else extracted from track 2): no track data,
    PIN block or ICC data is ever copied. With the original's `response` (if one came),
    its RRN (37) and authorization code (38) are included. `stan` / `transmission`
    default to the original's (a terminal that gives reversals their own STAN passes one).
    """
    code = REVERSAL_REASONS.get(reason, reason)
    if type(code) is not str or len(code) != 2:
        raise LocalProtocolError("unknown reversal reason")
    mti = MTI_REVERSAL_ADVICE if advice else MTI_REVERSAL_REQUEST
    for number in (7, 11):
        if type(original) is dict and number not in original:
            raise LocalProtocolError("the original has no field %d" % number)
    message = _derived(original, mti, stan, transmission,
                       (MTI_FINANCIAL_REQUEST, MTI_AUTH_REQUEST, MTI_ADVICE, "0201", "0101",
                        "0221"))
    if response is not None:
        for number in (37, 38):
            if number in response:
                message[number] = response[number]
    message[39] = code
    message[90] = original_data(original[MTI][:3] + "0", original[11], original[7])
    return message


def build_reconciliation(totals, stan, transmission, terminal_id, merchant_id=None,
                         currency=None):
    """A 0500 reconciliation request for a batch.

    totals: dict of TOTALS_FIELDS keys to ints. Counts and amounts of credits, debits
    and their reversals are mandatory; transfer / inquiry / authorization counts are
    optional. Debits are transactions that debit the cardholder (sale, cash, transfer),
    credits those that credit it (refund); voids count as reversals of what they void.
    Field 97 = (debits - debit reversals) - (credits - credit reversals), sign "D" when
    positive (net owed to the merchant), else "C".
    """
    if type(totals) is not dict:
        raise LocalProtocolError("totals is a dict")
    for key in totals:
        if key not in TOTALS_FIELDS:
            raise LocalProtocolError("unknown total %s" % key)
    for key in _MANDATORY_TOTALS:
        if key not in totals:
            raise LocalProtocolError("missing total %s" % key)
    message = {MTI: MTI_RECONCILIATION_REQUEST, 7: format_transmission(transmission),
               11: stan_text(stan), 41: _pad(terminal_id, 8, "terminal id")}
    if merchant_id is not None:
        message[42] = _pad(merchant_id, 15, "merchant id")
    if currency is not None:
        message[50] = currency
    for key in totals:
        number, size = TOTALS_FIELDS[key]
        message[number] = _digits(totals[key], size, key)
    net = (totals["debits_amount"] - totals["debits_reversal_amount"]) \
        - (totals["credits_amount"] - totals["credits_reversal_amount"])
    message[97] = ("D" if net > 0 else "C") + _digits(abs(net), 16, "net settlement amount")
    return message


def build_network(code, stan, transmission, terminal_id, private=None):
    """A 0800 network management request: sign-on (001), echo (301), key change (101)...
    `private`: field 48 items, e.g. {SV: version, ST: self-test} (private48)."""
    if code not in NETWORK_CODES:
        raise LocalProtocolError("unknown network management code")
    message = {MTI: MTI_NETWORK_REQUEST, 7: format_transmission(transmission),
               11: stan_text(stan), 41: _pad(terminal_id, 8, "terminal id"), 70: code}
    if private:
        message[48] = pack_private(private) if isinstance(private, dict) else private
    return message


def build_alert(rule, detail, stan, transmission, terminal_id):
    """A 0620 administrative advice carrying one anomaly alert of the terminal."""
    private = pack_private([(PRIVATE_ALERT_RULE, str(rule)[:40]), (PRIVATE_ALERT_DETAIL, str(detail)[:200])])
    return {MTI: MTI_ALERT, 7: format_transmission(transmission), 11: stan_text(stan),
            41: _pad(terminal_id, 8, "terminal id"), 48: private}


def build_response(request, response_code, fields=None):
    """The response to `request` (for the reference host and tests): response MTI, the
    ECHO_FIELDS the request has, field 39, plus `fields` (e.g. {37: rrn, 38: code})."""
    message = {MTI: response_mti(request.get(MTI))}
    for number in ECHO_FIELDS:
        if number in request:
            message[number] = request[number]
    message[39] = response_code
    if fields:
        message.update(fields)
    return message


def response_matches(request, response):
    """True when `response` answers `request`: the response MTI (0200 -> 0210), the same
    STAN (11) and terminal id (41), and the same amount (4) if the response carries one.
    A response that does not match counts as no response."""
    try:
        expected = response_mti(request.get(MTI))
    except LocalProtocolError:
        return False
    if response.get(MTI) != expected:
        return False
    for number in (11, 41):
        if number not in request or response.get(number) != request[number]:
            return False
    if 4 in response and response[4] != request.get(4):
        return False
    return True
