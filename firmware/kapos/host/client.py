"""The sans-I/O half of the terminal's host client: what to send, how to sign it, which
reply belongs to it and what it adds to the batch totals. No sockets, files or clock:
`kapos.io.host_link` drives it with a transport, a journal and the terminal's time.

    message = build_request(request, stan, transmission, local, batch, ids, original)
    payload = encode_message(message, mac)          # field 64/128 added under `mac`
    check_reply(message, data, mac)                 # -> reply dict, or raises BadReply

`request` is the dict `core.handlers.authorization_request` builds; the transaction
type's row (`kapos.txn_types`) gives field 3, whether a fee applies and whether the
request names an original instead of a card.

MAC hook: `mac` is an object with `sign(data) -> 8 bytes` and `verify(data, mac) -> bool`
(`data` = `codec.mac_input()` of the message); one with `bind(message)` (DUKPT) returns a
per-message MAC keyed by the message's KSN. With no mac no MAC is sent and none checked.
"""

from kapos import txn_types
from kapos.errors import DecodeError, RemoteProtocolError, LocalProtocolError
from kapos.host import codec
from kapos.host import messages as m
from kapos.host import private48 as P
from kapos.host.codec import MTI
# the totals rules are their own module (a small board loads only that one)
from kapos.host.totals import NOT_RECONCILED, RECONCILED, add_to_totals, net, parse_host_totals  # noqa: F401

# field 22 PAN entry mode by card source. The terminal has no contact chip reader: a
# swipe is a swipe (never "fallback"); a closed-loop token is read by its UID and has no
# PAN at all ("00", the token id travels in field 48 TK).
ENTRY_BY_SOURCE = {"swipe": m.ENTRY_MAGSTRIPE, "tap": m.ENTRY_CONTACTLESS_CHIP,
                   "token": m.ENTRY_UNKNOWN}
# field 22 PAN entry mode by the EMV kernel's path (kapos.emv.kernel Result.entry)
CHIP_ENTRY = {"contactless": m.ENTRY_CONTACTLESS_CHIP, "chip": "05",
              "contactless_magstripe": m.ENTRY_CONTACTLESS_MAGSTRIPE}
# field 3 "from" account type by the account the cardholder chose
ACCOUNT_TYPES = {"debit": m.ACCOUNT_CHECKING, "credit": m.ACCOUNT_CREDIT,
                 "prepaid": m.ACCOUNT_DEFAULT}
# cancel() reasons (core: "timeout", "hardware error") -> messages.REVERSAL_REASONS
CANCEL_REASONS = {"timeout": "timeout", "hardware error": "error", "error": "error",
                  "cancelled": "cancelled", "customer": "cancelled"}

# Fields a stored (queued) message may never carry: no clear PAN, track, PIN block, KSN
# or ICC data reaches the journal.
SENSITIVE_QUEUE_FIELDS = (2, 14, 35, 45, 48, 52, 53, 55)


class BadReply(RemoteProtocolError):
    """A reply came but cannot be trusted: garbled, mismatched, bad MAC, fields missing."""


# ---------------------------------------------------------------- MAC

class Mac:
    """The MAC hook: DUKPT keys per message (app.secmodule.DukptMac) or, in tests, a static key."""

    def sign(self, data):
        """8-byte MAC of `data` (codec.mac_input of the message)."""
        raise NotImplementedError

    def verify(self, data, mac):
        """True when `mac` is the MAC of `data`."""
        raise NotImplementedError


def bound_mac(mac, message):
    """A per-message MAC (DUKPT: keys by the message's KSN) or the static one itself.
    Binding may add the KSN (field 53) to `message`."""
    bind = getattr(mac, "bind", None)
    return bind(message) if bind is not None else mac


def encode_message(message, mac=None):
    """Encode `message`; with a mac, add field 64/128 (any value present is replaced)."""
    if mac is None:
        return codec.encode(message)
    mac = bound_mac(mac, message)
    data = codec.encode(message, mac=True)  # one encoding, a zero MAC in field 64/128
    return codec.with_mac(data, mac.sign(codec.mac_input(data)))


