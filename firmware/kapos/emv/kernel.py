"""The EMV entry point and kernel (EMV Book 1 12, Book 3 10, Book B / C-2 / C-3 in outline).

    result = run(channel, config, txn, contactless=True, choose=None)

Entry point: SELECT PPSE (contactless) or PSE (contact; its records), else each terminal
AID; candidates = card AIDs the terminal supports, by priority (87). A SELECT answering
6283 (blocked), 6A81 or any other error, or a GPO answering 6985, drops the candidate and
the next one is tried (Book 1 12.4, Book B 3.3.3). `choose(candidates)` is asked when the
card wants cardholder confirmation (87 bit 8), on contact when several apply, on a tap when
several share the top priority.

Kernel: GPO with the PDOL filled from terminal data, the records of the AFL, then
  - Visa qVSDC: the cryptogram comes with the GPO answer (9F26 9F27 9F36 9F10);
  - M/Chip and others: GENERATE AC asking for an ARQC with CDOL1 (after the records);
  - mag-stripe profile (no track 2 in 57, only 9F6B): COMPUTE CRYPTOGRAPHIC CHECKSUM
    when the card has a UDOL/mag-stripe data, entry mode "contactless mag-stripe".
CVM: above config.cvm_limit online PIN, or none when the card says it did CDCVM (CTQ
9F6C byte 2 bit 8); above the contactless limit no contactless transaction (the cardholder
must insert or swipe). TVR 95 and TSI 9B are kept. No offline data authentication: TVR says
"ODA not performed". Everything the host needs goes into `Result.icc_data` (field 55).

Errors: CardReadError names the command and the SW (never card data); CardRejected when
the card itself declines (AAC) or the amount rules out this interface.
"""

from kapos.compat import const
from kapos.emv import apdu as A
from kapos.emv import dol
from kapos.emv.terminal import VISA, terminal_data
from kapos.errors import CardReadError, CardRejected, DecodeError
from kapos.nfc import tlv

PPSE = b"2PAY.SYS.DDF01"
PSE = b"1PAY.SYS.DDF01"
MAX_RECORDS = const(32)
MAX_CANDIDATES = const(8)

CID_AAC = const(0x00)
CID_TC = const(0x40)
CID_ARQC = const(0x80)

# TVR (95) bits used here: (byte index, mask)
TVR_ODA_NOT_PERFORMED = (0, 0x80)
TVR_ICC_DATA_MISSING = (0, 0x20)
TVR_CVM_NOT_SUCCESSFUL = (2, 0x80)
TVR_ONLINE_PIN_ENTERED = (2, 0x04)
TVR_FLOOR_LIMIT_EXCEEDED = (3, 0x80)
# TSI (9B)
TSI_CVM_PERFORMED = (0, 0x40)
TSI_CARD_RISK_MANAGEMENT = (0, 0x20)

# Sent to the host in field 55 when known (the issuer rebuilds the ARQC input from them).
ICC_TAGS = (0x9F26, 0x9F27, 0x9F10, 0x9F36, 0x9F37, 0x95, 0x9A, 0x9C, 0x9F02, 0x5F2A, 0x82,
            0x9F1A, 0x9F33, 0x9F34, 0x84, 0x9F03, 0x9F35, 0x9F1E, 0x9F09, 0x9F6E, 0x9F66,
            0x5F34, 0x9F61, 0x9F6A, 0x9B, 0x9F41, 0x9F21)

CVM_ONLINE_PIN = "online_pin"
CVM_CDCVM = "cdcvm"
CVM_SIGNATURE = "signature"
CVM_NONE = "none"


def _set(bits, flag):
    bits[flag[0]] |= flag[1]


