"""An ISO 14443-4 (ISO-DEP) card: RATS/ATS and the block protocol, APDUs to a handler."""

from kapos.ports.sim.cards.base import VirtualCard, reply
from kapos.ports.sim.rf import FC_MHZ, crc_ok

FSD_TABLE = (16, 24, 32, 40, 48, 64, 96, 128, 256)


class IsoDepCard(VirtualCard):
    """An ISO 14443-4 card: RATS -> ATS (fsci, fwi, sfgi, historical bytes), then the block
    protocol with its PICC rules: I-blocks with block numbers, chaining both ways (our
    answers are cut to the reader's FSD), R(ACK)/R(NAK) recovery, S(DESELECT).
    `apdu_handler(apdu) -> response APDU` (bytes, SW included); `apdus` logs commands."""

    sak = 0x20
    block_us = 150.0  # delay of protocol-only answers (R(ACK), chained blocks)

    def __init__(self, uid, apdu_handler=None, fsci=8, fwi=7, sfgi=0, historical=b"",
                 processing_us=1000.0, sak=None, atqa=None):
        VirtualCard.__init__(self, uid, sak=sak, atqa=atqa)
        self.handler = apdu_handler or (lambda apdu: b"\x6d\x00")
        self.fwi = fwi
        self.processing_us = processing_us
        body = bytes((0x70 | fsci, 0x00, (fwi << 4) | sfgi, 0x00)) + bytes(historical)
        self.ats = bytes((len(body) + 1,)) + body
        self.apdus = []
        self.fsd = 32

    @property
    def fwt_us(self):
        return 4096 / FC_MHZ * (1 << self.fwi)

    def on_reset(self):
        self.bn = 1
        self._rx = bytearray()
        self._chunks = []
        self._last = None

    def receive(self, data, nbits, encrypted):
        if self.state == "protocol":
            return self._block(data, nbits)
        return VirtualCard.receive(self, data, nbits, encrypted)

    def command(self, frame):
        if len(frame) == 2 and frame[0] == 0xE0:
            self.fsd = FSD_TABLE[min(frame[1] >> 4, 8)]
            self.state = "protocol"
            self.bn = 1
            return reply(self.ats, crc=True, delay_us=self.block_us)
        return None

    def _send(self, block, delay_us):
        self._last = (bytes(block), delay_us)
        return reply(block, crc=True, delay_us=delay_us)

    def _next_chunk(self, delay_us):
        chunk = self._chunks.pop(0)
        pcb = 0x02 | self.bn | (0x10 if self._chunks else 0)
        return self._send(bytes((pcb,)) + chunk, delay_us)

    def _block(self, data, nbits):
        if nbits % 8 or not crc_ok(data):
            return None  # invalid block: ignored
        block = data[:-2]
        pcb = block[0]
        if pcb & 0xE2 == 0x02:  # I-block
            self.bn = pcb & 1
            start = 2 if pcb & 0x08 else 1
            self._rx += block[start + (1 if pcb & 0x04 else 0):]
            if pcb & 0x10:
                return self._send(bytes((0xA2 | self.bn,)), self.block_us)
            apdu = bytes(self._rx)
            self._rx = bytearray()
            self.apdus.append(apdu)
            resp = bytes(self.handler(apdu))
            step = self.fsd - 3
            self._chunks = [resp[i:i + step] for i in range(0, len(resp), step)] or [b""]
            return self._respond()
        if pcb & 0xE6 == 0xA2:  # R-block
            same = pcb & 1 == self.bn
            if pcb & 0x10:  # NAK
                return self._resend() if same else self._send(bytes((0xA2 | self.bn,)), self.block_us)
            if same:
                return self._resend()
            if self._chunks:
                self.bn ^= 1
                return self._next_chunk(self.block_us)
            return None
        if pcb & 0xC7 == 0xC2:  # S-block
            if pcb & 0x30 == 0x00:
                self.halted = True
                self._sleep()
                return reply(b"\xc2", crc=True, delay_us=self.block_us)
            if pcb & 0x30 == 0x30:
                return self._after_wtx()
        return None

    def _resend(self):
        if self._last is None:
            return None
        return reply(self._last[0], crc=True, delay_us=self._last[1])

    def _respond(self):
        """The answer to a complete APDU (subclasses may ask for more time first)."""
        return self._next_chunk(self.processing_us)

    def _after_wtx(self):
        return None
