"""The management channel: a line-oriented JSON protocol for diagnostics and HIL tests.

One JSON object per line (UTF-8, a request line at most 8 KiB), over TCP (loopback by
default) and over a serial console (a device or any pyserial URL):

    -> {"id": 1, "cmd": "status"}
    <- {"id": 1, "ok": true, "state": "IDLE", "screen": "...", "last_result": null, ...}
    -> {"id": 2, "cmd": "selftest"}
    <- {"id": 2, "ok": false, "error": "not authenticated: send {\\"cmd\\": \\"auth\\", \\"token\\": ...} first"}

`hello` and `status` are read-only and open; everything else needs `auth` first, on
every address and transport (the token is per terminal: app/mgmt_auth.py). `inject`
and `fault` exist only in test mode (`kapos run --test-mode`, `kapos diag --board sim`,
the HIL suite). A JSON object with a bad field gets `ok: false` and the connection stays
usable; a line that is not a JSON object at all (an HTTP request from a browser, NaN,
binary, an oversized line) gets its error and the TCP connection is closed. A TCP client
has AUTH_WINDOW seconds to authenticate, then `idle_timeout` seconds between requests;
unauthenticated connections have slots of their own (the oldest is dropped when they run
out), so they can never keep an authenticated client out. Wrong tokens back off per peer
and globally (AuthThrottle). Replies are strict JSON. Nothing a client sends can change
the terminal except `keys_load`, `inject`, `fault` (test mode) and `printer_test`.
The full protocol, with an example of every command, is in docs/diagnostics.md.

    server = ManagementServer(terminal, diagnostics, testcards, token=token, test_mode=False)
    host, port = await server.start_tcp("127.0.0.1", 7700)
    await server.start_serial("/dev/ttyGS0")        # or "socket://host:port", a pty, ...
    reply = await server.handle_line('{"id": 1, "cmd": "hello"}')   # what both transports call
    await server.close()
"""

import asyncio
import collections
import hmac
import json
import logging
import time

from kapos import hal
from kapos.app.diagnostics import summary
from kapos.app.receipts import Line, Receipt
from kapos.core import events as E
from kapos.core import keys
from kapos.errors import KaposError
from kapos.io import logbuffer
from kapos.io.transport import PySerialPort
from kapos.app.mgmt_auth import AuthThrottle, ManageTokenError, check_token

log = logging.getLogger("kapos.management")

PROTOCOL = 1
DEFAULT_PORT = 7700
MAX_LINE = 8192  # bytes of one request line, without its line ending
MAX_CLIENTS = 4  # authenticated TCP connections
MAX_PENDING = 8  # TCP connections not authenticated yet; a new one drops the oldest
AUTH_WINDOW = 5.0  # seconds a TCP connection has to authenticate
IDLE_TIMEOUT = 300.0  # seconds an authenticated TCP connection may stay silent (default)
MAX_AUTH_FAILURES = 5  # per connection; then `auth` is refused until it reconnects
SERIAL_IDLE_LOGOUT = 600.0  # seconds without a request before a serial session forgets its auth
INJECT_SETTLE = 1.0  # seconds an inject waits for the terminal to handle the event
PRINT_TIMEOUT = 30.0

# States in which a transaction is in progress: the printer and the self-test wait.
BUSY_STATES = ("AMOUNT", "TARGET", "VOID_CONFIRM", "CARD", "ACCOUNT", "PIN", "SEALING",
               "CONFIRM", "AUTHORIZING", "RESULT")
FAULTS = ("printer_paper_out", "host_offline", "nfc_absent")
INJECTABLE = ("key", "swipe", "swipe_raw", "tap", "tap_uid", "tamper", "insert", "remove")


class RequestError(Exception):
    """A request the server refuses: becomes {"ok": false, "error": message}."""


class NotARequest(RequestError):
    """A line that is not a JSON object at all: answered, then the TCP connection closes."""