class Candidate:
    def __init__(self, aid, kernel, label, priority=0, preferred=None, confirm=False):
        self.aid = bytes(aid)
        self.kernel = kernel
        self.label = label
        self.priority = priority
        self.preferred = preferred
        self.confirm = confirm

    def display_name(self):
        return self.preferred or self.label

    def __repr__(self):
        return "Candidate(%s, %s)" % (self.aid.hex().upper(), self.kernel)


class Result:
    """What the kernel read and decided. `track2` (text 'PAN=YYMM...') is the card number
    for the host; `icc_data` the BER-TLV for field 55 (None in mag-stripe mode without a
    cryptogram); `entry` 'chip', 'contactless' or 'contactless_magstripe'."""

    def __init__(self):
        self.aid = None
        self.kernel = None
        self.label = ""
        self.path = None
        self.track2 = None
        self.pan_sequence = None
        self.cid = None
        self.cvm = CVM_NONE
        self.entry = None
        self.icc_data = None
        self.tvr = bytearray(5)
        self.tsi = bytearray(2)
        self.data = {}  # tag -> value, card and terminal, for the second GENERATE AC
        self.dropped = []  # (AID hex, reason) of candidates that were tried and dropped

    def needs_completion(self):
        """A contact card that wants the issuer's answer: the second GENERATE AC (CDOL2)."""
        return self.entry == "chip" and self.path == "mchip" and self.data.get(0x8D) is not None

    def __repr__(self):  # no card data
        return "Result(aid=%s, path=%s, cvm=%s)" % (
            self.aid.hex().upper() if self.aid else None, self.path, self.cvm)


def _check(sw, what):
    if sw != A.SW_OK:
        raise CardReadError("EMV: %s failed (SW %04X)" % (what, sw))


def _safe_parse(fn, *args):
    try:
        return fn(*args)
    except DecodeError as exc:
        raise CardReadError("EMV: malformed card answer (%s)" % exc)


def track2_text(value):
    """Tag 57 / 9F6B (BCD digits, 'D' separator, 'F' padding) -> 'PAN=YYMMSSS...'."""
    chars = []
    for b in value:
        for n in (b >> 4, b & 0x0F):
            chars.append(n)
    while chars and chars[-1] == 0x0F:
        chars = chars[:-1]
    out = []
    for n in chars:
        if n < 10:
            out.append(chr(0x30 + n))
        elif n == 0x0D:
            out.append("=")
        else:
            raise CardReadError("EMV: track 2 equivalent data has a bad digit")
    text = "".join(out)
    sep = text.find("=")
    if sep < 12 or sep > 19 or text.count("=") != 1 or len(text) - sep - 1 < 7:
        raise CardReadError("EMV: malformed track 2 equivalent data")
    return text


# ---------------------------------------------------------------- entry point

def _entries(templates, config):
    found = []
    for entry in templates:
        aid = tlv.find(entry, 0x4F)
        if not aid or not 5 <= len(aid) <= 16:
            continue
        match = config.kernel_for(aid)
        if match is None:
            continue  # not an application this terminal supports
        prio = tlv.find(entry, 0x87)
        label = tlv.find(entry, 0x50)
        name = tlv.find(entry, 0x9F12)
        c = Candidate(aid, match[0], _text(label) or match[1], (prio[0] & 0x0F) if prio else 0,
                      _text(name), bool(prio and prio[0] & 0x80))
        found.append(c)
    return found


def _text(value):
    if not value:
        return None
    return "".join(chr(b) if 0x20 <= b < 0x7F else "?" for b in value)


def _order(cands):
    keyed = [((c.priority or 16), i, c) for i, c in enumerate(cands)]
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [k[2] for k in keyed][:MAX_CANDIDATES]