def mac_ok(data, message, mac, request=None):
    """True when no mac is configured, or `message` (decoded from `data`) carries a
    valid MAC in its MAC field. A reply is checked with the keys of its `request`."""
    if mac is None:
        return True
    field = codec.mac_field(message)
    if field not in message:
        return False
    try:
        mac = bound_mac(mac, request if request is not None else message)
        return bool(mac.verify(codec.mac_input(data), message[field]))
    except Exception:  # a key that cannot be derived is a MAC that does not verify
        return False


# ---------------------------------------------------------------- requests

def amounts(request, original=None):
    """(amount, fee, total) a request moves; `original` is the journal row it names."""
    row = txn_types.row(request["type"])
    if not row["amount"] and row["posting"] != "void":  # an inquiry, a release
        return 0, 0, 0
    amount = request.get("amount") or 0
    fee = (request.get("fee") or 0) if row["fee"] else 0
    if row["posting"] == "void":
        return amount, 0, original["total"] if original is not None else amount
    return amount, fee, amount + fee


def build_request(request, stan, transmission, local, batch, ids, original=None):
    """The 0200 for an authorization request dict.

    `transmission` / `local`: time tuples (UTC, local); `ids`: {'terminal_id',
    'merchant_id', 'currency_code', 'pin_capable', 'nii'}; `original`: the journal row
    of the transaction a void or a completion names (or None). Without a row, the
    request's 'original' dict names it by 'rrn', or by 'stan' and 'transmission'
    (field 7 text)."""
    kind = request["type"]
    row = txn_types.row(kind)
    terminal_id = request.get("terminal_id") or ids["terminal_id"]
    merchant_id = request.get("merchant_id") or ids["merchant_id"]
    currency = request.get("currency_code") or ids["currency_code"]
    private = [(P.BATCH, "%06d" % batch)]
    if not row["card"]:
        return _build_by_original(request, row, stan, transmission, local, terminal_id,
                                  merchant_id, currency, private, original, ids)
    card = request.get("card")
    if card is None:
        raise LocalProtocolError("a %s needs a card" % kind)
    fee = request.get("fee") or 0
    if fee and row["fee"]:
        private.append((P.FEE, "%012d" % fee))
    if row["target"]:
        if not request.get("target"):
            raise LocalProtocolError("a %s needs a target account" % kind)
        private.append((P.TRANSFER_TARGET, str(request["target"])))
    track2 = card.track2_for_host()
    pan = card.pan_for_host()
    no_card_number = False
    if card.source == "token" or (track2 is None and pan is None):
        if card.token_id() is None:
            raise LocalProtocolError("the card has no PAN, track or token id")
        private.append((P.TOKEN, card.token_id()))
        if request.get("token_data"):  # the anti-clone block read from the token
            private.append((P.TOKEN_DATA, bytes(request["token_data"]).hex().upper()))
        pan, track2, no_card_number = "0", None, True
    pin_block = request.get("pin_block")
    ksn = request.get("ksn")
    message = m.build_financial_request(
        kind, request["amount"] if row["amount"] else None, stan, transmission, local,
        terminal_id, merchant_id, currency,
        pan=None if track2 else pan, expiry=None if track2 or no_card_number else card.expiry,
        track2=track2, pan_entry=ENTRY_BY_SOURCE.get(card.source, m.ENTRY_UNKNOWN),
        pin_capable=ids.get("pin_capable", True),
        pin_block=pin_block if ksn is not None else None,
        ksn=ksn, private=P.pack(private), nii=ids.get("nii"),
        from_account=ACCOUNT_TYPES.get(request.get("account"), m.ACCOUNT_DEFAULT))
    if no_card_number:
        del message[2]  # the builder wants a card number; a token has none (48 TK)
    icc = card.icc_for_host() if hasattr(card, "icc_for_host") else None
    if icc:  # EMV: the cryptogram (55), the PAN sequence number (23), entry by kernel path
        message[55] = icc
        if card.pan_sequence and card.pan_sequence.isdigit():  # 5F34 is n2 (BCD)
            message[23] = "0" + card.pan_sequence
        entry = CHIP_ENTRY.get(card.chip_entry)
        if entry is not None:
            message[22] = m.pos_entry_mode(entry, ids.get("pin_capable", True))
    elif getattr(card, "chip_entry", None) == "fallback":  # a chip card swiped after its chip failed
        message[22] = m.pos_entry_mode(m.ENTRY_FALLBACK, ids.get("pin_capable", True))
    if pin_block is not None and ksn is None:
        # static test key, no DUKPT: field 52 without 53 (the host knows the key)
        message[52] = bytes(pin_block)
    return message


