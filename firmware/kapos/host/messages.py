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
from kapos.host import private48
from kapos.host.codec import MTI
# The sale and settlement part (0200/0100, 0500, reply checks, codes, field formats) lives
# in kapos.host.sale_messages, which a Pico W imports alone; re-exported here unchanged.
from kapos.host.sale_messages import (  # noqa: F401
    ACCOUNT_CHECKING, ACCOUNT_CREDIT, ACCOUNT_DEFAULT, ACCOUNT_SAVINGS, APPROVED, APPROVED_CODES,
    CONDITION_CUSTOMER_NOT_PRESENT, CONDITION_NORMAL, CONDITION_UNATTENDED, ENTRY_CONTACTLESS_CHIP,
    ENTRY_CONTACTLESS_MAGSTRIPE, ENTRY_FALLBACK, ENTRY_MAGSTRIPE, ENTRY_MANUAL, ENTRY_UNKNOWN,
    MTI_AUTH_REQUEST, MTI_AUTH_RESPONSE, MTI_FINANCIAL_REQUEST, MTI_FINANCIAL_RESPONSE,
    MTI_RECONCILIATION_REQUEST, MTI_RECONCILIATION_RESPONSE, PIN_CAPABLE, PIN_NOT_CAPABLE,
    RESPONSE_TEXTS, TOTALS_FIELDS, Stan, _MANDATORY_TOTALS, _check_time, _digits, _is_digits, _pad,
    build_financial_request, build_reconciliation, format_local_date, format_local_time,
    format_transmission, is_approved, next_stan, pack_private, pos_entry_mode, processing_code,
    response_matches, response_mti, response_text, stan_text, unpack_private)

# ---- message type identifiers (ISO 8583:1987, version 0) ----
MTI_ADVICE = "0220"
MTI_ADVICE_RESPONSE = "0230"
MTI_REVERSAL_REQUEST = "0400"
MTI_REVERSAL_RESPONSE = "0410"
MTI_REVERSAL_ADVICE = "0420"
MTI_REVERSAL_ADVICE_RESPONSE = "0430"
MTI_NETWORK_REQUEST = "0800"
MTI_NETWORK_RESPONSE = "0810"

REQUEST_MTIS = ("0100", "0200", "0220", "0400", "0420", "0500", "0620", "0800")
RESPONSE_MTIS = ("0110", "0210", "0230", "0410", "0430", "0510", "0630", "0810")
MTI_ALERT = "0620"  # administrative advice: a terminal's anomaly alert (48 AR rule, AD detail)
PRIVATE_ALERT_RULE = private48.ALERT_RULE
PRIVATE_ALERT_DETAIL = private48.ALERT_DETAIL

# ---- field 70, network management information code ----
NETWORK_SIGN_ON = "001"
NETWORK_SIGN_OFF = "002"
NETWORK_KEY_CHANGE = "101"
NETWORK_CUTOVER = "201"
NETWORK_ECHO = "301"
NETWORK_CODES = (NETWORK_SIGN_ON, NETWORK_SIGN_OFF, NETWORK_KEY_CHANGE, NETWORK_CUTOVER,
                 NETWORK_ECHO)

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

def repeat_mti(mti):
    """The repeat of a request MTI: 0400 -> 0401, 0220 -> 0221 (same response MTI)."""
    response_mti(mti)  # validates
    if mti[3] != "0":
        raise LocalProtocolError("MTI %s is already a repeat" % mti)
    return mti[:3] + "1"


def missing_fields(message, mti=None):
    """Required fields (REQUIRED_FIELDS) absent from `message`, as a tuple; those of
    `mti` when given (a repeat's, checked as its request's), else of the message's MTI."""
    required = REQUIRED_FIELDS.get(mti or message.get(MTI), ())
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
    pos = len(track2) - len(track2.lstrip("0123456789"))  # the leading digits
    pan = track2[:pos]
    expiry = track2[pos + 1:pos + 5]
    if not pan:
        raise LocalProtocolError("track 2 data has no PAN")
    return pan, (expiry if len(expiry) == 4 and _is_digits(expiry) else None)


# ---------------------------------------------------------------- builders

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
