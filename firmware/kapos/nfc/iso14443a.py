"""ISO/IEC 14443-3 Type A: REQA/WUPA, anticollision and SELECT over cascade levels, HLTA.

Works over any `kapos.nfc.frontend.Frontend`. A UID is 4, 7 or 10 bytes, selected in one,
two or three cascade levels; a level that is not the last starts with the cascade tag
0x88 and its SAK has the cascade bit (0x04). Every level ends with the BCC (XOR of the
four UID CLn bytes), checked here.

No answer at the start (REQA) means no card: `activate` returns None. A card that stops
answering half way also gives None (it left the field); malformed answers raise
CardReadError.
"""

from kapos.compat import const
from kapos.errors import CardReadError

REQA = const(0x26)
WUPA = const(0x52)
SEL_CL1 = const(0x93)
SEL_CL2 = const(0x95)
SEL_CL3 = const(0x97)
NVB_SELECT = const(0x70)
CASCADE_TAG = const(0x88)
HLTA = b"\x50\x00"

SAK_CASCADE = const(0x04)  # UID not complete
SAK_ISO_DEP = const(0x20)  # ISO/IEC 14443-4 compliant
MIFARE_CLASSIC_SAKS = (0x08, 0x09, 0x10, 0x11, 0x18, 0x19, 0x88)

# Frame delay for these commands is ~90 us (ISO 14443-3 FDT); 1 ms leaves room.
TIMEOUT_MS = 1
SEL_CODES = (SEL_CL1, SEL_CL2, SEL_CL3)


class Target:
    """A selected Type A card: uid (bytes), atqa (2 bytes, as received), sak (int)."""

    def __init__(self, uid, atqa, sak):
        self.uid = uid
        self.atqa = atqa
        self.sak = sak

    @property
    def iso_dep(self):
        return bool(self.sak & SAK_ISO_DEP)

    @property
    def mifare_classic(self):
        return not self.sak & SAK_ISO_DEP and self.sak in MIFARE_CLASSIC_SAKS

    def __repr__(self):
        return "Target(uid=%d bytes, sak=0x%02X)" % (len(self.uid), self.sak)


def request(fe, wake=False, timeout_ms=TIMEOUT_MS):
    """Send REQA (or WUPA) as a 7-bit short frame. Returns the ATQA (2 bytes), b"" when
    several cards answered with different ATQAs (a collision: cards are there), or None."""
    r = fe.transceive_bits(bytes((WUPA if wake else REQA,)), 7, 0, timeout_ms)
    if r is None:
        return None
    data, last_bits, coll = r
    if coll:
        return b""
    if len(data) != 2 or last_bits:
        raise CardReadError("ATQA is not 16 bits")
    return data


def _merge(uid, rx, first, bits):
    """Copy received bytes into uid[first:], keeping the low `bits` bits of uid[first]."""
    keep = (1 << bits) - 1
    for i in range(len(rx)):
        k = first + i
        if k >= 5:
            break
        if i == 0:
            uid[k] = (uid[k] & keep) | (rx[0] & ~keep & 0xFF)
        else:
            uid[k] = rx[i]


def select_level(fe, level, timeout_ms=TIMEOUT_MS):
    """Anticollision and SELECT at cascade level 0, 1 or 2.

    Returns (uid_cln 4 bytes, sak) or None when the card stopped answering. When several
    cards answer, the one with a 1 at the first collided bit is chosen."""
    sel = SEL_CODES[level]
    uid = bytearray(5)  # UID CLn (4) + BCC
    known = 0  # number of valid leading bits in uid
    for _ in range(34):  # each round learns at least one more bit
        nbytes = known >> 3
        nbits = known & 7
        frame = bytes((sel, ((2 + nbytes) << 4) | nbits)) + bytes(uid[:nbytes + (1 if nbits else 0)])
        r = fe.transceive_bits(frame, nbits, nbits, timeout_ms)
        if r is None:
            return None
        rx, last_bits, coll = r
        _merge(uid, rx, nbytes, nbits)
        if not coll:
            total = (nbytes + len(rx)) * 8 - ((8 - last_bits) if last_bits else 0)
            if total != 40:
                raise CardReadError("anticollision answer is %d bits, not 40" % total)
            break
        pos = nbytes * 8 + coll  # 1-based bit position in UID CLn + BCC
        if pos <= known or pos > 32:
            raise CardReadError("anticollision: collision at bit %d gives no progress" % pos)
        byte_i = (pos - 1) >> 3
        bit_i = (pos - 1) & 7
        uid[byte_i] = (uid[byte_i] & ((1 << bit_i) - 1)) | (1 << bit_i)
        for k in range(byte_i + 1, 5):
            uid[k] = 0
        known = pos
    else:
        raise CardReadError("anticollision did not converge")
    if uid[0] ^ uid[1] ^ uid[2] ^ uid[3] != uid[4]:
        raise CardReadError("UID check byte (BCC) mismatch at cascade level %d" % (level + 1))
    sak = fe.transceive(bytes((sel, NVB_SELECT)) + bytes(uid), timeout_ms)
    if sak is None:
        return None
    if len(sak) != 1:
        raise CardReadError("SAK is %d bytes, not 1" % len(sak))
    return bytes(uid[:4]), sak[0]


def activate(fe, wake=False, timeout_ms=TIMEOUT_MS):
    """REQA/WUPA then select one card through all its cascade levels.

    Returns a Target, or None when no card answered (or the card left half way)."""
    atqa = request(fe, wake, timeout_ms)
    if atqa is None:
        return None
    uid = b""
    for level in range(3):
        r = select_level(fe, level, timeout_ms)
        if r is None:
            return None
        part, sak = r
        if not sak & SAK_CASCADE:
            return Target(uid + part, atqa, sak)
        if part[0] != CASCADE_TAG:
            raise CardReadError("cascade bit set but no cascade tag at level %d" % (level + 1))
        uid += part[1:]
    raise CardReadError("UID longer than three cascade levels")


def halt(fe, timeout_ms=TIMEOUT_MS):
    """HLTA: the card goes to HALT and answers only WUPA. A card that accepts sends nothing;
    returns True for that, False when something answered (not acknowledged)."""
    try:
        return fe.transceive(HLTA, timeout_ms, rx_crc=False) is None
    except CardReadError:
        return False
