"""Helpers for the host-link integration tests: request dicts, a reference host in the
test's loop or in a thread, a fault-injecting TCP proxy, and the journal/ledger check."""

import asyncio
import os
import shutil
import subprocess
import threading
import time

from kapos import card as cards
from kapos.simdata import cards as testcards
from kapos.app.pinseal import TestKeyPinSealer
from kapos.host import codec
from kapos.host import messages as m
from kapos.host.framing import TcpFramer
from kapos.io import journal as J
from kapos.io.host_link import HostAuthorizer
from kapos.io.journal import Journal
from kapos.io.transport import TcpTransport
from kapos_tools.host import HostServer, Ledger

TERMINAL = "KAPOS001"
MERCHANT = "KAPOS-MERCHANT1"
TESTCARDS = testcards.load()

# one card with room for every sale of a crash run (kill -9 tests, one or two processes)
CRASH_CARDS = """
[[card]]
id = "crash"
pan = "4111111111111111"
expires_in_months = 48
balance = 1000000000
daily_limit = 1000000000000
"""


def void_message(stan, amount, rrn, when, terminal_id=TERMINAL, merchant_id=MERCHANT):
    """A 0200 void of the sale whose RRN is `rrn`, as a terminal builds it (no card data)."""
    message = m.build_financial_request("void", amount, stan, when, when, terminal_id, merchant_id,
                                        "978", pan="0", private="BN006000001")
    del message[2]
    message[37] = rrn
    return message


