"""A client written from docs/protocol.md alone talks to the reference host.

It uses the shipped pyiso8583 spec (kapos_tools.pyiso8583_spec) for the messages,
pycryptodome for every MAC, the card data encryption and the PIN block, and
kapos.security.dukpt only to derive DUKPT keys (a published algorithm with its own vector
tests). No other kapos code is imported: the host runs as a separate process
(`python -m kapos_tools.host`) on an ephemeral loopback port. The client signs on, sells
with a PIN and enciphered card data, reverses that sale, sells again and settles, and
checks the MAC of every reply.
"""

import hashlib
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

iso8583 = pytest.importorskip("iso8583")

from Crypto.Cipher import AES  # noqa: E402
from Crypto.Hash import CMAC  # noqa: E402

from kapos.security import dukpt  # noqa: E402  (key derivation only)
from kapos_tools.pyiso8583_spec import KAPOS_87  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# docs/protocol.md 11.1 and 11.2
BDK = bytes.fromhex("FEDCBA9876543210F1F1F1F1F1F1F1F1")
BDK_ID = bytes.fromhex("12345678")
PIN_ENCRYPTION, MAC_GENERATION, MAC_VERIFICATION, DATA_ENCRYPT = 0x1000, 0x2000, 0x2001, 0x3000

TERMINAL = "FOREIGN1"
MERCHANT = "FOREIGN-SHOP".ljust(15)
PAN, PIN = "4111111111111111", "1234"  # the public visa-debit test card


def host_command(*args):
    return [sys.executable, "-m", "kapos_tools.host"] + list(args)


def host_options():
    """--auto-enroll when this host has terminal enrolment (an unknown terminal gets 63)."""
    shown = subprocess.run(host_command("--help"), capture_output=True, text=True, cwd=ROOT,
                           timeout=60)
    return ["--auto-enroll"] if "--auto-enroll" in shown.stdout else []


