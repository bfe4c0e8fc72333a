"""A virtual contact card for vsmartcard's vpcd (the PC/SC driver `vsmartcard-vpcd`), so the
real pcscd and pyscard stack talk to an emulated EMV card (kapos.ports.sim.cards.emv_app).

vpcd's socket protocol (vsmartcard documentation): every message has a 2-byte big-endian
length; a 1-byte message is a control code (0 power off, 1 power on, 2 reset, 4 get ATR,
answered with the ATR, empty when no card is inserted), anything longer is a command APDU
answered with the response APDU. We run vpcd in its "reversed" mode (DEVICENAME
127.0.0.1:PORT in the reader configuration): it connects to us, so nothing listens
beyond loopback. vpcd opens two slots, PORT and PORT + 1; both are served here.

With `t0=True` the card behaves like a T=0 card: a command whose answer has data gets
61xx and the data comes with GET RESPONSE (the kernel's job to ask)."""

import socket
import threading

# ATR of a T=0 card: TS 3B, T0 69 (TB1 present, 9 historical bytes), TB1 00, "KAPOS-EMV"
ATR = bytes.fromhex("3B6900") + b"KAPOS-EMV"


def free_port_pair(host="127.0.0.1", tries=20):
    """Two listening sockets on consecutive ephemeral ports (vpcd wants PORT, PORT + 1)."""
    for _ in range(tries):
        first = socket.socket()
        first.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        first.bind((host, 0))
        port = first.getsockname()[1]
        second = socket.socket()
        second.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            second.bind((host, port + 1))
        except OSError:
            first.close()
            second.close()
            continue
        first.listen(1)
        second.listen(1)
        return first, second
    raise OSError("no two consecutive free ports on %s" % host)


def _recv_exact(conn, n):
    out = b""
    while len(out) < n:
        chunk = conn.recv(n - len(out))
        if not chunk:
            return None
        out += chunk
    return out


class VpcdSlot:
    """One vpcd slot: `card` (an EmvCard or None when nothing is inserted)."""

    def __init__(self, listener, card=None, t0=False):
        self.listener = listener
        self.card = card
        self.t0 = t0
        self.powered = False
        self._pending = b""
        self.connected = threading.Event()
        self.apdus = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def insert(self, card):
        self.card = card

    def remove(self):
        self.card = None
        self.powered = False

    def _answer(self, message):
        if len(message) == 1:
            code = message[0]
            if code == 4:
                return ATR if self.card is not None else b""
            if code in (1, 2):
                self.powered = self.card is not None
                self._pending = b""
            elif code == 0:
                self.powered = False
            return None
        if self.card is None or not self.powered:
            return b""
        self.apdus += 1
        if self.t0 and message[1:2] == b"\xc0" and self._pending:
            data, self._pending = self._pending, b""
            return data + b"\x90\x00"
        resp = self.card.respond(message)
        if self.t0 and len(resp) > 2 and resp[-2:] == b"\x90\x00":
            self._pending = resp[:-2]
            return bytes((0x61, len(self._pending) & 0xFF))
        return resp

    def _serve(self):
        # vpcd drops the connection when GET ATR is empty (no card) and connects again at
        # its next presence poll: accept again and again until closed
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connected.set()
            with conn:
                self._session(conn)

    def _session(self, conn):
        while True:
            try:
                head = _recv_exact(conn, 2)
                if head is None:
                    return
                message = _recv_exact(conn, (head[0] << 8) | head[1])
                if message is None:
                    return
                answer = self._answer(message)
                if answer is not None:
                    conn.sendall(bytes((len(answer) >> 8, len(answer) & 0xFF)) + answer)
            except OSError:
                return

    def close(self):
        try:
            self.listener.close()
        except OSError:
            pass


class VpcdCardPair:
    """Both vpcd slots on loopback; slot 0 holds the test's card, slot 1 `spare`."""

    def __init__(self, card=None, t0=True, spare=None):
        first, second = free_port_pair()
        self.port = first.getsockname()[1]
        self.slot = VpcdSlot(first, card, t0)
        self.spare = VpcdSlot(second, spare, t0)

    def reader_conf(self):
        """The reader.conf.d entry that points vpcd at us (reversed mode, loopback)."""
        return ('FRIENDLYNAME "Virtual PCD"\nDEVICENAME   127.0.0.1:0x%X\n'
                'LIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so\nCHANNELID    0x%X\n'
                % (self.port, self.port))

    def close(self):
        self.slot.close()
        self.spare.close()
