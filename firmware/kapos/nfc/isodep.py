"""ISO/IEC 14443-4 (ISO-DEP), reader side: RATS/ATS, the half-duplex block protocol,
chaining in both directions, R(ACK)/R(NAK) recovery, S(WTX) and S(DESELECT).

    dep = IsoDep(frontend)      # after iso14443a.activate() selected a card with SAK bit 0x20
    dep.activate()              # RATS -> ATS: FSC, FWI, SFGI
    rapdu = dep.exchange(capdu) # any length; chained to fit the card's FSC and our FIFO
    dep.deselect()

Errors: a card that keeps silent (or garbles) after `retries` R(NAK)/R(ACK) recoveries
raises CardReadError("... stopped answering ..."); this is what a card leaving the field
mid-exchange gives. A card breaking the block rules raises RemoteProtocolError.
"""

from kapos.compat import const
from kapos.errors import CardReadError, LocalProtocolError, RemoteProtocolError

RATS = const(0xE0)
FSD_TABLE = (16, 24, 32, 40, 48, 64, 96, 128, 256)  # FSDI/FSCI -> frame size (with CRC)

PCB_I = const(0x02)
PCB_CHAIN = const(0x10)
PCB_CID = const(0x08)
PCB_NAD = const(0x04)
PCB_R_ACK = const(0xA2)
PCB_R_NAK = const(0xB2)
PCB_S_DESELECT = const(0xC2)
PCB_S_WTX = const(0xF2)

FC_HZ = 13560000.0
DELTA_FWT_MS = 49152 * 1000.0 / FC_HZ  # ISO 14443-4 / EMV: added to every FWT
FWT_ACTIVATION_MS = 71680 * 1000.0 / FC_HZ + DELTA_FWT_MS
FWT_DESELECT_MS = 65536 * 1000.0 / FC_HZ + DELTA_FWT_MS
FWI_MAX = const(14)

_SEND_CHAIN = const(0)  # we sent an I-block with the chaining bit: expect R(ACK)
_SEND_LAST = const(1)  # we sent the last I-block: expect an I-block
_RECV_CHAIN = const(2)  # we sent R(ACK) to get the card's next chained I-block


def fwt_ms(fwi):
    """Frame waiting time, ISO 14443-4: FWT = (256 * 16 / fc) * 2^FWI, in ms."""
    return 256 * 16 * (1 << fwi) * 1000.0 / FC_HZ


def is_i_block(pcb):
    return pcb & 0xE2 == 0x02


def is_r_block(pcb):
    return pcb & 0xE6 == 0xA2


def is_s_block(pcb):
    return pcb & 0xC7 == 0xC2


def parse_ats(ats):
    """(fsc, fwi, sfgi, historical bytes) of an ATS (CRC removed), with ISO defaults for
    absent interface bytes (FSCI 2, FWI 4, SFGI 0) and RFU values mapped as ISO says."""
    n = len(ats)
    if n < 1 or ats[0] != n:
        raise RemoteProtocolError("ATS length byte does not match its %d bytes" % n)
    fsci, fwi, sfgi = 2, 4, 0
    i = 1
    if n > 1:
        t0 = ats[1]
        fsci = t0 & 0x0F
        i = 2
        for bit in (0x10, 0x20, 0x40):  # TA, TB, TC
            if t0 & bit:
                if i >= n:
                    raise RemoteProtocolError("ATS shorter than its format byte T0 says")
                if bit == 0x20:
                    fwi = ats[i] >> 4
                    sfgi = ats[i] & 0x0F
                i += 1
    if fsci > 8:
        fsci = 8
    if fwi > FWI_MAX:
        fwi = 4
    if sfgi > FWI_MAX:
        sfgi = 0
    return FSD_TABLE[fsci], fwi, sfgi, bytes(ats[i:])


def _inf_start(pcb):
    i = 1
    if pcb & PCB_CID:
        i += 1
    if is_i_block(pcb) and pcb & PCB_NAD:
        i += 1
    return i