def run(coro, timeout=30):
    """Run a coroutine to completion in a fresh loop (no pytest-asyncio needed)."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def swipe(card_id):
    return cards.parse_swipe(TESTCARDS[card_id].swipe_text())


def tap(card_id):
    return cards.card_from_track2(TESTCARDS[card_id].track2_equivalent(), "tap")


def token(card_id="token"):
    return cards.token_card(TESTCARDS[card_id].uid)


def request(ref, kind, amount=0, card=None, pin=None, fee=0, account="debit", target=None,
            original=None, terminal_id=TERMINAL, when=None):
    """An authorization request dict as core.handlers.authorization_request makes it."""
    now = time.time() if when is None else when
    r = {"ref": ref, "type": kind, "amount": amount, "fee": fee, "currency_code": "978",
         "account": account, "card": card, "pin_block": None, "ksn": None, "target": target,
         "original": original, "token_data": None, "time": now,
         "date": time.strftime("%Y%m%d", time.localtime(now)), "terminal_id": terminal_id,
         "merchant_id": MERCHANT}
    if card is not None and card.source == "token":  # the anti-clone block from its memory
        by_uid = {c.uid: c for c in TESTCARDS.values() if c.token}
        if card.uid in by_uid:
            r["token_data"] = by_uid[card.uid].token_block()
    if pin is not None:
        r["pin_block"], r["ksn"] = TestKeyPinSealer().seal(bytearray(pin.encode()), len(pin),
                                                           card)
    return r


def record_of(req, reply):
    """The masked record the core keeps of a sale (what a void gets as 'original')."""
    card = req["card"]
    return {"ref": req["ref"], "stan": reply["stan"], "rrn": reply["rrn"],
            "auth_code": reply["auth_code"], "amount": req["amount"], "time": req["time"],
            "card": card.masked() if card is not None else None}


class _Engine:
    """The ledger engine of the running test (conftest's `engine` fixture): None for
    SQLite, else a callable giving a fresh PostgreSQL ledger URL."""

    def __init__(self):
        self.new_url = None

    def set(self, new_url):
        self.new_url = new_url


ENGINE = _Engine()


def ledger_url(path):
    """`path` (an SQLite file) on SQLite; a fresh PostgreSQL ledger on PostgreSQL."""
    return path if ENGINE.new_url is None else ENGINE.new_url()


def new_ledger(path=":memory:", **kw):
    ledger = Ledger(ledger_url(path), **kw)
    ledger.load_cards()
    return ledger


class Rig:
    """A reference host (in this loop) + one HostAuthorizer with a journal in a temp dir.

        async with Rig(tmp_path) as rig:
            reply = await rig.auth.authorize(request(...))
    """

    def __init__(self, directory, proxy=False, timeout=1.0, retry_base=0.05, retry_max=0.5,
                 ledger=None, terminal_id=TERMINAL, mac=None, host_mac=None, port=None,
                 sign_on=True):
        self.directory = str(directory)
        self.use_proxy = proxy
        self.timeout = timeout
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.ledger = ledger or new_ledger()
        self.terminal_id = terminal_id
        self.mac = mac
        self.host_mac = host_mac
        self.port = port
        self.sign_on = sign_on
        self.proxy = None

    async def __aenter__(self):
        self.server = HostServer(self.ledger, mac=self.host_mac)
        host, port = await self.server.start_tcp("127.0.0.1", 0)
        self.host_port = port
        if self.use_proxy:
            self.proxy = FaultProxy(port)
            port = await self.proxy.start()
        if self.port is not None:
            port = self.port
        self.journal = Journal(os.path.join(self.directory, "journal"))
        self.auth = HostAuthorizer(TcpTransport("127.0.0.1", port, connect_timeout=1.0),
                                   self.journal, self.terminal_id, MERCHANT,
                                   timeout=self.timeout, retry_base=self.retry_base,
                                   retry_max=self.retry_max, mac=self.mac, sign_on=self.sign_on)
        await self.auth.start()
        return self

    async def __aexit__(self, *exc):
        await self.auth.aclose()
        if self.proxy is not None:
            await self.proxy.close()
        await self.server.close()

    def balance(self, card_id):
        return self.ledger.balance(TESTCARDS[card_id].account_key())

    def check(self):
        """Journal and ledger agree (see `agree`)."""
        journal = Journal(os.path.join(self.directory, "journal"))
        try:
            return agree(journal, self.ledger, self.terminal_id)
        finally:
            journal.close()


def agree(journal, ledger, terminal_id=TERMINAL):
    """Problems (a list; empty when all is well) between a terminal's journal and the
    host ledger once recovery is over:
      - nothing is left to deliver and nothing is in flight;
      - a transaction the journal holds as approved is approved (in force) at the host,
        for the same total; any other journal status is not in force at the host;
      - every transaction in force at the host for this terminal is approved in the
        journal (no charge the terminal does not know about);
      - the ledger's balances equal its initial balances plus the effects in force."""
    problems = []
    if journal.pending_count():
        problems.append("%d queue item(s) undelivered" % journal.pending_count())
    host = {}
    for t in ledger.transactions(terminal_id):
        if t["mti"] in ("0200", "0100", "0220"):
            host[(t["stan"], t["transmission"])] = t
    seen = set()
    for row in journal.transactions():
        key = (row["stan"], row["transmission"])
        seen.add(key)
        h = host.get(key)
        in_force = h is not None and h["status"] == "approved"
        if row["status"] in (J.PENDING, J.REVERSAL_PENDING):
            problems.append("stan %s still %s" % (row["stan"], row["status"]))
        elif row["status"] == J.APPROVED:
            if not in_force:
                problems.append("stan %s approved at the terminal, %s at the host"
                                % (row["stan"], h["status"] if h else "unknown"))
            elif h["total"] != row["total"]:
                problems.append("stan %s total %s at the terminal, %s at the host"
                                % (row["stan"], row["total"], h["total"]))
        elif in_force:
            problems.append("stan %s %s at the terminal but in force at the host"
                            % (row["stan"], row["status"]))
    for key, h in host.items():
        if key not in seen and h["status"] == "approved":
            problems.append("stan %s in force at the host, unknown to the terminal" % key[0])
    problems += ledger.check()
    return problems


# ---------------------------------------------------------------- fault proxy

class FaultProxy:
    """A TCP proxy terminal <-> host that damages host replies on request.

    `proxy.fault(kind, mti="0210", count=1, arg=None)` queues a fault for the next
    `count` replies with that MTI. Kinds:
        drop        the reply is swallowed (no reply)
        delay       the reply is forwarded `arg` seconds late (late reply)
        truncate    half of the framed reply is sent, the rest never
        duplicate   the reply is sent twice
        wrong_stan  field 11 of the reply is changed
        garble      the reply's MTI bytes are overwritten (does not decode)
        reset       the terminal's connection is reset instead of the reply
    Requests always reach the host: every fault is "the host processed it, then...".
    """

    def __init__(self, upstream_port, upstream_host="127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.faults = []  # [kind, mti, remaining, arg]
        self.applied = []
        self._server = None
        self._tasks = set()

    def fault(self, kind, mti="0210", count=1, arg=None):
        self.faults.append([kind, mti, count, arg])

    async def start(self):
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def close(self):
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _take(self, mti):
        for f in self.faults:
            if f[1] == mti and f[2] > 0:
                f[2] -= 1
                self.applied.append((f[0], mti))
                return f[0], f[3]
        return None, None

    async def _client(self, c_reader, c_writer):
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            h_reader, h_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            c_writer.close()
            self._tasks.discard(task)
            return
        up = asyncio.ensure_future(self._pump_up(c_reader, h_writer))
        try:
            await self._pump_down(h_reader, c_writer)
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            up.cancel()
            h_writer.close()
            try:
                c_writer.close()
            except Exception:
                pass
            self._tasks.discard(task)

    async def _pump_up(self, reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _pump_down(self, reader, writer):
        framer = TcpFramer()
        while True:
            data = await reader.read(65536)
            if not data:
                return
            for payload in framer.receive(data):
                self.last_reply = payload
                kind, arg = self._take(payload[:4].decode())
                frame = framer.frame(payload)
                if kind is None:
                    writer.write(frame)
                elif kind == "drop":
                    continue
                elif kind == "delay":
                    asyncio.get_running_loop().call_later(arg or 1.0, _late_write, writer, frame)
                elif kind == "truncate":
                    writer.write(frame[:len(frame) // 2])
                elif kind == "duplicate":
                    writer.write(frame + frame)
                elif kind == "wrong_stan":
                    message = codec.decode(payload)
                    message[11] = "%06d" % ((int(message[11]) + 500000) % 1000000 or 1)
                    writer.write(framer.frame(codec.encode(message)))
                elif kind == "garble":
                    writer.write(framer.frame(b"XXXX" + payload[4:]))
                elif kind == "flip":  # one bit of the payload inverted (arg: bit index)
                    flipped = bytearray(payload)
                    flipped[(arg // 8) % len(flipped)] ^= 1 << (arg % 8)
                    writer.write(framer.frame(bytes(flipped)))
                elif kind == "reset":
                    sock = writer.get_extra_info("socket")
                    import socket
                    import struct
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                await writer.drain()


def _late_write(writer, frame):
    try:
        if not writer.is_closing():
            writer.write(frame)
    except Exception:
        pass


# ---------------------------------------------------------------- a host in a thread

class HostThread:
    """The reference host on its own thread and loop (for child-process tests)."""

    def __init__(self, ledger_path, cards=None, daily_limit=10 ** 12):
        self.ledger_path = ledger_path
        self.cards = cards
        self.daily_limit = daily_limit
        self.port = None
        self._ready = threading.Event()
        self._loop = None
        self._stop = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error = None

    def start(self):
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("host thread did not start")
        if self.error:
            raise self.error
        return self.port

    def _run(self):
        try:
            asyncio.run(self._main())
        except Exception as exc:  # reported by start()
            self.error = exc
            self._ready.set()

    async def _main(self):
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.ledger = Ledger(self.ledger_path, daily_limit=self.daily_limit)
        self.ledger.load_cards(self.cards)
        server = HostServer(self.ledger)
        _, self.port = await server.start_tcp("127.0.0.1", 0)
        self._ready.set()
        await self._stop.wait()
        await server.close()
        self.ledger.close()

    def stop(self):
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


# ---------------------------------------------------------------- TLS material

def make_tls_material(directory, hostname="localhost"):
    """A private CA and a server certificate signed by it (openssl CLI). Returns a dict
    of paths, or None when openssl is not available."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    d = str(directory)
    paths = {k: os.path.join(d, v) for k, v in (
        ("ca", "ca.pem"), ("ca_key", "ca.key"), ("cert", "host.pem"), ("key", "host.key"),
        ("csr", "host.csr"), ("ext", "host.ext"), ("other_ca", "other-ca.pem"),
        ("other_ca_key", "other-ca.key"))}
    with open(paths["ext"], "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s,IP:127.0.0.1\n" % hostname)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    steps = [
        [openssl, "req", "-x509"] + ec + ["-keyout", paths["ca_key"], "-out", paths["ca"],
                                          "-days", "2", "-subj", "/CN=kapos test CA"] + ca_ext,
        [openssl, "req", "-x509"] + ec + ["-keyout", paths["other_ca_key"], "-out",
                                          paths["other_ca"], "-days", "2", "-subj",
                                          "/CN=some other CA"] + ca_ext,
        [openssl, "req"] + ec + ["-keyout", paths["key"], "-out", paths["csr"], "-subj",
                                 "/CN=%s" % hostname],
        [openssl, "x509", "-req", "-in", paths["csr"], "-CA", paths["ca"], "-CAkey",
         paths["ca_key"], "-CAcreateserial", "-out", paths["cert"], "-days", "2",
         "-extfile", paths["ext"]],
    ]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        if result.returncode:
            return None
    return paths