def candidates(channel, config, contactless=True):
    """The candidate list, best first; [] when the card has none this terminal supports.
    None when a contactless card has no PPSE (not a payment card)."""
    if contactless:
        fci, sw = channel.send(0x00, 0xA4, 0x04, 0x00, PPSE)
        if sw != A.SW_OK:
            return None
        return _order(_safe_parse(_entries, tlv.find_all(fci, 0x61), config))
    fci, sw = channel.send(0x00, 0xA4, 0x04, 0x00, PSE)
    if sw == A.SW_OK:
        sfi = tlv.find(fci, 0x88)
        if sfi and 1 <= sfi[0] <= 10:
            templates = []
            for rec in range(1, MAX_RECORDS + 1):
                body, sw = channel.send(0x00, 0xB2, rec, (sfi[0] << 3) | 4)
                if sw == A.SW_RECORD_NOT_FOUND:
                    break
                _check(sw, "READ RECORD of the PSE")
                templates += _safe_parse(tlv.find_all, body, 0x61)
            found = _entries(templates, config)
            if found:
                return _order(found)
    # no PSE: the list of AIDs (Book 1 12.3.3), each selected in turn
    found = []
    for prefix, kernel, label in config.aids:
        fci, sw = channel.send(0x00, 0xA4, 0x04, 0x00, prefix)
        if sw == A.SW_OK:
            aid = tlv.find(fci, 0x84) or prefix
            prio = tlv.find(fci, 0x87)
            found.append(Candidate(aid, kernel, _text(tlv.find(fci, 0x50)) or label,
                                   (prio[0] & 0x0F) if prio else 0, _text(tlv.find(fci, 0x9F12)),
                                   bool(prio and prio[0] & 0x80)))
    return _order(found)


# ---------------------------------------------------------------- kernel

