"""MIFARE Classic 1K: sectors, keys in the trailers, MFAuthent (Crypto1 not computed)."""

from kapos.ports.sim.cards.base import TRANSPORT_KEY, VirtualCard, reply


class MifareClassic1K(VirtualCard):
    """MIFARE Classic 1K: 16 sectors x 4 blocks x 16 bytes. `blocks`: {block: 16 bytes};
    `key_a`/`key_b`: one 6-byte key for every sector or {sector: key}. Keys live in the
    sector trailers (bytes 0-5 key A, 6-9 access bits FF 07 80 69, 10-15 key B); reading a
    trailer shows key A as zeros. Block 0 (manufacturer) is read-only."""

    sak = 0x08
    write_us = 2500.0

    def __init__(self, uid, blocks=None, key_a=TRANSPORT_KEY, key_b=TRANSPORT_KEY, sak=None):
        VirtualCard.__init__(self, uid, sak=sak)
        self.mem = [bytearray(16) for _ in range(64)]
        head = self.uid + (bytes((self.levels[0][4],)) if len(self.uid) == 4 else b"")
        self.mem[0][:len(head) + 3] = head + bytes((self.sak,)) + self.atqa
        for sector in range(16):
            ka = key_a.get(sector, TRANSPORT_KEY) if isinstance(key_a, dict) else key_a
            kb = key_b.get(sector, TRANSPORT_KEY) if isinstance(key_b, dict) else key_b
            self.mem[sector * 4 + 3][:] = bytes(ka) + b"\xff\x07\x80\x69" + bytes(kb)
        for block, value in (blocks or {}).items():
            self.mem[block][:] = bytes(value)
        self.auth_sector = None
        self._write_block = None

    def on_reset(self):
        self.auth_sector = None
        self._write_block = None

    def mf_auth(self, cmd, block, key, uid4, encrypted):
        if self.state != "active" or encrypted != self.crypto or cmd not in (0x60, 0x61) or block >= 64:
            return 0
        trailer = self.mem[(block // 4) * 4 + 3]
        stored = bytes(trailer[0:6] if cmd == 0x60 else trailer[10:16])
        if bytes(key) != stored or bytes(uid4) != self.uid[-4:]:
            self._sleep()
            return 1
        self.crypto = True
        self.auth_sector = block // 4
        return 2

    def _ack(self, ok, delay_us=None):
        return (bytes((0x0A if ok else 0x04,)), 4, self.fdt_us if delay_us is None else delay_us)

    def command(self, frame):
        if self._write_block is not None:
            block, self._write_block = self._write_block, None
            if len(frame) != 16:
                return self._ack(False)
            self.mem[block][:] = frame
            return self._ack(True, self.write_us)
        if not self.crypto or len(frame) != 2:
            return None
        cmd, block = frame[0], frame[1]
        if block >= 64 or block // 4 != self.auth_sector:
            return self._ack(False)
        if cmd == 0x30:
            data = bytes(self.mem[block])
            if block % 4 == 3:
                data = bytes(6) + data[6:]
            return reply(data, crc=True, delay_us=self.fdt_us)
        if cmd == 0xA0:
            if block == 0:
                return self._ack(False)
            self._write_block = block
            return self._ack(True)
        return None
