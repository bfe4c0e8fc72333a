"""The operations dashboard: a Starlette app over `Operations`, live through server-sent events.

Staff log in (scrypt hashes, users.py); a session is a random id in an HttpOnly,
SameSite=Strict cookie, kept in memory with its role and its CSRF token. Every POST must
carry that token (form field `csrf` or header `X-CSRF-Token`) or it is refused 403; every
change needs the `operator` role and is audited in the ledger with the user's name.
"""

import asyncio
import hmac
import json
import logging
import secrets
import time
from importlib import resources

from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kapos_tools.sse import event_stream

from kapos_tools.host.web import users
from kapos_tools.host.web.ops import OperationError

log = logging.getLogger("kapos_tools.host.web")

COOKIE = "kapos_ops"
SESSION_IDLE = 30 * 60  # seconds without a request before a session ends
MAX_SESSIONS = 1000
MAX_SUBSCRIBERS = 100
LOGIN_FAILURES = 5  # per user name, then a pause
LOGIN_PAUSE = 30.0
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
           "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store"}


class Sessions:
    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._by_id = {}

    def create(self, user, role):
        if len(self._by_id) >= MAX_SESSIONS:
            self.expire()
            if len(self._by_id) >= MAX_SESSIONS:  # drop the oldest rather than refuse staff
                del self._by_id[min(self._by_id, key=lambda k: self._by_id[k]["seen"])]
        sid = secrets.token_urlsafe(32)
        self._by_id[sid] = {"user": user, "role": role, "csrf": secrets.token_urlsafe(32), "seen": self.clock()}
        return sid

    def get(self, sid):
        session = self._by_id.get(sid or "")
        if session is None:
            return None
        if self.clock() - session["seen"] > SESSION_IDLE:
            del self._by_id[sid]
            return None
        session["seen"] = self.clock()
        return session

    def end(self, sid):
        self._by_id.pop(sid or "", None)

    def expire(self):
        now = self.clock()
        for sid in [s for s, v in self._by_id.items() if now - v["seen"] > SESSION_IDLE]:
            del self._by_id[sid]