def _records(channel, afl, result):
    if len(afl) % 4:
        raise CardReadError("EMV: AFL length %d is not a multiple of 4" % len(afl))
    count = 0
    for i in range(0, len(afl), 4):
        sfi = afl[i] >> 3
        first, last = afl[i + 1], afl[i + 2]
        if not 1 <= sfi <= 30 or first == 0 or last < first:
            raise CardReadError("EMV: malformed AFL entry %d" % (i // 4))
        for rec in range(first, last + 1):
            count += 1
            if count > MAX_RECORDS:
                raise CardReadError("EMV: AFL lists more than %d records" % MAX_RECORDS)
            body, sw = channel.send(0x00, 0xB2, rec, (sfi << 3) | 4)
            _check(sw, "READ RECORD %d of SFI %d" % (rec, sfi))
            template = _safe_parse(tlv.parse, body)
            if len(template) != 1 or template[0][0] != 0x70:
                raise CardReadError("EMV: record %d of SFI %d is not a 70 template" % (rec, sfi))
            for tag, value in _safe_parse(tlv.parse, template[0][1]):
                result.data.setdefault(tag, value)


def _gpo(channel, data):
    body, sw = channel.send(0x80, 0xA8, 0x00, 0x00, tlv.encode(0x83, data))
    if sw != A.SW_OK:
        return None, sw
    found = {}
    fmt1 = _safe_parse(tlv.find, body, 0x80)
    if fmt1 is not None:
        if len(fmt1) < 2:
            raise CardReadError("EMV: GPO format 1 answer too short")
        found[0x82] = fmt1[:2]
        found[0x94] = fmt1[2:]
        return found, sw
    outer = _safe_parse(tlv.parse, body)
    if len(outer) != 1 or outer[0][0] != 0x77:
        raise CardReadError("EMV: GPO answer is neither format 1 nor format 2")
    for tag, value in _safe_parse(tlv.parse, outer[0][1]):
        found[tag] = value
    if 0x82 not in found:
        raise CardReadError("EMV: GPO answer has no AIP")
    return found, sw


def _generate_ac(channel, p1, cdol, data):
    body, sw = channel.send(0x80, 0xAE, p1, 0x00, dol.fill(cdol, data))
    _check(sw, "GENERATE AC")
    fmt1 = _safe_parse(tlv.find, body, 0x80)
    if fmt1 is not None:
        if len(fmt1) < 11:
            raise CardReadError("EMV: GENERATE AC format 1 answer too short")
        return {0x9F27: fmt1[:1], 0x9F36: fmt1[1:3], 0x9F26: fmt1[3:11], 0x9F10: fmt1[11:]}
    outer = _safe_parse(tlv.parse, body)
    if len(outer) != 1 or outer[0][0] != 0x77:
        raise CardReadError("EMV: GENERATE AC answer is neither format 1 nor 2")
    found = dict(_safe_parse(tlv.parse, outer[0][1]))
    for tag in (0x9F27, 0x9F36, 0x9F26):
        if tag not in found:
            raise CardReadError("EMV: GENERATE AC answer lacks tag %X" % tag)
    return found


def _cvm(result, config, txn, contactless, card):
    if txn.amount <= config.cvm_limit:
        result.cvm = CVM_NONE
        result.data[0x9F34] = b"\x1f\x00\x02"  # no CVM required, successful
        return
    ctq = card.get(0x9F6C)
    if contactless and ctq and len(ctq) >= 2 and ctq[1] & 0x80:
        result.cvm = CVM_CDCVM  # the cardholder verified on the device
        result.data[0x9F34] = b"\x01\x00\x02"
    elif config.online_pin:
        result.cvm = CVM_ONLINE_PIN
        result.data[0x9F34] = b"\x02\x00\x00"  # enciphered PIN online, result unknown
        _set(result.tvr, TVR_ONLINE_PIN_ENTERED)
    else:
        result.cvm = CVM_SIGNATURE
        result.data[0x9F34] = b"\x1e\x00\x00"
    _set(result.tsi, TSI_CVM_PERFORMED)


def _select_final(channel, cand, result):
    fci, sw = channel.send(0x00, 0xA4, 0x04, 0x00, cand.aid)
    if sw != A.SW_OK:
        return None, "SELECT SW %04X" % sw
    if _safe_parse(tlv.find, fci, 0x6F) is None:
        return None, "SELECT answer without FCI"
    return fci, None


def run(channel, config, txn, contactless=True, choose=None):
    """One card, one transaction: a Result, or CardReadError / CardRejected / None (a
    contactless ISO-DEP card that is not a payment card)."""
    cands = candidates(channel, config, contactless)
    if cands is None:
        return None
    if not cands:
        raise CardReadError("EMV: the card has no application this terminal supports")
    if contactless and txn.amount > config.contactless_limit:
        raise CardRejected("Amount over the contactless limit: insert or swipe card")
    result = Result()
    _set(result.tvr, TVR_ODA_NOT_PERFORMED)  # kapos does no offline data authentication
    if txn.amount > config.floor_limit:
        _set(result.tvr, TVR_FLOOR_LIMIT_EXCEEDED)
    data = terminal_data(config, txn, contactless)
    data[0x95] = bytes(result.tvr)  # what a PDOL asking for 95 gets (qVSDC signs it)
    if _select_and_read(channel, cands, data, result, choose, contactless):
        return _complete(channel, config, txn, data, result, contactless)
    raise CardReadError("EMV: no application on the card accepted the transaction")


def read_track2(channel, config, txn):
    """A tap outside a sale (idle, the technician's card test): the entry point, GPO and
    records of the first application that takes it, for the card number only. No
    GENERATE AC, no CVM, no field 55; whatever the GPO made the card compute stays on
    the terminal. The track 2 text, None for an ISO-DEP card without a PPSE (not a
    payment card), CardReadError otherwise."""
    cands = candidates(channel, config, True)
    if cands is None:
        return None
    if not cands:
        raise CardReadError("EMV: the card has no application this terminal supports")
    result = Result()
    data = terminal_data(config, txn, True)
    if not _select_and_read(channel, cands, data, result, None, True):
        raise CardReadError("EMV: no application on the card accepted the read")
    t2 = result.data.get(0x57)
    if t2 is None:
        t2 = result.data.get(0x9F6B)  # mag-stripe profile
    if t2 is None:
        raise CardReadError("EMV: no track 2 equivalent data on the card")
    return track2_text(t2)


def _cardholder_picks(cands, contactless):
    """Ask the cardholder (Book 1 12.4): a candidate wants confirmation (87 bit 8), or on
    contact several apply; on a tap, several share the top priority (the terminal would
    otherwise pick one the card did not rank first)."""
    if any(c.confirm for c in cands):
        return True
    if len(cands) < 2:
        return False
    if not contactless:
        return True
    return (cands[0].priority or 16) == (cands[1].priority or 16)


def _select_and_read(channel, cands, data, result, choose, contactless):
    """Final selection with fallback, GPO and the AFL's records into result.data;
    False when every candidate was dropped."""
    while cands:
        if choose is not None and _cardholder_picks(cands, contactless):
            picked = choose(cands)
            if picked is None:
                raise CardRejected("Cancelled by the cardholder")
            cands.remove(picked)
            cand = picked
        else:
            cand = cands.pop(0)
        fci, reason = _select_final(channel, cand, result)
        if fci is None:
            result.dropped.append((cand.aid.hex().upper(), reason))
            continue
        card = {}
        for tag in (0x84, 0x50, 0x9F12, 0x9F38, 0x5F2D, 0x9F11):
            v = _safe_parse(tlv.find, fci, tag)
            if v is not None:
                card[tag] = v
        data[0x9F09] = b"\x00\x8c" if cand.kernel == VISA else b"\x00\x02"
        gpo, sw = _gpo(channel, dol.fill(card.get(0x9F38), data))
        if gpo is None:
            if sw == A.SW_CONDITIONS_NOT_SATISFIED or sw == A.SW_FUNCTION_NOT_SUPPORTED:
                result.dropped.append((cand.aid.hex().upper(), "GPO SW %04X" % sw))
                continue  # this application will not do this transaction: next one
            raise CardReadError("EMV: GET PROCESSING OPTIONS failed (SW %04X)" % sw)
        result.aid = cand.aid
        result.kernel = cand.kernel
        # the preferred name only in a code table we can show (9F11 = 1, ISO 8859-1)
        preferred = _text(card.get(0x9F12)) if card.get(0x9F11) == b"\x01" else None
        result.label = preferred or _text(card.get(0x50)) or cand.display_name()
        result.data = card
        for tag, value in gpo.items():
            card[tag] = value
        _records(channel, gpo.get(0x94) or b"", result)
        return True
    return False


def _complete(channel, config, txn, data, result, contactless):
    card = result.data
    psn = card.get(0x5F34)
    if psn is not None:
        if len(psn) != 1 or (psn[0] >> 4) > 9 or (psn[0] & 0x0F) > 9:
            raise CardReadError("EMV: malformed PAN sequence number")
        result.pan_sequence = "%02X" % psn[0]
    _cvm(result, config, txn, contactless, card)
    t2 = card.get(0x57)
    if t2 is not None:
        result.track2 = track2_text(t2)
    elif contactless and card.get(0x9F6B) is not None:
        result.track2 = track2_text(card[0x9F6B])
        return _magstripe(channel, data, result)
    else:
        _set(result.tvr, TVR_ICC_DATA_MISSING)
        raise CardReadError("EMV: no track 2 equivalent data on the card")
    merged = {}
    for tag, value in data.items():
        if value is not None:
            merged[tag] = value
    merged[0x95] = bytes(result.tvr)
    merged[0x9F34] = card.get(0x9F34)
    merged[0x84] = result.aid
    for tag in (0x82, 0x5F34, 0x9F6E, 0x9F26, 0x9F27, 0x9F36, 0x9F10):
        if card.get(tag) is not None:
            merged[tag] = card[tag]
    if 0x9F26 in card:  # qVSDC: the GPO answer carried the cryptogram
        merged[0x95] = data[0x95]  # the TVR it covers is the one sent with the GPO
        result.path = "qvsdc" if contactless else "vsdc"
    else:
        cdol1 = card.get(0x8C)
        if cdol1 is None:
            raise CardReadError("EMV: the card returned no cryptogram and has no CDOL1")
        ac = _generate_ac(channel, CID_ARQC, cdol1, merged)
        merged.update(ac)
        card.update(ac)
        result.path = "mchip"
        _set(result.tsi, TSI_CARD_RISK_MANAGEMENT)
    cid = merged.get(0x9F27)
    if not cid or len(merged.get(0x9F26) or b"") != 8 or len(merged.get(0x9F36) or b"") != 2:
        raise CardReadError("EMV: the card's cryptogram is incomplete")
    result.cid = cid[0] & 0xC0
    if result.cid == CID_AAC:
        raise CardRejected("Declined by the card")
    merged[0x9B] = bytes(result.tsi)
    result.data = merged
    result.entry = "contactless" if contactless else "chip"
    result.icc_data = icc_data(merged)
    for tag, value in card.items():  # CDOL2 etc. for the second GENERATE AC
        result.data.setdefault(tag, value)
    return result


def _magstripe(channel, data, result):
    """Mastercard mag-stripe profile: track data from 9F6B; a CVC3 over the UN when the
    card has mag-stripe data (COMPUTE CRYPTOGRAPHIC CHECKSUM with its UDOL, 9F6A4 default)."""
    card = result.data
    result.path = "magstripe"
    result.entry = "contactless_magstripe"
    if card.get(0x9F65) is not None or card.get(0x9F69) is not None:
        udol = card.get(0x9F69) or b"\x9f\x6a\x04"
        values = dict(data)
        values[0x9F6A] = data[0x9F37]
        body, sw = channel.send(0x80, 0x2A, 0x8E, 0x80, dol.fill(udol, values))
        _check(sw, "COMPUTE CRYPTOGRAPHIC CHECKSUM")
        found = dict(_safe_parse(tlv.parse, body)).get(0x77)
        if found is None:
            raise CardReadError("EMV: COMPUTE CRYPTOGRAPHIC CHECKSUM answer is not a 77 template")
        cc = dict(_safe_parse(tlv.parse, found))
        merged = {0x9F6A: data[0x9F37], 0x84: result.aid, 0x9F1A: data[0x9F1A],
                  0x5F2A: data[0x5F2A], 0x9F02: data[0x9F02], 0x9A: data[0x9A], 0x9C: data[0x9C]}
        for tag in (0x9F61, 0x9F60, 0x9F36):
            if cc.get(tag) is not None:
                merged[tag] = cc[tag]
        result.icc_data = icc_data(merged)
        result.data.update(merged)
    return result


def icc_data(values):
    """Field 55: the ICC_TAGS present in `values`, BER-TLV, in that order."""
    out = b""
    for tag in ICC_TAGS:
        v = values.get(tag)
        if v is not None:
            out += tlv.encode(tag, v)
    return out


def second_generate_ac(channel, result, arc, issuer_auth):
    """Contact M/Chip after the host answered: CDOL2 with the response code (8A, 2 ASCII
    bytes) and the issuer authentication data (91: ARPC + ARC/CSU); the card checks the
    ARPC. Returns the CID: 0x40 TC (approved by the card too) or 0x00 AAC."""
    cdol2 = result.data.get(0x8D)
    if cdol2 is None:
        raise CardReadError("EMV: the card has no CDOL2")
    values = dict(result.data)
    values[0x8A] = bytes(arc)
    values[0x91] = bytes(issuer_auth or b"")
    approved = arc in (b"00", b"10", b"11")
    ac = _generate_ac(channel, CID_TC if approved else CID_AAC, cdol2, values)
    result.data.update(ac)
    return ac[0x9F27][0] & 0xC0
