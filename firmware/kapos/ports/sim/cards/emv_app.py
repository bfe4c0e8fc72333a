"""The application side of an emulated EMV card, independent of the interface: `respond(apdu)`
answers SELECT (PPSE / PSE / AID), GET PROCESSING OPTIONS, READ RECORD, GENERATE AC (first
and second, checking the issuer's ARPC) and COMPUTE CRYPTOGRAPHIC CHECKSUM, with real keys:
an ICC master key derived from the issuer master key (EMV Book 2 A1.4.1), a session key per
ATC (A1.3.1) and ARQCs over kapos.emv.cryptogram.ARQC_TAGS. The ATC counts up and is kept.

EmvContactlessCard puts it on ISO-DEP for the MFRC522 emulator; the PC/SC twin
(kapos.ports.sim.vpcd_card) serves the same object to vpcd. Test keys only."""

from Crypto.Cipher import DES

from kapos.emv import cryptogram as K
from kapos.nfc import tlv
from kapos.ports.sim.cards.isodep import IsoDepCard

SW_OK = b"\x90\x00"
PPSE = b"2PAY.SYS.DDF01"
PSE = b"1PAY.SYS.DDF01"
# A public test issuer master key (the value EMV examples and pyemv's docs use).
TEST_IMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
VISA_PDOL = bytes.fromhex("9F66049F02069F03069F1A0295055F2A029A039C019F3704")
MCHIP_CDOL1 = bytes.fromhex("9F02069F03069F1A0295055F2A029A039C019F37049F35019F3403")
MCHIP_CDOL2 = bytes.fromhex("8A02910A95059F3704")


class Des:
    """The DES block kapos.emv.cryptogram wants, from pycryptodome."""

    def encrypt(self, key, block):
        return DES.new(bytes(key), DES.MODE_ECB).encrypt(bytes(block))

    def decrypt(self, key, block):
        return DES.new(bytes(key), DES.MODE_ECB).decrypt(bytes(block))


DES_BLOCK = Des()


def track2_bytes(text):
    nibbles = "".join("D" if c == "=" else c for c in text)
    if len(nibbles) % 2:
        nibbles += "F"
    return bytes.fromhex(nibbles)


def _dol_values(dol, data):
    out = {}
    i = 0
    for tag, length in tlv.parse_dol(dol):
        out[tag] = bytes(data[i:i + length])
        i += length
    return out, i


