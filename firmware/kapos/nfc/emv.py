"""Minimal EMV contactless read over ISO-DEP: the track 2 equivalent data (tag 57).

SELECT PPSE "2PAY.SYS.DDF01" -> pick the application (lowest priority indicator 87) ->
SELECT AID -> GET PROCESSING OPTIONS with the PDOL filled from `terminal_data` (absent
tags as zeros) -> tag 57 from the GPO answer, else READ RECORD over the AFL until found.

This is a read of the card's magstripe-equivalent data for a closed-loop / test terminal,
not an EMV kernel: no offline data authentication, no cryptogram. Nothing read here is
put into an error message (SW values and record numbers only).
"""

from kapos.compat import const
from kapos.errors import CardReadError, RemoteProtocolError
from kapos.nfc import tlv

PPSE = b"2PAY.SYS.DDF01"
SW_OK = const(0x9000)
MAX_RECORDS = const(32)

TAG_FCI = const(0x6F)
TAG_DIR_ENTRY = const(0x61)
TAG_AID = const(0x4F)
TAG_PRIORITY = const(0x87)
TAG_PDOL = const(0x9F38)
TAG_COMMAND_TEMPLATE = const(0x83)
TAG_GPO_FORMAT1 = const(0x80)
TAG_AIP = const(0x82)
TAG_AFL = const(0x94)
TAG_TRACK2 = const(0x57)

# Terminal transaction qualifiers (9F66): EMV mode, online PIN, signature; online cryptogram.
DEFAULT_TERMINAL_DATA = {0x9F66: b"\x26\x80\x00\x00"}


def command(cla, ins, p1, p2, data=None, le=0):
    """A short command APDU (case 2, 3 or 4)."""
    out = bytes((cla, ins, p1, p2))
    if data is not None:
        out += bytes((len(data),)) + bytes(data)
    if le is not None:
        out += bytes((le,))
    return out


def transmit(dep, apdu):
    """Exchange one APDU; (data, sw)."""
    resp = dep.exchange(apdu)
    if len(resp) < 2:
        raise RemoteProtocolError("response APDU shorter than its status word")
    return resp[:-2], (resp[-2] << 8) | resp[-1]


def select(dep, name):
    return transmit(dep, command(0x00, 0xA4, 0x04, 0x00, name))


def applications(fci):
    """AIDs listed in a PPSE FCI, highest priority (lowest 87 value) first."""
    found = []
    for entry in tlv.find_all(fci, TAG_DIR_ENTRY):
        aid = tlv.find(entry, TAG_AID)
        if not aid or not 5 <= len(aid) <= 16:
            continue
        prio = tlv.find(entry, TAG_PRIORITY)
        rank = (prio[0] & 0x0F) if prio else 0
        found.append((rank or 16, len(found), aid))
    found.sort()
    return [f[2] for f in found]


def pdol_data(pdol, terminal_data=None):
    """Concatenated values for a PDOL: from terminal_data (tag -> bytes), else
    DEFAULT_TERMINAL_DATA, else zeros; each cut or zero-padded to the asked length."""
    out = b""
    for tag, length in tlv.parse_dol(pdol):
        value = None
        if terminal_data:
            value = terminal_data.get(tag)
        if value is None:
            value = DEFAULT_TERMINAL_DATA.get(tag, b"")
        value = bytes(value[:length])
        out += value + bytes(length - len(value))
    return out


def track2_text(value):
    """Tag 57 (BCD digits, 'D' separator, 'F' padding) -> 'PAN=YYMMSSS...'."""
    nibbles = []
    for b in value:
        nibbles.append(b >> 4)
        nibbles.append(b & 0x0F)
    while nibbles and nibbles[-1] == 0x0F:
        nibbles.pop()
    chars = []
    for n in nibbles:
        if n < 10:
            chars.append(chr(0x30 + n))
        elif n == 0x0D:
            chars.append("=")
        else:
            raise CardReadError("EMV: track 2 equivalent data has a bad digit")
    text = "".join(chars)
    sep = text.find("=")
    if sep < 12 or sep > 19 or text.count("=") != 1 or len(text) - sep - 1 < 7:
        raise CardReadError("EMV: malformed track 2 equivalent data")
    return text


def _afl(gpo):
    fmt1 = tlv.find(gpo, TAG_GPO_FORMAT1)
    if fmt1 is not None:
        if len(fmt1) < 2:
            raise RemoteProtocolError("EMV: GPO format 1 answer too short")
        return fmt1[2:]
    return tlv.find(gpo, TAG_AFL) or b""


def read_track2(dep, terminal_data=None):
    """The card's track 2 equivalent as text, or None when the card has no PPSE (not a
    contactless payment card). CardReadError when it has one but the read fails."""
    fci, sw = select(dep, PPSE)
    if sw != SW_OK:
        return None
    aids = applications(fci)
    if not aids:
        raise CardReadError("EMV: PPSE lists no application")
    fci, sw = select(dep, aids[0])
    if sw != SW_OK:
        raise CardReadError("EMV: SELECT AID failed (SW %04X)" % sw)
    pdol = tlv.find(fci, TAG_PDOL)
    data = pdol_data(pdol, terminal_data) if pdol else b""
    gpo, sw = transmit(dep, command(0x80, 0xA8, 0x00, 0x00, tlv.encode(TAG_COMMAND_TEMPLATE, data)))
    if sw != SW_OK:
        raise CardReadError("EMV: GET PROCESSING OPTIONS failed (SW %04X)" % sw)
    t2 = tlv.find(gpo, TAG_TRACK2)
    if t2:
        return track2_text(t2)
    afl = _afl(gpo)
    if len(afl) % 4:
        raise RemoteProtocolError("EMV: AFL length %d is not a multiple of 4" % len(afl))
    count = 0
    for i in range(0, len(afl), 4):
        sfi = afl[i] >> 3
        first = afl[i + 1]
        last = afl[i + 2]
        if not 1 <= sfi <= 30 or first == 0 or last < first:
            raise RemoteProtocolError("EMV: malformed AFL entry %d" % (i // 4))
        for rec in range(first, last + 1):
            count += 1
            if count > MAX_RECORDS:
                raise CardReadError("EMV: AFL lists more than %d records" % MAX_RECORDS)
            body, sw = transmit(dep, command(0x00, 0xB2, rec, (sfi << 3) | 4))
            if sw != SW_OK:
                raise CardReadError("EMV: READ RECORD %d of SFI %d failed (SW %04X)" % (rec, sfi, sw))
            t2 = tlv.find(body, TAG_TRACK2)
            if t2:
                return track2_text(t2)
    raise CardReadError("EMV: no track 2 equivalent data on the card")
