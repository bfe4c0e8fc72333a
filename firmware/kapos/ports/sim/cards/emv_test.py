"""A contactless EMV test card (PPSE, SELECT AID, GPO, READ RECORD) on ISO-DEP."""

from kapos.ports.sim.cards.isodep import IsoDepCard


VISA_AID = bytes.fromhex("A0000000031010")
PPSE = b"2PAY.SYS.DDF01"
SW_OK = b"\x90\x00"


def tlv(tag, value):
    t = tag.to_bytes(1 if tag < 0x100 else (2 if tag < 0x10000 else 3), "big")  # no int.bit_length on MicroPython
    n = len(value)
    length = bytes((n,)) if n < 0x80 else (bytes((0x81, n)) if n < 0x100 else bytes((0x82, n >> 8, n & 0xFF)))
    return t + length + bytes(value)


def track2_bytes(text):
    """'PAN=YYMM...' -> tag 57 value: BCD digits, 'D' separator, 'F' padding."""
    nibbles = "".join("D" if c == "=" else c for c in text)
    if len(nibbles) % 2:
        nibbles += "F"
    return bytes.fromhex(nibbles)


class EmvTestCard(IsoDepCard):
    """A contactless EMV test card: PPSE -> SELECT AID -> GPO (checks the PDOL data length)
    -> READ RECORD. AFL: SFI 1 records 1-2; record 1 holds the name and expiry, record 2
    the track 2 equivalent (tag 57) -- or the GPO answer holds it (`track2_in_gpo`).
    `record_padding` adds bytes to record 1 (long answers: chaining); `gpo_format` 1 or 2."""

    def __init__(self, uid, track2="4761739001010010=30122011143804400000", aid=VISA_AID,
                 label=b"VISA CREDIT", pdol=bytes.fromhex("9F66049F02065F2A029A039C019F3704"),
                 gpo_format=2, track2_in_gpo=False, record_padding=0, **options):
        IsoDepCard.__init__(self, uid, self._apdu, **options)
        self.track2 = track2
        self.aid = bytes(aid)
        self.label = bytes(label)
        self.pdol = bytes(pdol)
        self.gpo_format = gpo_format
        self.track2_in_gpo = track2_in_gpo
        self.record_padding = record_padding
        self.gpo_data = None
        self.selected = None

    def _pdol_length(self):
        n = 0
        i = 0
        p = self.pdol
        while i < len(p):
            i += 2 if p[i] & 0x1F == 0x1F else 1
            n += p[i]
            i += 1
        return n

    def _apdu(self, apdu):
        if len(apdu) < 4:
            return b"\x67\x00"
        cla, ins, p1, p2 = apdu[:4]
        data = apdu[5:5 + apdu[4]] if len(apdu) > 5 else b""
        if ins == 0xA4 and p1 == 0x04:
            if data == PPSE:
                entry = tlv(0x61, tlv(0x4F, self.aid) + tlv(0x50, self.label) + tlv(0x87, b"\x01"))
                self.selected = "ppse"
                return tlv(0x6F, tlv(0x84, PPSE) + tlv(0xA5, tlv(0xBF0C, entry))) + SW_OK
            if data == self.aid:
                self.selected = "aid"
                a5 = tlv(0x50, self.label) + (tlv(0x9F38, self.pdol) if self.pdol else b"")
                return tlv(0x6F, tlv(0x84, self.aid) + tlv(0xA5, a5)) + SW_OK
            return b"\x6a\x82"
        if cla == 0x80 and ins == 0xA8:
            if self.selected != "aid":
                return b"\x69\x85"
            if len(data) < 2 or data[0] != 0x83 or data[1] != self._pdol_length() or len(data) != 2 + data[1]:
                return b"\x67\x00"
            self.gpo_data = bytes(data[2:])
            aip = b"\x00\x80"
            afl = b"\x08\x01\x02\x00"
            if self.gpo_format == 1:
                return tlv(0x80, aip + afl) + SW_OK
            body = tlv(0x82, aip) + tlv(0x94, afl)
            if self.track2_in_gpo:
                body += tlv(0x57, track2_bytes(self.track2))
            return tlv(0x77, body) + SW_OK
        if ins == 0xB2 and p2 & 0x07 == 0x04 and p2 >> 3 == 1 and self.selected == "aid":
            if p1 == 1:
                body = tlv(0x5F20, b"TEST/CARD") + tlv(0x5F24, b"\x30\x12\x31")
                if self.record_padding:
                    body += tlv(0x9F1F, b"\x30" * self.record_padding)
                return tlv(0x70, body) + SW_OK
            if p1 == 2:
                return tlv(0x70, tlv(0x57, track2_bytes(self.track2))) + SW_OK
            return b"\x6a\x83"
        return b"\x6d\x00"