class IsoDep:
    """One ISO-DEP session with the selected card.

    fsd: the largest frame we can receive (with PCB and CRC); max_frame: the largest we
    can send (the frontend's FIFO); retries: recoveries per block before giving up;
    max_wtx: waiting-time extensions honoured per exchange; max_response: bytes."""

    def __init__(self, fe, fsd=64, max_frame=64, retries=2, max_wtx=100, max_response=4096):
        self.fe = fe
        fsdi = 0
        for i in range(len(FSD_TABLE)):
            if FSD_TABLE[i] <= fsd:
                fsdi = i
        self.fsdi = fsdi
        self.fsd = FSD_TABLE[fsdi]
        self.max_frame = max_frame
        self.retries = retries
        self.max_wtx = max_wtx
        self.max_response = max_response
        self.fsc = 32
        self.fwi = 4
        self.sfgi = 0
        self.historical = b""
        self.fwt_ms = fwt_ms(4) + DELTA_FWT_MS
        self.block_number = 0
        self.active = False
        self.wtx_count = 0  # S(WTX) requests answered during the last exchange

    def activate(self):
        """Send RATS (FSDI for our FSD, CID 0), parse the ATS, wait SFGT. Returns the ATS."""
        ats = self.fe.transceive(bytes((RATS, self.fsdi << 4)), FWT_ACTIVATION_MS)
        if ats is None:
            raise CardReadError("no answer to RATS")
        self.fsc, self.fwi, self.sfgi, self.historical = parse_ats(ats)
        self.fwt_ms = fwt_ms(self.fwi) + DELTA_FWT_MS
        self.block_number = 0
        if self.sfgi:
            self.fe.delay_us(int(fwt_ms(self.sfgi) * 1000) + 1)
        self.active = True
        return ats

    def exchange(self, apdu):
        """Send a command APDU, return the complete response APDU (data + SW1 SW2)."""
        if not self.active:
            raise LocalProtocolError("ISO-DEP exchange before activation")
        self.wtx_count = 0
        apdu = bytes(apdu)
        max_inf = min(self.fsc, self.max_frame) - 3  # PCB + CRC_A
        off = 0
        n = len(apdu)
        while n - off > max_inf:
            block = bytes((PCB_I | PCB_CHAIN | self.block_number,)) + apdu[off:off + max_inf]
            self._transact(block, _SEND_CHAIN)
            off += max_inf
        resp = self._transact(bytes((PCB_I | self.block_number,)) + apdu[off:], _SEND_LAST)
        out = bytearray()
        blocks = 1
        while True:
            pcb = resp[0]
            out += resp[_inf_start(pcb):]
            if len(out) > self.max_response:
                raise RemoteProtocolError("response longer than %d bytes" % self.max_response)
            if not pcb & PCB_CHAIN:
                return bytes(out)
            blocks += 1
            if blocks > self.max_response:
                raise RemoteProtocolError("card chains too many blocks")
            resp = self._transact(bytes((PCB_R_ACK | self.block_number,)), _RECV_CHAIN)

    def _transact(self, block, mode):
        """Send `block`, return the valid answer for `mode` (toggling the block number as
        ISO 14443-4 rule B says), recovering from silence and errors by rules 4-6."""
        if mode == _RECV_CHAIN:
            retry = block  # rule 5: R(ACK) again
        else:
            retry = bytes((PCB_R_NAK | self.block_number,))  # rule 4
        send = block
        timeout = self.fwt_ms
        errors = 0
        while True:
            try:
                resp = self.fe.transceive(send, timeout)
            except CardReadError:
                resp = None  # garbled: an invalid block
            timeout = self.fwt_ms
            if resp:
                pcb = resp[0]
                body = resp[_inf_start(pcb):]
                if is_s_block(pcb) and pcb & 0x30 == 0x30 and len(body) == 1:
                    wtxm = body[0] & 0x3F
                    if not 1 <= wtxm <= 59:
                        raise RemoteProtocolError("S(WTX) with WTXM %d (allowed 1-59)" % wtxm)
                    self.wtx_count += 1
                    if self.wtx_count > self.max_wtx:
                        raise CardReadError("card asked for more time over %d times" % self.max_wtx)
                    send = bytes((PCB_S_WTX, wtxm))
                    timeout = min(fwt_ms(self.fwi) * wtxm, fwt_ms(FWI_MAX)) + DELTA_FWT_MS
                    continue
                if is_i_block(pcb):
                    if mode == _SEND_CHAIN:
                        raise RemoteProtocolError("card sent an I-block while we were chaining")
                    if pcb & 1 == self.block_number:
                        self.block_number ^= 1
                        return resp
                elif is_r_block(pcb):
                    if pcb & 0x10:
                        raise RemoteProtocolError("card sent R(NAK)")
                    if pcb & 1 == self.block_number:
                        if mode == _SEND_CHAIN:
                            self.block_number ^= 1
                            return resp
                    elif mode != _RECV_CHAIN:
                        send = block  # rule 6: the card missed our I-block
                        errors += 1
                        if errors > self.retries:
                            break
                        continue
                elif is_s_block(pcb) and pcb & 0x30 == 0:
                    raise RemoteProtocolError("card sent S(DESELECT) unasked")
            errors += 1
            if errors > self.retries:
                break
            send = retry
        raise CardReadError("card stopped answering (left the field?)")

    def deselect(self):
        """S(DESELECT): the card goes to HALT. Returns True when it confirmed."""
        self.active = False
        for _ in range(2):
            try:
                r = self.fe.transceive(bytes((PCB_S_DESELECT,)), FWT_DESELECT_MS)
            except CardReadError:
                r = None
            if r and r[0] & 0xF7 == PCB_S_DESELECT:
                return True
        return False