class Session:
    """The state of one client: a TCP connection, the serial console or a direct caller.

    `address` keys the wrong-token back-off (the IP, not the port: reconnecting does not
    reset it). `admit`, set by the TCP transport, says whether an authenticated slot is
    free. `close_after` asks the transport to close once the reply is sent."""

    def __init__(self, peer="local", idle_logout=None, address=None, admit=None):
        self.peer = peer
        self.address = address if address is not None else peer
        self.authed = False
        self.failures = 0
        self.idle_logout = idle_logout
        self.admit = admit
        self.close_after = False
        self.last_seen = time.monotonic()

    def touch(self):
        now = time.monotonic()
        if self.idle_logout is not None and self.authed and now - self.last_seen > self.idle_logout:
            self.authed = False
        self.last_seen = now


class ManagementServer:
    def __init__(self, terminal, diagnostics, testcards=None, token=None, test_mode=False,
                 log_buffer=None, key_loader=None, key_status=None, idle_timeout=IDLE_TIMEOUT,
                 auth_window=AUTH_WINDOW, throttle=None):
        if token is None:
            raise ManageTokenError("the management channel needs a token (every address, loopback "
                                   "included): see `kapos keys status --show-token`")
        check_token(token)
        if not (isinstance(idle_timeout, (int, float)) and 0 < idle_timeout < float("inf")):
            raise KaposError("the management idle timeout must be a positive number of seconds")
        self.idle_timeout = float(idle_timeout)
        self.auth_window = float(auth_window)
        self.throttle = throttle if throttle is not None else AuthThrottle()
        self.terminal = terminal
        self.diagnostics = diagnostics
        self._testcards = testcards
        self._key_loader = key_loader  # (initial key, IK ID) -> key status; clears a tamper lock
        self._key_status = key_status
        self.token = token
        self.test_mode = bool(test_mode)
        self.log_buffer = log_buffer if log_buffer is not None else logbuffer.install()
        self.session = Session("direct")  # used by handle_line() when no session is given
        self.seq = 0  # bumped on every screen, state, result, receipt, record and beep
        self.results = collections.deque(maxlen=100)
        self.results_total = 0
        self.receipt_texts = collections.deque(maxlen=20)
        self.receipts_total = 0
        self.beeps = collections.deque(maxlen=200)
        self.beeps_total = 0
        self._buzzer_wrapped = None
        self._tcp = None
        self._connections = {}  # task -> (writer, session), oldest first
        self._serial = None
        self._commands = {
            # name: (method, needs auth, test mode only)
            "hello": (self._cmd_hello, False, False),
            "status": (self._cmd_status, False, False),
            "auth": (self._cmd_auth, False, False),
            "logout": (self._cmd_logout, False, False),
            "selftest": (self._cmd_selftest, True, False),
            "counters": (self._cmd_counters, True, False),
            "logs": (self._cmd_logs, True, False),
            "screen": (self._cmd_screen, True, False),
            "receipt": (self._cmd_receipt, True, False),
            "records": (self._cmd_records, True, False),
            "snapshot": (self._cmd_snapshot, True, False),
            "printer_test": (self._cmd_printer_test, True, False),
            "keys_status": (self._cmd_keys_status, True, False),
            "keys_load": (self._cmd_keys_load, True, False),
            "inject": (self._cmd_inject, True, True),
            "fault": (self._cmd_fault, True, True),
        }
        terminal.observers.append(self._observe)
        if self.test_mode:
            self._wrap_buzzer()

    # ------------------------------------------------------------ observing the terminal

    def _observe(self, kind, payload):
        self.seq += 1
        if kind == "result":
            self.results.append(payload)
            self.results_total += 1
        elif kind == "receipt":
            self.receipt_texts.append(payload.text())
            self.receipts_total += 1

    def _wrap_buzzer(self):
        """Test mode: count beeps (scenario `expect beep`) on any buzzer, sim or real."""
        buzzer = self.terminal.platform.get("buzzer")
        if buzzer is None:
            return
        original = buzzer.beep
        shadowed = "beep" in getattr(buzzer, "__dict__", {})

        def beep(kind):
            try:
                return original(kind)
            finally:
                self.beeps.append(kind)
                self.beeps_total += 1
                self.seq += 1

        buzzer.beep = beep
        self._buzzer_wrapped = (buzzer, original, beep, shadowed)

    # ------------------------------------------------------------ the protocol core

    @property
    def commands(self):
        return sorted(self._commands)

    async def handle_line(self, line, session=None):
        """One request line (bytes or str) in, one reply dict out. Never raises."""
        session = session or self.session
        session.touch()
        request_id = None
        try:
            request = parse_request(line)
            request_id = request.get("id")
            if not (request_id is None or isinstance(request_id, (str, int, float)) and not isinstance(request_id, bool)):
                request_id = None
                raise RequestError("\"id\" must be a number or a string")
            cmd = request.get("cmd")
            if cmd is None:
                raise RequestError("missing \"cmd\" (one of: %s)" % ", ".join(self.commands))
            if not isinstance(cmd, str):
                raise RequestError("\"cmd\" must be a string")
            entry = self._commands.get(cmd)
            if entry is None:
                raise RequestError("unknown command %r (known: %s)" % (cmd[:40], ", ".join(self.commands)))
            method, needs_auth, test_only = entry
            if needs_auth and not session.authed:
                raise RequestError("not authenticated: send {\"cmd\": \"auth\", \"token\": \"...\"} first")
            if test_only and not self.test_mode:
                raise RequestError("%s is only available in test mode (kapos run --test-mode); "
                                   "this terminal is in service mode" % cmd)
            result = await method(request, session)
        except NotARequest as exc:
            session.close_after = True
            return {"id": None, "ok": False, "error": str(exc)}
        except RequestError as exc:
            return {"id": request_id, "ok": False, "error": str(exc)}
        except Exception as exc:  # a bug here must never reach the terminal or the transport
            log.exception("management request failed")
            return {"id": request_id, "ok": False, "error": "internal error: %s" % type(exc).__name__}
        reply = {"id": request_id, "ok": True}
        reply.update(result or {})
        return reply

    # ------------------------------------------------------------ commands

    async def _cmd_hello(self, request, session):
        return {"protocol": PROTOCOL, "versions": self.diagnostics.versions(),
                "board": self._board_name(), "auth_required": True,
                "authenticated": session.authed,
                "test_mode": self.test_mode, "injectable": self.injectable(),
                "commands": self.commands}

    async def _cmd_status(self, request, session):
        status = self.terminal.status()
        status.update({"seq": self.seq, "test_mode": self.test_mode, "time": self.terminal.now()})
        return status

    async def _cmd_auth(self, request, session):
        token = request.get("token")
        if not isinstance(token, str):
            raise RequestError("auth needs \"token\" (a string)")
        if session.failures >= MAX_AUTH_FAILURES:
            session.close_after = True
            raise RequestError("too many wrong tokens on this connection; reconnect to try again")
        wait = self.throttle.refused_for(session.address)
        if wait > 0:  # not even compared: guessing runs at the back-off's pace
            raise RequestError("too many wrong tokens: wait %.1f s before trying again" % wait)
        if hmac.compare_digest(token.encode("utf-8", "surrogatepass"), self.token.encode("utf-8")):
            self.throttle.succeeded(session.address)
            session.failures = 0
            if not session.authed and session.admit is not None and not session.admit():
                session.close_after = True
                raise RequestError("too many management clients (%d); closing" % MAX_CLIENTS)
            session.authed = True
            return {"authenticated": True}
        self.throttle.failed(session.address)
        session.failures += 1
        session.authed = False
        log.warning("management: wrong token from %s", session.peer)
        raise RequestError("wrong token")

    async def _cmd_logout(self, request, session):
        session.authed = False
        if session.admit is not None:  # TCP: the slot goes with the session
            session.close_after = True
        return {"authenticated": False}

    async def _cmd_selftest(self, request, session):
        self._refuse_when_busy("self-test")
        checks = await self.diagnostics.selftest()
        result = summary(checks)
        return {"passed": result["ok"], "failed": result["failed"], "checks": result["checks"]}

    async def _cmd_counters(self, request, session):
        return {"counters": self.diagnostics.counters()}

    async def _cmd_logs(self, request, session):
        n = _int_field(request, "n", 50, 0, 1000)
        since = _int_field(request, "since", None, 0, None)
        lines, next_seq = self.log_buffer.lines(n=n, since=since)
        return {"lines": lines, "next": next_seq}

    async def _cmd_screen(self, request, session):
        screen = self.terminal.screen
        if screen is None:
            return {"screen": "", "title": "", "lines": [], "kind": None}
        return {"screen": screen.text(), "title": screen.title, "lines": list(screen.lines),
                "footer": screen.footer, "kind": screen.kind}

    async def _cmd_receipt(self, request, session):
        receipts = self.terminal.receipts
        if not receipts:
            return {"receipt": None, "count": 0}
        return {"receipt": logbuffer.mask_pans(receipts[-1][1].text()), "count": len(receipts)}

    async def _cmd_records(self, request, session):
        n = _int_field(request, "n", 10, 0, 100)
        records = self.terminal.records[-n:] if n else []
        return {"records": [logbuffer.mask_value(_jsonable(r)) for r in records]}

    async def _cmd_keys_status(self, request, session):
        if self._key_status is None:
            raise RequestError("this terminal has no key store (keys.mode is not dukpt)")
        return {"keys": self._key_status()}

    async def _cmd_keys_load(self, request, session):
        """Load a new DUKPT initial key (from `kapos keys load`); it is never echoed or logged."""
        if self._key_loader is None:
            raise RequestError("this terminal has no key store (keys.mode is not dukpt)")
        try:
            initial_key = bytes.fromhex(str(request.get("ik", "")))
            ik_id = bytes.fromhex(str(request.get("ik_id", "")))
        except ValueError:
            raise RequestError("ik and ik_id must be hex")
        if len(initial_key) not in (16, 32) or len(ik_id) != 8:
            raise RequestError("ik must be 16 or 32 bytes and ik_id 8 bytes")
        try:
            status = self._key_loader(initial_key, ik_id)
        except KaposError as exc:
            raise RequestError("keys not loaded: %s" % exc)
        log.warning("new keys loaded over the management channel (IK ID %s)", ik_id.hex().upper())
        return {"keys": status}

    async def _cmd_snapshot(self, request, session):
        """Everything a scenario checks, in one round trip (RemoteTarget polls this)."""
        screen = self.terminal.screen
        beeps = None
        if self._buzzer_wrapped is not None:
            beeps, beeps_total = list(self.beeps), self.beeps_total
        else:
            beeps_total = None
        return {"seq": self.seq, "state": self.terminal.state,
                "screen": screen.text() if screen else "",
                "results": list(self.results), "results_total": self.results_total,
                "receipts": [logbuffer.mask_pans(t) for t in self.receipt_texts],
                "receipts_total": self.receipts_total,
                "beeps": beeps, "beeps_total": beeps_total}

    async def _cmd_printer_test(self, request, session):
        printer = self.terminal.platform.get("printer")
        if printer is None:
            raise RequestError("this board has no printer")
        self._refuse_when_busy("printer test")
        try:
            await asyncio.wait_for(printer.print_receipt(self._test_page()), PRINT_TIMEOUT)
        except asyncio.TimeoutError:
            raise RequestError("printer did not finish within %d s" % PRINT_TIMEOUT)
        except Exception as exc:
            log.warning("printer test failed: %s", exc)
            raise RequestError("printer: %s" % (str(exc) or type(exc).__name__))
        log.info("printer test page printed")
        return {"printed": True, "status": _safe_call(getattr(printer, "status", None))}

    def _test_page(self):
        settings = self.terminal.settings
        now = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.terminal.now()))
        lines = [Line("PRINTER TEST", "center", bold=True, double=True),
                 Line(settings.merchant_name, "center"),
                 Line("Terminal %s" % settings.terminal_id, "center"),
                 Line(now, "center"),
                 Line("-" * 32),
                 Line("12345678901234567890123456789012"),
                 Line("ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdef"),
                 Line("0123456789 .,:;-+*/=()[]%#@&!?"),
                 Line("left"), Line("center", "center"), Line("right", "right"),
                 Line("bold", bold=True),
                 Line("-" * 32),
                 Line("If you can read every line,", "center"),
                 Line("the printer works.", "center"),
                 Line("")]
        return Receipt(lines, copy="test")

    async def _cmd_inject(self, request, session):
        given = [k for k in INJECTABLE if k in request]
        if len(given) != 1:
            raise RequestError("inject needs exactly one of: %s" % ", ".join(INJECTABLE))
        what = given[0]
        value = request[what]
        if "profile" in request and what != "insert":
            raise RequestError("\"profile\" goes with insert only (a tap's card is the board's)")
        if what in ("insert", "remove"):
            return await self._inject_chip(what, value, request.get("profile"))
        if not isinstance(value, str) or not value:
            raise RequestError("inject %s needs a non-empty string" % what)
        if what == "key":
            name = value.upper() if len(value) > 1 else value
            if not keys.is_key(name):
                raise RequestError("not a keypad key: %r (keys: 0-9 %s)" % (value[:20], " ".join(keys.FUNCTION_KEYS)))
            done = await self._inject("keypad", E.KEY, "key", name)
        elif what == "swipe":
            done = await self._inject("magstripe", E.SWIPE, "raw", self._card(value).swipe_text())
        elif what == "swipe_raw":
            done = await self._inject("magstripe", E.SWIPE, "raw", value)
        elif what == "tap":
            done = await self._inject("nfc", E.TAP, "tap", self._tap_of(value))
        elif what == "tamper":
            done = await self._inject("tamper", getattr(E, "TAMPER", "tamper"), "source", value)
        else:
            try:
                uid = bytes.fromhex(value)
            except ValueError:
                raise RequestError("tap_uid must be hexadecimal, e.g. 04A1B2C3")
            if not 4 <= len(uid) <= 10:
                raise RequestError("tap_uid must be 4, 7 or 10 bytes")
            done = await self._inject("nfc", E.TAP, "tap", hal.Tap(uid))
        return self._injected(what, done)

    async def _inject_chip(self, what, value, profile):
        """insert: a test card into the chip slot as an emulated EMV card of `profile`
        (the scenario step `insert ID [PROFILE]`); remove: the card out. Only a slot that
        takes injected cards (the sim twin) can: a real reader's card is put in by hand."""
        if what == "remove" and value is not True:
            raise RequestError("inject remove needs \"remove\": true")
        if what == "insert":
            if not isinstance(value, str) or not value:
                raise RequestError("inject insert needs a test card id (a non-empty string)")
            if profile is not None and (not isinstance(profile, str) or not profile):
                raise RequestError("\"profile\" must be a non-empty string (an emulated chip profile)")
        slot = self._chip_slot()
        if what == "remove":
            if slot.card is None:  # nothing comes out, so no event: say so at once
                return self._injected(what, False)
            return self._injected(what, await self._inject("chip", None, None, None))
        card = self._card(value)
        if not getattr(card, "pan", None) or getattr(card, "token", False):
            raise RequestError("test card %r has no chip (no PAN): it cannot be inserted" % value[:40])
        try:
            track2 = card.track2_equivalent()
        except KaposError as exc:
            raise RequestError("test card %r cannot be inserted: %s" % (value[:40], exc))
        return self._injected(what, await self._inject("chip", None, None, (track2, profile)))

    def _chip_slot(self):
        slot = self.terminal.platform.get("chip")
        if slot is None:
            raise RequestError("board %s has no chip slot (board sim-nfc has the simulated one)" % self._board_name())
        if not hasattr(slot, "inject"):
            raise RequestError("board %s's chip reader is a real one: insert and remove the card by hand"
                               % self._board_name())
        return slot

    def _injected(self, what, done):
        screen = self.terminal.screen
        return {"injected": what, "handled": done, "state": self.terminal.state,
                "screen": screen.text() if screen else ""}

    def injectable(self):
        """What `inject` can put into this terminal: nothing outside test mode; insert and
        remove only with a chip slot that takes injected cards."""
        if not self.test_mode:
            return []
        slot = self.terminal.platform.get("chip")
        chip = slot is not None and hasattr(slot, "inject")
        return [k for k in INJECTABLE if chip or k not in ("insert", "remove")]

    async def _inject(self, device_name, kind, field, value):
        """Through the simulated device when it takes injected input (the reader task
        path, as on the sim board); otherwise straight into the runtime's event queue
        (a real board in test mode). Waits until the terminal handled an event."""
        if getattr(self.terminal, "_queue", None) is None:
            raise RequestError("the terminal is not running")
        before = self.terminal.events_handled
        device = self.terminal.platform.get(device_name)
        if device is not None and hasattr(device, "inject"):
            try:
                device.inject(value)
            except (ValueError, KaposError) as exc:  # e.g. an unknown chip profile: nothing changed
                raise RequestError(str(exc))
        else:
            self.terminal.post(kind, **{field: value})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + INJECT_SETTLE
        spins = 0
        while self.terminal.events_handled == before:
            if loop.time() > deadline:
                return False
            spins += 1
            await asyncio.sleep(0 if spins < 20 else 0.002)
        return True

    async def _cmd_fault(self, request, session):
        name = request.get("fault")
        if name not in FAULTS:
            raise RequestError("fault needs \"fault\": one of %s" % ", ".join(FAULTS))
        on = request.get("on", True)
        if not isinstance(on, bool):
            raise RequestError("\"on\" must be true or false")
        platform = self.terminal.platform
        if name == "printer_paper_out":
            printer = platform.get("printer")
            if printer is None or not hasattr(printer, "paper_out"):
                raise RequestError("this board's printer cannot simulate paper-out")
            printer.paper_out = on
        elif name == "host_offline":
            if not hasattr(self.terminal.authorizer, "online"):
                raise RequestError("this authorizer cannot be taken offline")
            self.terminal.authorizer.online = not on
        else:
            nfc = platform.get("nfc")
            if nfc is None or not hasattr(nfc, "present"):
                raise RequestError("this board's NFC reader cannot simulate an absent chip")
            nfc.present = not on
        log.info("test fault %s %s", name, "on" if on else "off")
        return {"fault": name, "on": on, "faults": self.faults()}

    def faults(self):
        """The simulated faults currently switched on."""
        platform = self.terminal.platform
        printer, nfc = platform.get("printer"), platform.get("nfc")
        found = {"printer_paper_out": bool(getattr(printer, "paper_out", False)),
                 "host_offline": getattr(self.terminal.authorizer, "online", True) is False,
                 "nfc_absent": getattr(nfc, "present", True) is False}
        return sorted(k for k, v in found.items() if v)

    # ------------------------------------------------------------ helpers

    def _board_name(self):
        board = getattr(self.terminal.platform, "board", None) or {}
        return (board.get("board") or {}).get("name", "unknown")

    def _refuse_when_busy(self, what):
        state = self.terminal.state
        if state in BUSY_STATES:
            raise RequestError("the terminal is busy (state %s): run the %s when it is idle" % (state, what))

    def _cards(self):
        if self._testcards is None:
            from kapos.simdata import cards as testcards

            self._testcards = testcards.load()
        return self._testcards

    def _card(self, card_id):
        card = self._cards().get(card_id)
        if card is None:
            raise RequestError("unknown test card %r (known: %s)" % (card_id[:40], ", ".join(sorted(self._cards()))))
        return card

    def _tap_of(self, card_id):
        try:
            return self._card(card_id).tap()
        except KaposError as exc:  # a test card without a UID cannot be tapped
            raise RequestError(str(exc))

    # ------------------------------------------------------------ TCP transport

    async def start_tcp(self, host="127.0.0.1", port=DEFAULT_PORT):
        """Listen on host:port (port 0: any free port). Returns the (host, port) bound."""
        if self._tcp is not None:
            raise KaposError("the management channel already listens on TCP")
        self._tcp = await asyncio.start_server(self._serve_tcp, host, port, limit=MAX_LINE)
        address = self._tcp.sockets[0].getsockname()
        log.info("management channel on %s:%d%s", address[0], address[1], " (test mode)" if self.test_mode else "")
        return address[0], address[1]

    @property
    def tcp_address(self):
        return self._tcp.sockets[0].getsockname()[:2] if self._tcp is not None else None

    def _authed_count(self):
        return sum(1 for _, session in self._connections.values() if session.authed)

    def _make_room_for_one_more_pending(self):
        """Unauthenticated connections live in slots of their own: when those run out the
        oldest is dropped, so idle sockets cannot keep anyone out for long."""
        pending = [(task, writer) for task, (writer, session) in self._connections.items()
                   if not session.authed]
        for task, writer in pending[:max(0, len(pending) - MAX_PENDING + 1)]:
            log.warning("management: dropping an unauthenticated connection to make room")
            self._connections.pop(task, None)
            writer.close()
            task.cancel()

    async def _serve_tcp(self, reader, writer):
        peer = writer.get_extra_info("peername")
        task = asyncio.current_task()
        session = Session("%s:%s" % tuple(peer[:2]) if peer else "tcp", address=peer[0] if peer else "tcp",
                          admit=lambda: self._authed_count() < MAX_CLIENTS)
        self._make_room_for_one_more_pending()
        self._connections[task] = (writer, session)
        loop = asyncio.get_running_loop()
        auth_deadline = loop.time() + self.auth_window
        graceful = False
        try:
            while True:
                if session.authed:
                    timeout, why = self.idle_timeout, "idle for %.0f s" % self.idle_timeout
                else:
                    timeout = auth_deadline - loop.time()
                    why = "not authenticated within %.0f s" % self.auth_window
                try:
                    line = await asyncio.wait_for(reader.readuntil(b"\n"), max(timeout, 0))
                except asyncio.TimeoutError:
                    await _send(writer, {"id": None, "ok": False, "error": why + "; closing the connection"})
                    break
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():  # the last request had no line ending
                        await _send(writer, await self.handle_line(exc.partial, session))
                    break
                except asyncio.LimitOverrunError:
                    await _send(writer, {"id": None, "ok": False,
                                         "error": "request line longer than %d bytes; closing the connection" % MAX_LINE})
                    graceful = True
                    break
                if not line.strip():
                    continue
                await _send(writer, await self.handle_line(line.rstrip(b"\r\n"), session))
                if session.close_after:
                    graceful = True
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("management connection from %s failed", session.peer)
        finally:
            self._connections.pop(task, None)  # the slot is free before any lingering
            session.authed = False
        if graceful:
            await _close_cleanly(reader, writer)
        else:
            writer.close()

    # ------------------------------------------------------------ serial transport

    async def start_serial(self, url, baudrate=115200):
        """Serve the protocol on a serial console: a device (/dev/ttyGS0, /dev/serial0) or
        any pyserial URL (socket://host:port, rfc2217://...). A small thread reads the port;
        requests are handled in the terminal's loop, one at a time, in order."""
        if self._serial is not None:
            raise KaposError("the management channel already serves a serial console")
        port = PySerialPort(url, baudrate=baudrate, read_timeout=0.1)
        console = _SerialConsole(self, port, url, asyncio.get_running_loop())
        try:
            port.open(console.on_bytes, console.on_error)
        except OSError as exc:
            raise KaposError("cannot open management console %s: %s" % (url, exc))
        self._serial = console
        console.start()
        log.info("management console on %s%s", url, " (test mode)" if self.test_mode else "")

    # ------------------------------------------------------------ closing

    async def close(self):
        if self._tcp is not None:
            self._tcp.close()
            tasks = list(self._connections)
            for task, (writer, _) in list(self._connections.items()):
                writer.close()
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            await self._tcp.wait_closed()
            self._tcp = None
        if self._serial is not None:
            await self._serial.stop()
            self._serial = None
        if self._observe in self.terminal.observers:
            self.terminal.observers.remove(self._observe)
        if self._buzzer_wrapped is not None:
            buzzer, original, ours, shadowed = self._buzzer_wrapped
            if buzzer.__dict__.get("beep") is ours:  # nobody wrapped it after us
                if shadowed:
                    buzzer.beep = original
                else:
                    del buzzer.beep
            self._buzzer_wrapped = None


