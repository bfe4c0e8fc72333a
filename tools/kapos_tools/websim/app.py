"""The simulated terminal in a browser: a Starlette app driving the terminal in process.

It uses the same objects as the console (`kapos.console.Controls` over the simulated
board's keypad, card readers, printer and host link), never a side channel. Who may use
it proves it with the terminal's management token (`<data_dir>/manage-token`, the same
secret the management channel asks for); that opens a session (HttpOnly, SameSite=Strict
cookie) with a CSRF token that every POST must carry. It listens on loopback only and
refuses any board but the simulated one: it can never be reached on a real terminal.

    web = WebSim(assembly, token, host_db="var/host.db")
    await web.start("127.0.0.1", 8000); ...; await web.close()
"""

import asyncio
import hmac
import io
import json
import logging
import secrets
import sqlite3
import time
from importlib import resources

from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kapos.console import Controls
from kapos.errors import KaposError
from kapos_tools.sse import event_stream

log = logging.getLogger("kapos_tools.websim")

COOKIE = "kapos_sim"
MAX_SUBSCRIBERS = 20
SESSION_IDLE = 8 * 3600
LOGIN_FAILURES, LOGIN_PAUSE = 5, 30.0
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
           "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store"}


class WebSimError(KaposError):
    """The browser simulator cannot start here (a real board, a non-loopback address)."""


def _mask(key):
    if not key:
        return ""
    return ("token ****" if key.startswith("TK:") else "****") + key[-4:]