class ForeignTerminal:
    """One TCP connection, pyiso8583 messages, pycryptodome crypto, a rising KSN."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.ik_id = BDK_ID + hashlib.sha256(TERMINAL.encode()).digest()[:4]
        self.counter = 0
        self.stan = 0

    def close(self):
        self.sock.close()

    # -------------------------------------------------------- keys (11.2)

    def next_ksn(self):
        self.counter += 1
        return self.ik_id + self.counter.to_bytes(4, "big")

    @staticmethod
    def key(ksn, usage):
        return dukpt.host_derive_working_key(BDK, ksn, usage)

    # -------------------------------------------------------- 11.3, 11.4, 11.5

    @staticmethod
    def cmac8(key, data):
        return CMAC.new(key, msg=data, ciphermod=AES).digest()[:8]

    def enciphered_track(self, ksn, track2):
        text = ("T2=" + track2).encode() + b"\x80"
        text += bytes(-len(text) % 16)
        cipher = AES.new(self.key(ksn, DATA_ENCRYPT), AES.MODE_CBC, iv=bytes(16)).encrypt(text)
        return cipher.hex().upper()

    def pin_block(self, ksn):
        pin_field = bytes.fromhex(("4%X" % len(PIN) + PIN).ljust(16, "A")) + os.urandom(8)
        pan_field = bytes.fromhex(("%X" % (len(PAN) - 12) + PAN).ljust(32, "0"))
        ecb = AES.new(self.key(ksn, PIN_ENCRYPTION), AES.MODE_ECB)
        middle = bytes(a ^ b for a, b in zip(ecb.encrypt(pin_field), pan_field))
        return ecb.encrypt(middle).hex().upper()

    # -------------------------------------------------------- the wire (1, 7)

    def exchange(self, doc, bad_mac=False):
        """Send `doc` (pyiso8583 dict without 53 and MAC): add a fresh KSN unless it has
        one, MAC it, frame it; return the reply dict after checking its MAC.
        bad_mac: flip one bit of the request's MAC (an attacker's or a buggy client)."""
        if "53" not in doc:
            doc["53"] = self.next_ksn().hex().upper()
        ksn = bytes.fromhex(doc["53"])
        mac_field = "128" if any(int(k) > 64 for k in doc if k.isdigit()) else "64"
        doc[mac_field] = "00" * 8
        raw, _ = iso8583.encode(doc, KAPOS_87)
        mac = bytearray(self.cmac8(self.key(ksn, MAC_GENERATION), bytes(raw[:-8])))
        if bad_mac:
            mac[0] ^= 0x01
        raw = bytes(raw[:-8]) + bytes(mac)
        self.sock.sendall(struct.pack(">H", len(raw)) + raw)
        reply_raw = self._receive()
        reply, _ = iso8583.decode(bytearray(reply_raw), KAPOS_87)
        assert "53" not in reply  # replies are bound to the request's KSN
        reply_mac = reply.get("128", reply.get("64"))
        if reply_mac is None:  # only the 63 to a bad MAC is unsigned (protocol.md 11.3)
            assert bad_mac and reply["39"] == "63", "unMACed reply %s" % reply.get("39")
        else:
            expected = self.cmac8(self.key(ksn, MAC_VERIFICATION), reply_raw[:-8])
            assert bytes.fromhex(reply_mac) == expected, "reply MAC does not verify"
        assert reply["t"] == doc["t"][:2] + "10" and reply["11"] == doc["11"]
        assert reply["41"] == doc["41"]
        return reply

    def _receive(self):
        header = self._read(2)
        return self._read(struct.unpack(">H", header)[0])

    def _read(self, size):
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            assert chunk, "the host closed the connection"
            data += chunk
        return data

    # -------------------------------------------------------- messages (5)

    def next_stan(self):
        self.stan += 1
        return "%06d" % self.stan

    @staticmethod
    def now():
        utc, local = time.gmtime(), time.localtime()
        return time.strftime("%m%d%H%M%S", utc), time.strftime("%H%M%S", local), \
            time.strftime("%m%d", local)

    def sign_on(self):
        return self.exchange({"t": "0800", "7": self.now()[0], "11": self.next_stan(),
                              "41": TERMINAL, "70": "001"})

    def sale(self, amount, bad_mac=False):
        track2 = PAN + "=" + "%02d12" % ((time.gmtime().tm_year + 4) % 100) + "101000"
        ksn = self.next_ksn()  # the PIN block's KSN is the message's KSN
        transmission, local_time, local_date = self.now()
        request = {"t": "0200", "3": "002000", "4": "%012d" % amount, "7": transmission,
                   "11": self.next_stan(), "12": local_time, "13": local_date, "22": "021",
                   "25": "00", "41": TERMINAL, "42": MERCHANT,
                   "48": "BN006000001EC%03d%s" % (len(self.enciphered_track(ksn, track2)),
                                                  self.enciphered_track(ksn, track2)),
                   "49": "978", "52": self.pin_block(ksn), "53": ksn.hex().upper()}
        return request, self.exchange(dict(request), bad_mac)

    def reversal(self, original, reply):
        doc = {"t": "0400", "3": original["3"], "4": original["4"], "7": self.now()[0],
               "11": original["11"], "12": original["12"], "13": original["13"],
               "22": original["22"], "25": original["25"], "37": reply["37"], "38": reply["38"],
               "39": "68", "41": TERMINAL, "42": MERCHANT, "49": "978",
               "90": "0200" + original["11"] + original["7"] + "0" * 22}
        return self.exchange(doc)

    def settle(self, debits, debits_amount):
        doc = {"t": "0500", "7": self.now()[0], "11": self.next_stan(), "41": TERMINAL,
               "42": MERCHANT, "48": "BN006000001", "50": "978",
               "97": ("D" if debits_amount else "C") + "%016d" % debits_amount}
        for field in ("74", "75", "77"):
            doc[field] = "%010d" % 0
        doc["76"] = "%010d" % debits
        for field in ("86", "87", "89"):
            doc[field] = "%016d" % 0
        doc["88"] = "%016d" % debits_amount
        return self.exchange(doc)


@pytest.fixture
def host(tmp_path):
    db = str(tmp_path / "host.db")
    proc = subprocess.Popen(host_command("--listen", "127.0.0.1:0", "--db", db, *host_options()),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline().decode() if ready else ""
        assert line.startswith("kapos host listening on 127.0.0.1:"), line or "host did not start"
        yield int(line.split()[4].rsplit(":", 1)[1]), db
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_a_client_built_from_the_spec_signs_on_sells_reverses_and_settles(host):
    port, db = host
    client = ForeignTerminal(port)
    try:
        assert client.sign_on()["39"] == "00"
        first, approved = client.sale(1250)
        assert approved["39"] == "00" and approved["4"] == "000000001250"
        assert len(approved["37"]) == 12 and len(approved["38"]) == 6
        assert client.reversal(first, approved)["39"] == "00"  # undone
        assert client.reversal(first, approved)["39"] == "00"  # a repeat: answered the same
        _, second = client.sale(2000)
        assert second["39"] == "00"
        settled = client.settle(debits=1, debits_amount=2000)  # the reversed sale is out
        assert settled["39"] == "00", settled
        assert settled["88"] == "%016d" % 2000 and settled["97"] == "D%016d" % 2000
    finally:
        client.close()
    shown = subprocess.run(host_command("--db", db, "--show-ledger"), capture_output=True,
                           text=True, cwd=ROOT, timeout=60)
    assert shown.returncode == 0 and "consistency: ok" in shown.stdout


def test_the_host_answers_a_request_with_a_wrong_mac_63_and_applies_nothing(host):
    port, _ = host
    client = ForeignTerminal(port)
    try:
        assert client.sign_on()["39"] == "00"
        _, refused = client.sale(1250, bad_mac=True)
        assert refused["39"] == "63" and "38" not in refused
        _, approved = client.sale(1250)  # the next KSN: nothing was spent or burnt
        assert approved["39"] == "00"
        assert client.settle(debits=1, debits_amount=1250)["39"] == "00"  # refused = not posted
    finally:
        client.close()