def _build_by_original(request, row, stan, transmission, local, terminal_id, merchant_id,
                       currency, private, original_row, ids):
    """A void or a completion: it identifies the original (37, 90), not the card."""
    original = request.get("original") or {}
    kind = row["name"]
    if row["posting"] == "void":
        amount = original.get("amount") or request.get("amount")
        if original_row is not None and original_row["type"] != kind:
            voided = txn_types.get(original_row["type"])
            if voided is not None and voided["totals"] == "credit":
                kind = txn_types.VOID_REFUND
    else:  # a completion carries its final amount, a release none
        amount = request.get("amount") if row["amount"] else None
    message = m.build_financial_request(
        kind, amount, stan, transmission, local, terminal_id, merchant_id, currency,
        pan="0", pan_entry=m.ENTRY_UNKNOWN, pin_capable=ids.get("pin_capable", True),
        private=P.pack(private), nii=ids.get("nii"))
    del message[2]
    rrn = original.get("rrn") or (original_row or {}).get("rrn")
    if rrn:
        message[37] = rrn
    if original_row is not None:
        message[90] = m.original_data(original_row["mti"], original_row["stan"],
                                      original_row["transmission"])
    elif original.get("stan") and original.get("transmission"):
        message[90] = m.original_data(m.MTI_FINANCIAL_REQUEST, original["stan"],
                                      original["transmission"])
    if 37 not in message and 90 not in message:
        raise LocalProtocolError("a %s needs the original's RRN or STAN" % row["name"])
    return message


def reversal_mti(attempts):
    """The MTI of attempt number `attempts` (0 first) of a queued reversal: 0400, then
    the 0420 reversal advice, then its repeat 0421. (The terminal sends no 0220 advice:
    it decides nothing offline.)"""
    if attempts == 0:
        return m.MTI_REVERSAL_REQUEST
    if attempts == 1:
        return m.MTI_REVERSAL_ADVICE
    return m.repeat_mti(m.MTI_REVERSAL_ADVICE)


def strip_for_storage(message):
    """A copy of a message fit for the journal queue: no card data, PIN, KSN, MAC."""
    out = dict(message)
    for number in SENSITIVE_QUEUE_FIELDS + (64, 128):
        out.pop(number, None)
    return out


# ---------------------------------------------------------------- replies

def check_reply(request, data, mac=None):
    """The decoded reply `data` if it answers `request`, None if it is some other
    message (maybe a stale reply: the caller decides), BadReply when it cannot be
    trusted (garbled, bad MAC, fields missing)."""
    try:
        reply = codec.decode(data)
    except DecodeError as exc:
        raise BadReply("garbled reply: %s" % exc)
    if not m.response_matches(request, reply):
        return None
    if not mac_ok(data, reply, mac, request):
        raise BadReply("reply with a bad MAC")
    missing = m.missing_fields(reply)
    if missing:
        raise BadReply("reply lacks field(s) %s" % ", ".join([str(n) for n in missing]))
    return reply


def reply_result(reply, stan):
    """The runtime's reply dict from a decoded 0210."""
    code = reply[39]
    approved = m.is_approved(code)
    try:
        balance = m.balance_from(reply)
    except DecodeError:
        balance = None
    pin_verified = False
    if reply.get(48):
        try:
            pin_verified = P.unpack(reply[48]).get(P.PIN_VERIFIED) == "1"
        except DecodeError:
            pin_verified = False
    return {"approved": approved, "code": code, "text": m.response_text(code),
            "auth_code": reply.get(38) if approved else None, "rrn": reply.get(37),
            "stan": stan, "balance": balance, "pin_verified": pin_verified,
            "icc": reply.get(55)}  # issuer authentication data (91: the ARPC) for the chip
