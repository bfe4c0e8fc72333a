"""The card model: the one home of the clear PAN (see docs: architecture, "one home").

Everything else sees the brand, the masked PAN, the expiry and the service code.
The clear PAN leaves only through `pan_for_host()` / `track2_for_host()`, for the
encrypted host message.
"""

import binascii

from kapos.errors import CardReadError, CardRejected
from kapos.card.pan import is_digits, check_pan, mask_pan, short_mask
from kapos.card.brands import brand_of, pan_length_ok, CLOSED_LOOP
from kapos.card.service_code import ServiceCode, category_of

SOURCES = ("swipe", "tap", "token")
TOKEN_UID_LENGTHS = (4, 7, 10)  # ISO/IEC 14443-3 single, double, triple size UIDs
TRACK2_EQ_MAX = 37  # ISO 8583 field 35 is z..37


def _yymm_ok(yymm):
    return is_digits(yymm) and len(yymm) == 4 and "01" <= yymm[2:] <= "12"


def check_expiry(yymm):
    """Raise CardReadError unless `yymm` is 'YYMM' with month 01-12."""
    if not is_digits(yymm) or len(yymm) != 4:
        raise CardReadError("expiry is not YYMM")
    if not _yymm_ok(yymm):
        raise CardReadError("expiry month out of range")


def with_where(where, exc):
    """The same error class with '<where>: ' in front (e.g. 'track 2: LRC mismatch')."""
    msg = exc.args[0] if exc.args else "invalid"
    return type(exc)("%s: %s" % (where, msg))


def _hex_upper(data):
    return binascii.hexlify(bytes(data)).decode().upper()


class Card:
    """One presented card (swipe, EMV tap or closed-loop token).

    Attributes: brand, expiry ('YYMM' or None for tokens), service_code (ServiceCode
    or None), name, source, uid (bytes or None). The constructor validates; a Card
    that exists is well formed.
    """

    def __init__(self, pan, expiry, service_code=None, name="", source="swipe",
                 uid=None, track2=None, private_prefixes=()):
        if source not in SOURCES:
            raise ValueError("unknown card source")
        if uid is not None or source == "token":
            if not isinstance(uid, (bytes, bytearray)) or len(uid) not in TOKEN_UID_LENGTHS:
                raise CardReadError("UID must be 4, 7 or 10 bytes")
            uid = bytes(uid)
        self.source = source
        self.uid = uid
        self.name = name or ""
        # EMV chip data (set_chip): field 55, the PAN sequence number (23), the entry mode
        # by kernel path, the application label shown, and the CVM the kernel chose
        self._icc = None
        self.pan_sequence = None
        self.chip_entry = None
        self.app_label = None
        self.cvm = None
        if source == "token":
            if pan is not None:
                raise ValueError("a token card has no PAN")
            hex_uid = _hex_upper(uid)
            self.brand = CLOSED_LOOP
            self.expiry = None
            self.service_code = None
            self._masked = self._short = "TOKEN .." + hex_uid[-6:]
            self._last4 = hex_uid[-4:]
            self._pan = self._track2 = None
            return
        check_pan(pan)
        self.brand = brand_of(pan, private_prefixes)
        if not pan_length_ok(self.brand, len(pan)):
            raise CardReadError("PAN length invalid for card brand")
        check_expiry(expiry)
        if service_code is not None and not isinstance(service_code, ServiceCode):
            service_code = ServiceCode(service_code)
        self.expiry = expiry
        self.service_code = service_code
        self._masked = mask_pan(pan)
        self._short = short_mask(pan)
        self._last4 = pan[-4:]
        self._pan = pan
        self._track2 = track2

    # -- display (safe everywhere) --
    def masked(self):
        return self._masked

    def short_masked(self):
        return self._short

    @property
    def last4(self):
        return self._last4

    def token_id(self):
        """The UID as upper-case hex (closed-loop account key), or None."""
        return _hex_upper(self.uid) if self.uid is not None else None

    # -- the only ways out for the clear PAN --
    def pan_for_host(self):
        """The clear PAN, ONLY for building the (encrypted) host message.

        None for tokens and after wipe(). Never log, display or store it.
        """
        return self._pan

    def set_chip(self, icc_data, pan_sequence, entry, label, cvm):
        """What the EMV kernel read (kapos.emv.kernel.Result fields)."""
        self._icc = bytes(icc_data) if icc_data else None
        self.pan_sequence = pan_sequence
        self.chip_entry = entry
        self.app_label = label or None
        self.cvm = cvm

    def icc_for_host(self):
        """Field 55 (the cryptogram and what it signs), ONLY for the host message, or None."""
        return self._icc

    def track2_for_host(self):
        """Clear track 2 (equivalent) data 'PAN=YYMMSSS...', no sentinels/LRC, or None."""
        return self._track2

    def wipe(self):
        """Drop the clear PAN and track. Python strings are immutable, so this only
        releases our references; masked display keeps working."""
        self._pan = None
        self._track2 = None
        self._icc = None

    # -- rules --
    def is_expired(self, yymm_now):
        """True once `yymm_now` is past the expiry month (valid through its last day).

        Compares YYMM within one century, as the card itself does.
        """
        if not _yymm_ok(yymm_now):
            raise ValueError("yymm_now must be 'YYMM'")
        if self.expiry is None:
            return False
        return yymm_now > self.expiry

    def pin_required(self, has_pin_pad=True):
        if self.service_code is None:
            return False
        return self.service_code.pin_required(has_pin_pad)

    def allows(self, txn_type):
        category_of(txn_type)  # an unregistered type is refused, never allowed by default
        if self.service_code is None:
            return True
        return self.service_code.allows(txn_type)

    def __repr__(self):
        return "Card(%s %s)" % (self.brand, self._masked)

    def __str__(self):
        return "%s %s" % (self.brand, self._masked)


def card_from_track2(t2, source="tap", private_prefixes=()):
    """Card from EMV track 2 equivalent data (tag 57): digits, 'D' or '=' separator,
    optional trailing 'F' pad. `t2` is a str or the raw tag bytes (BCD nibbles)."""
    if isinstance(t2, (bytes, bytearray)):
        t2 = _hex_upper(t2)
    if not isinstance(t2, str):
        raise TypeError("track 2 equivalent must be str or bytes")
    where = "track 2 equivalent"
    t2 = t2.upper()
    if t2.endswith("F"):  # pads an odd nibble count to whole bytes
        t2 = t2[:-1]
    if not t2:
        raise CardReadError(where + ": empty")
    if len(t2) > TRACK2_EQ_MAX:
        raise CardReadError("%s: longer than %d characters" % (where, TRACK2_EQ_MAX))
    t2 = t2.replace("D", "=")
    for i in range(len(t2)):
        c = t2[i]
        if c != "=" and not ("0" <= c <= "9"):
            raise CardReadError("%s: invalid character at position %d" % (where, i))
    parts = t2.split("=")
    if len(parts) != 2:
        raise CardReadError(where + ": needs exactly one field separator")
    pan, rest = parts
    if len(rest) < 7:
        raise CardReadError(where + ": expiry or service code missing")
    try:
        return Card(pan, rest[:4], rest[4:7], source=source, track2=t2,
                    private_prefixes=private_prefixes)
    except (CardReadError, CardRejected) as e:
        raise with_where(where, e)


def token_card(uid):
    """Card for a closed-loop NFC token known only by its UID (4, 7 or 10 bytes)."""
    return Card(None, None, source="token", uid=uid)
