"""The ISO 14443-3 Type A card every personality builds on: states, anticollision, HLTA."""

from kapos.ports.sim.rf import bits_of, bytes_of, crc_ok, with_crc

SEL_CODES = (0x93, 0x95, 0x97)
TRANSPORT_KEY = b"\xff" * 6


def reply(data, nbits=None, delay_us=90.0, crc=False):
    data = with_crc(data) if crc else bytes(data)
    return (data, len(data) * 8 if nbits is None else nbits, delay_us)


class VirtualCard:
    """An ISO 14443-3 Type A card: IDLE/READY/ACTIVE/HALT states, anticollision over
    cascade levels (4, 7 or 10-byte UID, cascade tag 0x88, BCC), SELECT, HLTA. Subclasses
    answer frames in the ACTIVE state through `command(frame)` (CRC checked/removed)."""

    sak = 0x00
    fdt_us = 90.0  # ISO 14443-3 frame delay time, roughly
    power_up_us = 1000.0

    def __init__(self, uid, sak=None, atqa=None):
        uid = bytes(uid)
        if len(uid) not in (4, 7, 10):
            raise ValueError("a Type A UID is 4, 7 or 10 bytes")
        self.uid = uid
        if sak is not None:
            self.sak = sak
        size = {4: 0, 7: 1, 10: 2}[len(uid)]
        self.atqa = bytes(atqa) if atqa else bytes(((size << 6) | 0x04, 0x00))
        if size == 0:
            parts = [uid]
        elif size == 1:
            parts = [b"\x88" + uid[:3], uid[3:]]
        else:
            parts = [b"\x88" + uid[:3], b"\x88" + uid[3:6], uid[6:]]
        self.levels = [p + bytes((p[0] ^ p[1] ^ p[2] ^ p[3],)) for p in parts]
        self.state = "off"
        self.halted = False
        self.crypto = False
        self.level = 0
        self._ready_at = 0.0

    def power_on(self, now_us=0.0):
        self.state = "idle"
        self.halted = False
        self.crypto = False
        self._ready_at = now_us + self.power_up_us
        self.on_reset()

    def power_off(self):
        self.state = "off"
        self.crypto = False

    def listening(self, now_us):
        return self.state != "off" and now_us >= self._ready_at

    def on_reset(self):
        """Forget protocol state (power-on, deselect)."""

    def _sleep(self):
        self.state = "halt" if self.halted else "idle"
        self.crypto = False
        self.on_reset()

    def mf_auth(self, cmd, block, key, uid4, encrypted):
        """MFAuthent against this card: 0 no answer, 1 nonce sent but key refused, 2 ok."""
        return 0

    def receive(self, data, nbits, encrypted):
        """A frame from the reader; returns (bytes, nbits, delay_us) or None."""
        st = self.state
        if encrypted != self.crypto and st not in ("ready", "active"):
            return None  # noise to a card that is not in the reader's crypto state
        if nbits == 7:
            cmd = data[0] & 0x7F
            if (cmd == 0x26 and st == "idle") or (cmd == 0x52 and st in ("idle", "halt")):
                self.state = "ready"
                self.level = 0
                return reply(self.atqa, delay_us=self.fdt_us)
            if st not in ("idle", "halt"):
                self._sleep()
            return None
        if st in ("idle", "halt", "off"):
            return None
        if st == "ready":
            return self._anticollision(data, nbits)
        if encrypted != self.crypto:
            self._sleep()  # noise to this card
            return None
        if nbits % 8 or not crc_ok(data):
            self._sleep()
            return None
        frame = data[:-2]
        if frame == b"\x50\x00":
            self.halted = True
            self._sleep()
            return None
        answer = self.command(frame)
        if answer is None:
            self._sleep()
        return answer

    def command(self, frame):
        return None

    def _anticollision(self, data, nbits):
        if nbits < 16 or data[0] != SEL_CODES[self.level]:
            self._sleep()
            return None
        nvb = data[1]
        cl = self.levels[self.level]
        if nvb == 0x70:
            if nbits != 72 or not crc_ok(data) or data[2:7] != cl:
                self._sleep()
                return None
            if self.level + 1 < len(self.levels):
                self.level += 1
                sak = 0x04
            else:
                self.state = "active"
                sak = self.sak
            return reply(bytes((sak,)), crc=True, delay_us=self.fdt_us)
        known = ((nvb >> 4) - 2) * 8 + (nvb & 0x07)
        if known < 0 or known > 39 or nbits != 16 + known:
            return None
        mine = bits_of(cl, 40)
        if bits_of(data[2:], known) != mine[:known]:
            return None  # not this card: stays READY, silent
        rest = mine[known:]
        return (bytes_of(rest), len(rest), self.fdt_us)