class _SerialConsole:
    """Request lines from a serial port (kapos.io.transport.PySerialPort: its one reader
    thread hands bytes to the loop); requests are handled in order, one at a time."""

    def __init__(self, server, port, url, loop):
        self.server = server
        self.port = port
        self.url = url
        self.loop = loop
        self.session = Session("serial %s" % url, idle_logout=SERIAL_IDLE_LOGOUT)
        self.lines = asyncio.Queue()
        self._buffer = b""
        self._skipping = False  # inside an oversized line: drop bytes up to its end
        self._task = None

    def start(self):
        self._task = self.loop.create_task(self._serve())

    def on_error(self, exc):
        log.error("management console %s failed: %s", self.url, exc)
        self.lines.put_nowait(None)

    def on_bytes(self, data):
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE + 1 and not self._skipping:
                    self._skipping = True
                    self.lines.put_nowait(_TOO_LONG)
                if self._skipping:
                    self._buffer = b""
                return
            line, self._buffer = self._buffer[:end], self._buffer[end + 1:]
            if self._skipping:
                self._skipping = False
                continue
            line = line.rstrip(b"\r")
            if len(line) > MAX_LINE:
                self.lines.put_nowait(_TOO_LONG)
            elif line.strip():
                self.lines.put_nowait(line)

    async def _serve(self):
        while True:
            line = await self.lines.get()
            if line is None:
                return
            if line is _TOO_LONG:
                reply = {"id": None, "ok": False,
                         "error": "request line longer than %d bytes; skipped to the next line" % MAX_LINE}
            else:
                reply = await self.server.handle_line(line, self.session)
            try:
                await self.loop.run_in_executor(None, self.port.write, _encode(reply))
            except Exception as exc:
                log.error("management console %s: write failed: %s", self.url, exc)

    async def stop(self):
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.loop.run_in_executor(None, self.port.close)


