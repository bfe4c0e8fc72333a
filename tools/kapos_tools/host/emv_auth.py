"""Issuer-side EMV for the reference host: check the ARQC in field 55, refuse an ATC that
did not go up, and answer with an ARPC (method 1 or 2) in field 55 tag 91.

EMV Book 2 Annex A1: the card's ICC master key is derived from the issuer master key
(option A, PAN + PAN sequence number from field 23), the session key from the ATC (common
session key), the ARQC is the MAC of kapos.emv.cryptogram.ARQC_TAGS + the CVR. Keys: one
issuer master key per BIN prefix (longest match), the public test key by default; keys
never reach a log line or an error.

The last ATC seen per card lives in the ledger's database (table emv_atc), inside the
same transaction as the posting, so a replayed or cloned cryptogram (same or lower ATC)
is declined even across restarts.
"""

import logging

from Crypto.Cipher import DES

from kapos.emv import cryptogram as K
from kapos.errors import DecodeError, SecurityError
from kapos.nfc import tlv

log = logging.getLogger("kapos.host.emv")

TEST_IMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")  # public (EMV / pyemv examples)
CODE_BAD_CRYPTOGRAM = "05"  # do not honour: the chip data does not authenticate
CODE_ATC_REPLAYED = "05"
MAX_ATC_JUMP = 5000  # a counter that leaps this far is suspicious too


class _Des:
    def encrypt(self, key, block):
        return DES.new(bytes(key), DES.MODE_ECB).encrypt(bytes(block))

    def decrypt(self, key, block):
        return DES.new(bytes(key), DES.MODE_ECB).decrypt(bytes(block))


DES_BLOCK = _Des()


class EmvVerdict:
    def __init__(self, ok, reason, session_key=None, arqc=None):
        self.ok = ok
        self.reason = reason
        self._sk = session_key
        self.arqc = arqc

    def __repr__(self):
        return "EmvVerdict(ok=%s, reason=%s)" % (self.ok, self.reason)


class EmvIssuer:
    """keys: {BIN prefix (digits): 16-byte issuer master key}; '' is the default."""

    def __init__(self, db=None, keys=None, arpc_method=1):
        self.keys = {"": TEST_IMK} if keys is None else dict(keys)
        if arpc_method not in (1, 2):
            raise SecurityError("ARPC method is 1 or 2")
        self.arpc_method = arpc_method
        self.db = db
        self._atc = {}
        if db is not None:
            db.execute(db.ddl("CREATE TABLE IF NOT EXISTS emv_atc (card_key TEXT NOT NULL, psn "
                              "TEXT NOT NULL, atc INTEGER NOT NULL, PRIMARY KEY (card_key, psn))"))

    def _key_for(self, pan):
        best = None
        for prefix, key in self.keys.items():
            if pan.startswith(prefix) and (best is None or len(prefix) > len(best)):
                best = prefix
        return None if best is None else self.keys[best]

    def _last_atc(self, card_key, psn):
        if self.db is None:
            return self._atc.get((card_key, psn))
        row = self.db.execute("SELECT atc FROM emv_atc WHERE card_key = ? AND psn = ?",
                              (card_key, psn)).fetchone()
        return None if row is None else row[0]

    def _store_atc(self, card_key, psn, atc):
        if self.db is None:
            self._atc[(card_key, psn)] = atc
        else:
            self.db.execute("INSERT INTO emv_atc VALUES (?, ?, ?) ON CONFLICT (card_key, psn) "
                            "DO UPDATE SET atc = excluded.atc", (card_key, psn, atc))

    def check(self, pan, psn, icc, card_key=None, amount=None, currency=None):
        """An EmvVerdict for field 55 `icc` (bytes) of a request for `pan`; `amount`
        (field 4, digits) and `currency` (field 49) must be what the cryptogram signed."""
        try:
            values = dict(tlv.parse(icc))
        except DecodeError:
            return EmvVerdict(False, "field 55 is not BER-TLV")
        cid = values.get(0x9F27)
        arqc = values.get(0x9F26)
        atc = values.get(0x9F36)
        if not cid or (cid[0] & 0xC0) != 0x80 or arqc is None or len(arqc) != 8 or atc is None:
            return EmvVerdict(False, "no ARQC in field 55")
        if amount is not None and values.get(0x9F02) != bytes.fromhex("%012d" % int(amount)):
            return EmvVerdict(False, "the cryptogram's amount (9F02) is not field 4")
        if currency is not None and values.get(0x5F2A) != bytes.fromhex("%04d" % int(currency)):
            return EmvVerdict(False, "the cryptogram's currency (5F2A) is not field 49")
        imk = self._key_for(pan)
        if imk is None:
            return EmvVerdict(False, "no issuer key for this BIN")
        try:
            mk = K.icc_master_key(DES_BLOCK, imk, pan, psn or "00")
            sk = K.session_key(DES_BLOCK, mk, atc)
            expected = K.arqc(DES_BLOCK, sk, K.arqc_input(values))
        except SecurityError as exc:
            return EmvVerdict(False, str(exc))
        if not K.constant_time_equal(expected, arqc):
            return EmvVerdict(False, "ARQC does not verify")
        counter = (atc[0] << 8) | atc[1]
        key = card_key or pan
        last = self._last_atc(key, psn or "00")
        if last is not None and (counter <= last or counter - last > MAX_ATC_JUMP):
            return EmvVerdict(False, "ATC %d not above the last seen %d" % (counter, last))
        self._store_atc(key, psn or "00", counter)
        return EmvVerdict(True, "ARQC verified", sk, arqc)

    def response_icc(self, verdict, code):
        """Field 55 of the response: 91 issuer authentication data (ARPC + ARC for method
        1, ARPC + CSU for method 2), or None when there is no verified ARQC to answer."""
        if verdict is None or not verdict.ok:
            return None
        arc = code.encode("ascii")
        if self.arpc_method == 1:
            return tlv.encode(0x91, K.arpc_method1(DES_BLOCK, verdict._sk, verdict.arqc, arc) + arc)
        csu = b"\x00\x80\x00\x00" if code in ("00", "10", "11") else b"\x00\x00\x00\x00"
        return tlv.encode(0x91, K.arpc_method2(DES_BLOCK, verdict._sk, verdict.arqc, csu) + csu)
