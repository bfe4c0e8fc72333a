"""The ISO 8583 messages of a sale and a settlement, as a terminal sends and checks them:
the 0200/0100 financial request, the 0500 reconciliation, the reply checks (MTI, STAN,
terminal id, amount), response texts, the STAN counter and the field formats they use.

`kapos.host.messages` re-exports all of it beside the rest of the message set
(reversals, advices, network management, alerts, responses, field 54 and 90); a Pico W
imports only this module (docs/pico.md, Memory). Conventions, field lists and time
tuples: see `kapos.host.messages`."""

from kapos import txn_types
from kapos.errors import LocalProtocolError
from kapos.host import private48
from kapos.host.codec import MTI

# ---- message type identifiers (ISO 8583:1987, version 0) ----
MTI_AUTH_REQUEST = "0100"
MTI_AUTH_RESPONSE = "0110"
MTI_FINANCIAL_REQUEST = "0200"
MTI_FINANCIAL_RESPONSE = "0210"
MTI_RECONCILIATION_REQUEST = "0500"
MTI_RECONCILIATION_RESPONSE = "0510"

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
    # strip() leaves nothing exactly when every character is an ASCII digit (one C call)
    return type(text) is str and text != "" and not text.strip("0123456789")


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


pack_private = private48.pack  # field 48 codec and tags: kapos.host.private48
unpack_private = private48.unpack


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