class Dashboard:
    def __init__(self, ops, clock=time.monotonic):
        self.ops = ops
        self.sessions = Sessions(clock)
        self.clock = clock
        self.subscribers = set()
        self.failures = {}  # user name -> (count, first failure time)
        static = resources.files("kapos_tools.host.web") / "static"
        self.page = (static / "dashboard.html").read_text()
        self.login_page = (static / "login.html").read_text()
        self.app = Starlette(routes=[
            Route("/", self.index), Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", self.logout, methods=["POST"]), Route("/api/state", self.state),
            Route("/api/events", self.events), Route("/api/{action}", self.act, methods=["POST"]),
            Mount("/static", StaticFiles(directory=str(static)), name="static")])
        self.app.add_middleware(_Headers)

    # ------------------------------------------------------------ live updates

    def publish(self, kind, data=None):
        message = "event: %s\ndata: %s\n\n" % (kind, json.dumps(data or {}))
        for queue in list(self.subscribers):
            if queue.full():  # a slow reader loses its oldest hints, the host no memory
                queue.get_nowait()
            queue.put_nowait(message)

    def end_streams(self):
        for queue in list(self.subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

    async def events(self, request):
        if self._session(request) is None:
            return Response("log in first", 401)
        if len(self.subscribers) >= MAX_SUBSCRIBERS:
            return Response("too many live views", 503)
        return event_stream(self.subscribers, 200)

    # ------------------------------------------------------------ sessions

    def _session(self, request):
        return self.sessions.get(request.cookies.get(COOKIE))

    async def index(self, request):
        session = self._session(request)
        if session is None:
            return RedirectResponse("/login", 303)
        return HTMLResponse(self.page.replace("{{csrf}}", session["csrf"])
                            .replace("{{user}}", _html(session["user"])).replace("{{role}}", session["role"]))

    async def login(self, request):
        if request.method == "GET":
            return HTMLResponse(self.login_page.replace("{{error}}", ""))
        form = await request.form()
        name, password = str(form.get("user", ""))[:64], str(form.get("password", ""))[:256]
        count, since = self.failures.get(name, (0, 0.0))
        if count >= LOGIN_FAILURES and self.clock() - since < LOGIN_PAUSE:
            return self._login_error("too many failed logins: wait %d s" % LOGIN_PAUSE, 429)
        # the ledger's connection is read on this thread, only the scrypt work on another
        role = await asyncio.to_thread(users.check, users.stored_hash(self.ops.ledger, name), password)
        if role is None:
            count = count + 1 if self.clock() - since < LOGIN_PAUSE else 1
            self.failures[name if len(self.failures) < 10000 else "*"] = (count, since if count > 1 else self.clock())
            log.warning("dashboard: failed login for %r", name[:32])
            return self._login_error("wrong user name or password", 401)
        self.failures.pop(name, None)
        sid = self.sessions.create(name, role)
        self.ops._write(lambda: self.ops.audit(name, "login", role))
        reply = RedirectResponse("/", 303)
        reply.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/")
        return reply

    def _login_error(self, text, status):
        return HTMLResponse(self.login_page.replace("{{error}}", _html(text)), status)

    async def logout(self, request):
        session, refused = await self._checked(request, role=None)
        if refused is not None:
            return refused
        self.sessions.end(request.cookies.get(COOKIE))
        reply = RedirectResponse("/login", 303)
        reply.delete_cookie(COOKIE, path="/")
        return reply

    async def _checked(self, request, role="operator"):
        """(session, None) for a logged-in request with the right CSRF token and role,
        else (None, the refusal)."""
        session = self._session(request)
        if session is None:
            return None, JSONResponse({"error": "log in first"}, 401)
        sent = request.headers.get("x-csrf-token")
        form = None
        if sent is None:
            form = await request.form()
            sent = form.get("csrf")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, session["csrf"]):
            log.warning("dashboard: %s refused for %s: missing or wrong CSRF token", request.url.path,
                        session["user"])
            return None, JSONResponse({"error": "missing or wrong CSRF token"}, 403)
        if role is not None and session["role"] != role:
            return None, JSONResponse({"error": "the %s role may not do this" % session["role"]}, 403)
        request.state.form = form
        return session, None

    # ------------------------------------------------------------ reading and changing

    async def state(self, request):
        if self._session(request) is None:
            return JSONResponse({"error": "log in first"}, 401)
        ops = self.ops
        return JSONResponse({"transactions": ops.transactions(), "terminals": ops.terminals(),
                             "alarms": ops.alarms(), "batches": ops.batches(), "accounts": ops.accounts(),
                             "cards": ops.cards(), "charts": ops.charts(), "audit": ops.audit_log(),
                             "now": time.time()})

    async def act(self, request):
        action = request.path_params["action"]
        handlers = {"topup": self._topup, "block": self._block, "unblock": self._unblock,
                    "ack": self._ack, "reset-pin": self._reset_pin, "reissue": self._reissue}
        handler = handlers.get(action)
        if handler is None:
            return JSONResponse({"error": "no such action"}, 404)
        session, refused = await self._checked(request)
        if refused is not None:
            return refused
        try:
            body = await request.json() if request.state.form is None else dict(request.state.form)
        except ValueError:
            return JSONResponse({"error": "the body must be JSON"}, 400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "the body must be a JSON object"}, 400)
        try:
            result = handler(session["user"], body)
        except OperationError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        self.publish("change", {"action": action})
        return JSONResponse(dict(result or {}, ok=True))

    def _topup(self, user, body):
        return {"balance": self.ops.topup(user, _ref(body.get("account")), body.get("amount"))}

    def _block(self, user, body):
        self.ops.block(user, _ref(body.get("card")))

    def _unblock(self, user, body):
        self.ops.unblock(user, _ref(body.get("card")))

    def _reset_pin(self, user, body):
        self.ops.reset_pin_tries(user, _ref(body.get("card")))

    def _reissue(self, user, body):
        return {"token_block": self.ops.reissue_token(user, _ref(body.get("card")))}

    def _ack(self, user, body):
        self.ops.acknowledge(user, _ref(body.get("alarm")))


def _ref(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise OperationError("expected a row reference (a number)")


def _html(text):
    import html

    return html.escape(str(text), quote=True)


class _Headers:
    """Security headers on every reply."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        async def with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()
                         if k.lower().encode() not in names]
                message = dict(message, headers=list(message.get("headers", [])) + extra)
            await send(message)

        await self.app(scope, receive, with_headers)