class EmvApplication:
    """One application on the card. kernel 'visa' (qVSDC: ARQC in the GPO answer),
    'mchip' (GENERATE AC with CDOL1/CDOL2) or 'magstripe' (9F6B + CVC3 only).
    blocked: SELECT answers 6283; refuse_gpo: GPO answers 6985 (not for this
    transaction); ctq: 9F6C for qVSDC (byte 2 bit 8 = CDCVM done on the device)."""

    def __init__(self, aid, label, pan, expiry, kernel="visa", priority=1, psn="01",
                 service_code="201", imk=TEST_IMK, atc=0, blocked=False, refuse_gpo=False,
                 ctq=None, preferred=None):
        self.aid = bytes(aid)
        self.label = label
        self.pan = pan
        self.expiry = expiry
        self.kernel = kernel
        self.priority = priority
        self.psn = psn
        self.service_code = service_code
        self.icc_mk = K.icc_master_key(DES_BLOCK, imk, pan, psn)
        self.atc = atc
        self.blocked = blocked
        self.refuse_gpo = refuse_gpo
        self.ctq = ctq
        self.preferred = preferred
        self.last_arqc = None
        self.arpc_checked = None  # True / False once a second GENERATE AC came

    def track2(self):
        return "%s=%s%s%s" % (self.pan, self.expiry, self.service_code, "0000000000"[:9])

    def fci(self):
        a5 = tlv.encode(0x50, self.label.encode())
        if self.kernel == "visa":
            a5 += tlv.encode(0x9F38, VISA_PDOL)
        if self.preferred:
            a5 += tlv.encode(0x9F12, self.preferred.encode()) + tlv.encode(0x9F11, b"\x01")
        return tlv.encode(0x6F, tlv.encode(0x84, self.aid) + tlv.encode(0xA5, a5))

    def records(self):
        r1 = tlv.encode(0x5F20, b"TEST/CARDHOLDER") + tlv.encode(0x5F24, bytes.fromhex(self.expiry + "31"))
        r1 += tlv.encode(0x5A, track2_bytes(self.pan)) + tlv.encode(0x5F34, bytes.fromhex(self.psn))
        if self.kernel == "magstripe":
            r2 = tlv.encode(0x9F6B, track2_bytes(self.track2())) + tlv.encode(0x9F69, b"\x9f\x6a\x04")
        else:
            r2 = tlv.encode(0x57, track2_bytes(self.track2()))
            if self.kernel == "mchip":
                r2 += tlv.encode(0x8C, MCHIP_CDOL1) + tlv.encode(0x8D, MCHIP_CDOL2)
                r2 += tlv.encode(0x8E, bytes(8) + b"\x42\x03\x1e\x03\x1f\x03")
        return [tlv.encode(0x70, r1), tlv.encode(0x70, r2)]

    def _next_atc(self):
        self.atc += 1
        return bytes(((self.atc >> 8) & 0xFF, self.atc & 0xFF))

    def _arqc(self, values, atc, aip, cvr):
        values = dict(values)
        values[0x82] = aip
        values[0x9F36] = atc
        iad = b"\x06\x01\x12" + cvr
        values[0x9F10] = iad
        sk = K.session_key(DES_BLOCK, self.icc_mk, atc)
        ac = K.arqc(DES_BLOCK, sk, K.arqc_input(values))
        self.last_arqc = ac
        return ac, iad

    AIP = {"visa": b"\x00\x40", "mchip": b"\x19\x80", "magstripe": b"\x00\x00"}

    def gpo(self, data, pdol_data):
        if self.refuse_gpo:
            return b"\x69\x85"
        aip = self.AIP[self.kernel]
        afl = b"\x08\x01\x02\x00"
        if self.kernel != "visa":
            return tlv.encode(0x77, tlv.encode(0x82, aip) + tlv.encode(0x94, afl)) + SW_OK
        values, used = _dol_values(VISA_PDOL, pdol_data)
        if used != len(pdol_data):
            return b"\x67\x00"
        atc = self._next_atc()
        ac, iad = self._arqc(values, atc, aip, b"\x03\xa0\x00\x00")
        body = (tlv.encode(0x82, aip) + tlv.encode(0x94, afl) + tlv.encode(0x9F36, atc)
                + tlv.encode(0x9F26, ac) + tlv.encode(0x9F27, b"\x80") + tlv.encode(0x9F10, iad))
        if self.ctq is not None:
            body += tlv.encode(0x9F6C, self.ctq)
        return tlv.encode(0x77, body) + SW_OK

    def generate_ac(self, p1, data):
        if self.kernel != "mchip":
            return b"\x6d\x00"
        aip = self.AIP["mchip"]
        if self.last_arqc is None or self.arpc_checked is not None:  # first GENERATE AC
            values, used = _dol_values(MCHIP_CDOL1, data)
            if used != len(data):
                return b"\x67\x00"
            atc = self._next_atc()
            ac, iad = self._arqc(values, atc, aip, b"\x03\xa0\x00\x00")
            self.arpc_checked = None
            self._first = values
            return self._ac_answer(0x80, atc, ac, iad)
        values, used = _dol_values(MCHIP_CDOL2, data)
        if used != len(data):
            return b"\x67\x00"
        issuer = values[0x91]
        atc = bytes(((self.atc >> 8) & 0xFF, self.atc & 0xFF))
        sk = K.session_key(DES_BLOCK, self.icc_mk, atc)
        expected = K.arpc_method1(DES_BLOCK, sk, self.last_arqc, issuer[8:10])
        self.arpc_checked = K.constant_time_equal(expected, issuer[:8])
        approve = (p1 & 0xC0) == 0x40 and self.arpc_checked and issuer[8:10] == values[0x8A]
        first = dict(self._first)
        first[0x95] = values[0x95]
        first[0x9F37] = values[0x9F37]
        ac, iad = self._arqc(first, atc, aip, b"\x03\x60\x00\x00" if approve else b"\x03\x00\x00\x00")
        return self._ac_answer(0x40 if approve else 0x00, atc, ac, iad)

    def _ac_answer(self, cid, atc, ac, iad):
        return tlv.encode(0x77, tlv.encode(0x9F27, bytes((cid,))) + tlv.encode(0x9F36, atc)
                          + tlv.encode(0x9F26, ac) + tlv.encode(0x9F10, iad)) + SW_OK

    def compute_checksum(self, data):
        if self.kernel != "magstripe" or len(data) != 4:
            return b"\x67\x00" if self.kernel == "magstripe" else b"\x6d\x00"
        atc = self._next_atc()
        cvc3 = K.mac(DES_BLOCK, self.icc_mk, bytes(data) + atc)[:2]
        return tlv.encode(0x77, tlv.encode(0x9F61, cvc3) + tlv.encode(0x9F36, atc)) + SW_OK