_TOO_LONG = object()


# ---------------------------------------------------------------- module helpers

def parse_request(line):
    """A request line (bytes or str) -> the request dict; NotARequest for anything that is
    not one strict JSON object of at most MAX_LINE bytes (NaN and Infinity included)."""
    if isinstance(line, (bytes, bytearray)):
        if len(line) > MAX_LINE:
            raise NotARequest("request line longer than %d bytes" % MAX_LINE)
        try:
            line = bytes(line).decode("utf-8")
        except UnicodeDecodeError:
            raise NotARequest("request is not valid UTF-8")
    elif len(line.encode("utf-8", "surrogatepass")) > MAX_LINE:
        raise NotARequest("request line longer than %d bytes" % MAX_LINE)
    line = line.strip()
    if not line:
        raise NotARequest("empty request: send one JSON object per line")
    try:
        request = json.loads(line, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValueError as exc:
        raise NotARequest("bad JSON: %s" % exc)
    except RecursionError:
        raise NotARequest("bad JSON: nested too deeply")
    if not isinstance(request, dict):
        raise NotARequest("a request must be a JSON object, got %s" % _json_type(request))
    return request


def _refuse_constant(name):
    raise ValueError("%s is not a JSON number" % name)


def _finite_float(text):
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("number out of range: %s" % text[:20])
    return value


def _encode(reply):
    """Strict JSON (no NaN or Infinity); a reply that cannot be becomes an error reply."""
    try:
        text = json.dumps(reply, separators=(",", ":"), default=str, allow_nan=False)
    except ValueError:
        log.error("management reply was not valid JSON (a non-finite number); sent an error instead")
        text = json.dumps({"id": reply.get("id"), "ok": False, "error": "internal error: reply not encodable"},
                          separators=(",", ":"), default=str, allow_nan=False)
    return (text + "\n").encode("utf-8")


async def _send(writer, reply):
    writer.write(_encode(reply))
    await writer.drain()


async def _close_cleanly(reader, writer, linger=2.0, budget=1 << 20):
    """Half-close, then drain what the client still sends (so the kernel does not answer
    with a reset that could swallow our reply), then close."""
    try:
        if writer.can_write_eof():
            writer.write_eof()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + linger
        while budget > 0:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                data = await asyncio.wait_for(reader.read(65536), remaining)
            except (asyncio.TimeoutError, asyncio.LimitOverrunError, ValueError):
                break
            if not data:
                break
            budget -= len(data)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def _json_type(value):
    return {list: "an array", str: "a string", int: "a number", float: "a number",
            bool: "a boolean", type(None): "null"}.get(type(value), type(value).__name__)


def _int_field(request, name, default, low, high):
    value = request.get(name, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise RequestError("\"%s\" must be a whole number" % name)
    if value < low or (high is not None and value > high):
        raise RequestError("\"%s\" must be %d to %s" % (name, low, high if high is not None else "any"))
    return value


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _safe_call(fn):
    if fn is None:
        return None
    try:
        return fn()
    except Exception as exc:
        return "unknown (%s)" % type(exc).__name__


def parse_hostport(text, default_port=DEFAULT_PORT):
    """'127.0.0.1:7700' | '0.0.0.0' | ':7700' | '[::1]:7700' -> (host, port) for start_tcp."""
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:  # no port given (or a bare IPv6 address in brackets)
        host, port = text, ""
    host = host.strip("[]") or "127.0.0.1"
    if not port:
        return host, default_port
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise KaposError("management address must look like 127.0.0.1:%d, got %r" % (DEFAULT_PORT, text))
    return host, int(port)