class WebSim:
    def __init__(self, assembly, token, host_db=None, clock=time.monotonic):
        if not _is_sim(assembly):
            raise WebSimError("the browser simulator runs only on the simulated board")
        self.assembly = assembly
        self.terminal = assembly.terminal
        self.controls = Controls(assembly)
        self.token = token
        self.host_db = host_db
        self.clock = clock
        self.sessions = {}  # id -> {"csrf", "seen"}
        self.failures = [0, 0.0]
        self.subscribers = set()
        self.receipts = []
        self.message = ""
        self.last_record = None
        self.frame = 0
        self.chip_mute = False  # the next insert is a dead chip (fallback to the stripe)
        self.inserted = None  # the test card id in the chip slot
        self.server = None
        self.task = None
        static = resources.files("kapos_tools.websim") / "static"
        self.page = (static / "index.html").read_text()
        self.login_page = (static / "login.html").read_text()
        self.app = Starlette(routes=[
            Route("/", self.index), Route("/login", self.login, methods=["GET", "POST"]),
            Route("/frame.png", self.frame_png), Route("/api/status", self.status),
            Route("/api/events", self.events), Route("/api/{action}", self.act, methods=["POST"]),
            Mount("/static", StaticFiles(directory=str(static)), name="static")])
        self.terminal.observers.append(self._observe)

    # ------------------------------------------------------------ terminal side

    def _observe(self, kind, payload):
        if kind == "screen":
            self.frame += 1
        elif kind == "receipt":
            self.receipts.append(payload.text())
            del self.receipts[:-20]
        elif kind == "record":
            self.last_record = {k: payload.get(k) for k in ("type", "outcome", "total", "code", "text", "stan",
                                                            "rrn", "card", "currency")}
        if kind in ("screen", "receipt", "state", "record", "result"):
            self.publish(kind)

    def publish(self, kind):
        message = "event: %s\ndata: %s\n\n" % (kind, json.dumps({"frame": self.frame}))
        for queue in list(self.subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(message)

    def host_view(self):
        """The reference host's rows for this terminal (read-only, masked), newest first."""
        if not self.host_db:
            return {"available": False, "why": "no --host-db given"}
        tid = self.assembly.settings.terminal_id
        try:
            db = sqlite3.connect("file:%s?mode=ro" % self.host_db, uri=True, timeout=1)
        except sqlite3.Error as exc:
            return {"available": False, "why": "cannot open the host ledger (%s)" % type(exc).__name__}
        try:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT created, stan, type, total, code, status, lifecycle, rrn, card_key "
                              "FROM txns WHERE terminal_id = ? ORDER BY id DESC LIMIT 5",
                              (tid.ljust(8),)).fetchall()
            balance = None
            if rows and rows[0]["card_key"]:
                row = db.execute("SELECT a.balance FROM cards c JOIN accounts a ON a.number = c.account "
                                 "WHERE c.key = ?", (rows[0]["card_key"],)).fetchone()
                balance = row[0] if row else None
        except sqlite3.Error as exc:
            return {"available": False, "why": "host ledger not readable (%s)" % type(exc).__name__}
        finally:
            db.close()
        return {"available": True, "terminal": tid, "balance": balance,
                "rows": [{"at": r["created"], "stan": r["stan"], "type": r["type"], "total": r["total"],
                          "code": r["code"], "status": r["status"], "lifecycle": r["lifecycle"],
                          "rrn": r["rrn"], "card": _mask(r["card_key"])} for r in rows]}

    # ------------------------------------------------------------ chip slot

    def _slot(self):
        """The board's chip slot (sim-nfc), or None: the page then shows no insert buttons."""
        slot = self.terminal.platform.get("chip")
        return slot if slot is not None and hasattr(slot, "insert") else None

    def _chip_cards(self):
        """Test cards with a chip: a PAN, no token, a service code saying IC (2xx / 6xx)."""
        return {c.id for c in self.assembly.testcards.values()
                if getattr(c, "pan", None) and not getattr(c, "token", None)
                and str(getattr(c, "service_code", ""))[:1] in ("2", "6")}

    def insert(self, card_id):
        slot = self._slot()
        if slot is None:
            raise ValueError("this board has no chip slot (start it with --board sim-nfc)")
        if card_id not in self._chip_cards():
            raise ValueError("not a chip test card")
        card = self.assembly.testcards[card_id]
        slot.insert(card.track2_equivalent(), "mute" if self.chip_mute else "mchip")  # as the console I key
        self.inserted = card_id
        return "inserted %s%s" % (card_id, " (mute chip)" if self.chip_mute else "")

    def remove(self):
        slot = self._slot()
        if slot is None:
            raise ValueError("this board has no chip slot")
        if slot.card is None:
            self.inserted = None
            return "the slot is empty"
        slot.remove()
        self.inserted = None
        return "card removed"

    def chip_view(self):
        slot = self._slot()
        if slot is None:
            return {"slot": False}
        if slot.card is None:
            self.inserted = None  # taken out by other means (console, scenario)
        return {"slot": True, "inserted": self.inserted, "mute": self.chip_mute}

    # ------------------------------------------------------------ sessions

    def _session(self, request):
        session = self.sessions.get(request.cookies.get(COOKIE) or "")
        if session is None or self.clock() - session["seen"] > SESSION_IDLE:
            return None
        session["seen"] = self.clock()
        return session

    async def index(self, request):
        session = self._session(request)
        if session is None:
            return RedirectResponse("/login", 303)
        return HTMLResponse(self.page.replace("{{csrf}}", session["csrf"]), headers=HEADERS)

    async def login(self, request):
        if request.method == "GET":
            return HTMLResponse(self.login_page.replace("{{error}}", ""), headers=HEADERS)
        if self.failures[0] >= LOGIN_FAILURES and self.clock() - self.failures[1] < LOGIN_PAUSE:
            return HTMLResponse(self.login_page.replace("{{error}}", "too many wrong tokens: wait"), 429,
                                headers=HEADERS)
        form = await request.form()
        sent = str(form.get("token", ""))[:512].strip()
        if not hmac.compare_digest(sent.encode(), self.token.encode()):
            if self.clock() - self.failures[1] >= LOGIN_PAUSE:
                self.failures = [0, self.clock()]
            self.failures[0] += 1
            log.warning("browser simulator: wrong management token")
            return HTMLResponse(self.login_page.replace("{{error}}", "wrong token"), 401, headers=HEADERS)
        self.failures = [0, 0.0]
        if len(self.sessions) > 100:
            self.sessions.clear()
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = {"csrf": secrets.token_urlsafe(32), "seen": self.clock()}
        reply = RedirectResponse("/", 303, headers=HEADERS)
        reply.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/")
        return reply

    # ------------------------------------------------------------ the page's data

    async def frame_png(self, request):
        if self._session(request) is None:
            return Response("log in first", 401)
        display = self.terminal.platform.get("display")
        image = getattr(display, "image", None)
        if image is None:
            return Response(status_code=204)
        buf = io.BytesIO()
        image.convert("1").save(buf, "PNG")
        return Response(buf.getvalue(), media_type="image/png", headers=HEADERS)

    async def status(self, request):
        if self._session(request) is None:
            return JSONResponse({"error": "log in first"}, 401)
        screen = self.terminal.screen
        chip = self._chip_cards()
        cards = [{"hotkey": h, "id": i, "present": p, "pin": pin, "chip": i in chip}
                 for h, i, p, pin in self.controls.card_list()]
        return JSONResponse({"state": self.terminal.state, "frame": self.frame,
                             "screen_text": screen.text() if screen else "", "message": self.message,
                             "receipts": self.receipts[-5:], "record": self.last_record,
                             "faults": self.controls.faults(), "cards": cards, "chip": self.chip_view(),
                             "host": self.host_view()},
                            headers=HEADERS)

    async def events(self, request):
        if self._session(request) is None:
            return Response("log in first", 401)
        if len(self.subscribers) >= MAX_SUBSCRIBERS:
            return Response("too many live views", 503)
        return event_stream(self.subscribers, 100, headers=HEADERS)

    async def act(self, request):
        session = self._session(request)
        if session is None:
            return JSONResponse({"error": "log in first"}, 401)
        sent = request.headers.get("x-csrf-token") or ""
        if not hmac.compare_digest(sent.encode(), session["csrf"].encode()):
            return JSONResponse({"error": "missing or wrong CSRF token"}, 403)
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body must be JSON"}, 400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "the body must be a JSON object"}, 400)
        action = request.path_params["action"]
        try:
            if action == "key":
                self.controls.press(str(body.get("key", "")))
                self.message = ""
            elif action == "card":
                self.message = self.controls.present(str(body.get("id", "")))
            elif action == "insert":
                self.message = self.insert(str(body.get("id", "")))
            elif action == "remove":
                self.message = self.remove()
            elif action == "fault" and body.get("fault") == "chip-mute":
                if self._slot() is None:
                    raise ValueError("this board has no chip slot")
                self.chip_mute = not self.chip_mute
                self.message = "mute chip on the next insert: %s" % self.chip_mute
            elif action == "fault":
                self.message = self.controls.toggle(str(body.get("fault", "")))
            else:
                return JSONResponse({"error": "no such action"}, 404)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        self.publish("input")
        return JSONResponse({"ok": True, "message": self.message})

    # ------------------------------------------------------------ serving

    async def start(self, host="127.0.0.1", port=8000):
        from kapos_tools.host.web.serve import EmbeddedServer, is_loopback

        import socket

        import uvicorn

        if not is_loopback(host):
            raise WebSimError("the browser simulator listens on loopback only (127.0.0.1 or ::1), not %s" % host)
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise WebSimError("the browser simulator cannot listen on %s:%d: %s" % (host, port, exc.strerror or exc))
        sock.listen(16)
        sock.setblocking(False)
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=1, limit_concurrency=50)
        self.server = EmbeddedServer(config)
        self.task = asyncio.ensure_future(self.server.serve(sockets=[sock]))
        self.port = sock.getsockname()[1]
        return self.port

    async def close(self):
        for queue in list(self.subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
        if self.server is not None:
            self.server.should_exit = True
            await asyncio.gather(self.task, return_exceptions=True)


def _is_sim(assembly):
    """Every device of the board is a simulated twin (kapos.ports.sim)."""
    devices = assembly.terminal.platform.devices.values()
    return all(type(d).__module__.startswith("kapos.ports.sim") for d in devices if d is not None)