class EmvCard:
    """A card holding one or more EmvApplication: the PPSE (contactless), the PSE
    (contact, SFI 1) and the APDU dispatch. `apdus` logs the commands it received."""

    def __init__(self, apps, contact=False):
        self.apps = list(apps)
        self.contact = contact
        self.selected = None
        self.apdus = []

    def _directory_entries(self):
        out = b""
        for app in self.apps:
            body = tlv.encode(0x4F, app.aid) + tlv.encode(0x50, app.label.encode())
            if app.priority:
                body += tlv.encode(0x87, bytes((app.priority,)))
            out += tlv.encode(0x61, body)
        return out

    def respond(self, apdu):
        apdu = bytes(apdu)
        self.apdus.append(apdu)
        if len(apdu) < 4:
            return b"\x67\x00"
        cla, ins, p1, p2 = apdu[:4]
        data = apdu[5:5 + apdu[4]] if len(apdu) > 5 else b""
        if ins == 0xA4 and p1 == 0x04:
            return self._select(bytes(data))
        if ins == 0xB2:
            return self._read_record(p1, p2)
        app = self.selected if isinstance(self.selected, EmvApplication) else None
        if app is None:
            return b"\x69\x85" if ins in (0xA8, 0xAE, 0x2A) else b"\x6d\x00"
        if cla == 0x80 and ins == 0xA8:
            if len(data) < 2 or data[0] != 0x83 or len(data) != 2 + data[1]:
                return b"\x67\x00"
            return app.gpo(data, bytes(data[2:]))
        if cla == 0x80 and ins == 0xAE:
            return app.generate_ac(p1, bytes(data))
        if cla == 0x80 and ins == 0x2A:
            return app.compute_checksum(bytes(data))
        return b"\x6d\x00"

    def _select(self, name):
        if name == PPSE and not self.contact:
            self.selected = "ppse"
            return tlv.encode(0x6F, tlv.encode(0x84, PPSE) + tlv.encode(
                0xA5, tlv.encode(0xBF0C, self._directory_entries()))) + SW_OK
        if name == PSE and self.contact:
            self.selected = "pse"
            return tlv.encode(0x6F, tlv.encode(0x84, PSE) + tlv.encode(0xA5, tlv.encode(0x88, b"\x01"))) + SW_OK
        for app in self.apps:
            if app.aid[:len(name)] == name and len(name) >= 5:
                if app.blocked:
                    self.selected = None
                    return b"\x62\x83"
                self.selected = app
                app.last_arqc = None
                app.arpc_checked = None
                return app.fci() + SW_OK
        self.selected = None
        return b"\x6a\x82"

    def _read_record(self, rec, p2):
        sfi = p2 >> 3
        if p2 & 0x07 != 0x04:
            return b"\x6a\x86"
        if self.selected == "pse" and sfi == 1:
            if rec == 1:
                return tlv.encode(0x70, self._directory_entries()) + SW_OK
            return b"\x6a\x83"
        if isinstance(self.selected, EmvApplication) and sfi == 1:
            records = self.selected.records()
            if 1 <= rec <= len(records):
                return records[rec - 1] + SW_OK
        return b"\x6a\x83"


class EmvContactlessCard(IsoDepCard):
    """An EmvCard on ISO 14443-4, for the MFRC522 emulator's field."""

    def __init__(self, uid, card, **options):
        IsoDepCard.__init__(self, uid, card.respond, **options)
        self.emv = card
