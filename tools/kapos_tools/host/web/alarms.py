"""Alarms: found in the ledger as they land, pushed to the dashboard, sent to the hooks.

The watcher reads the same ledger the host writes (in the host's process or beside it;
SQLite or PostgreSQL, through the storage adapter), so it needs no hook in the message path: every `interval` seconds it looks at rows past
its watermarks and turns these into alarms:

    alerts (0620)        anomaly alerts of the terminals, tamper among them
    txns code 75 / 55    PIN tries exhausted / a wrong PIN on a card that had one already
    txns code 65         velocity declines
    txns code 63         security refusals (a bad token MAC)
    log "bad MAC"        requests refused 63 for their MAC (in-process: a logging handler)

Each alarm is stored once (`ops_alarms.source` is unique), then handed to `Notifier`:
a webhook (POST JSON) and/or a command (argv, the alarm as JSON on stdin, no shell).
A hook that fails or hangs is logged and dropped; it never stops the watcher.
"""

import asyncio
import json
import logging
import shlex
import urllib.request

log = logging.getLogger("kapos_tools.host.web")

HOOK_TIMEOUT = 5.0


class Notifier:
    def __init__(self, webhook=None, command=None, timeout=HOOK_TIMEOUT):
        if webhook and not webhook.startswith(("http://", "https://")):
            raise ValueError("the webhook must be an http:// or https:// URL")
        self.webhook = webhook
        self.command = shlex.split(command) if command else None
        self.timeout = timeout
        self._tasks = set()

    def notify(self, alarm):
        for hook in (self._post if self.webhook else None, self._run if self.command else None):
            if hook is not None:
                task = asyncio.ensure_future(self._guard(hook, alarm))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _guard(self, hook, alarm):
        try:
            await asyncio.wait_for(hook(alarm), self.timeout)
        except Exception as exc:
            log.warning("alarm %s: notification hook failed: %s", alarm["id"], type(exc).__name__)

    async def _post(self, alarm):
        body = json.dumps({"alarm": alarm}).encode()
        request = urllib.request.Request(self.webhook, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})

        def send():
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                reply.read(1024)

        await asyncio.to_thread(send)

    async def _run(self, alarm):
        proc = await asyncio.create_subprocess_exec(
            *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        try:
            await proc.communicate(json.dumps({"alarm": alarm}).encode())
        finally:
            if proc.returncode is None:
                proc.kill()

    async def close(self):
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class BadMacHandler(logging.Handler):
    """Turns the host server's "bad MAC" warnings into alarms (in-process only)."""

    def __init__(self, sink):
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record):
        try:
            text = record.getMessage()
        except Exception:
            return
        if "bad MAC" in text:
            self.sink.append(("mac", text.split(" ")[2] if text.count(" ") > 2 else "", text))


class Watcher:
    def __init__(self, ops, notifier=None, interval=0.2, on_alarm=None):
        self.ops = ops
        self.notifier = notifier
        self.interval = interval
        self.on_alarm = on_alarm or (lambda alarm: None)
        self.pending_log = []  # (kind, terminal, detail) from BadMacHandler
        self._task = None
        self._start_marks()

    def _start_marks(self):
        """Alarms are for what happens from now on: a first start begins at the current end."""
        db = self.ops.db

        def start():
            for name, table in (("alerts", "alerts"), ("txns", "txns")):
                if self.ops.watermark(name) is None:
                    last = db.execute("SELECT COALESCE(MAX(id), 0) FROM %s" % table).fetchone()[0]
                    self.ops.set_watermark(name, last)
        self.ops._write(start)

    def scan(self):
        """One look at the ledger; returns the new alarms (also notified)."""
        found = []
        db = self.ops.db
        marks = {}  # only a scan that saw new rows writes (the host's ledger is fsynced)
        first = self.ops.watermark("alerts")
        for r in db.execute("SELECT id, terminal_id, rule, detail FROM alerts WHERE id > ? ORDER BY id LIMIT 500",
                            (first,)).fetchall():
            kind = "tamper" if r["rule"] == "tamper" else "anomaly"
            found.append((kind, r["terminal_id"], "%s: %s" % (r["rule"], r["detail"]), "alert:%d" % r["id"]))
            marks["alerts"] = r["id"]
        first = self.ops.watermark("txns")
        for r in db.execute("SELECT id, terminal_id, stan, code, card_key FROM txns WHERE id > ? ORDER BY id LIMIT 500",
                            (first,)).fetchall():
            marks["txns"] = r["id"]
            alarm = self._txn_alarm(r)
            if alarm is not None:
                found.append(alarm + ("txn:%d" % r["id"],))
        if marks:
            self.ops._write(lambda: [self.ops.set_watermark(name, last) for name, last in marks.items()])
        while self.pending_log:
            kind, terminal, detail = self.pending_log.pop(0)
            found.append((kind, terminal, detail, None))
        alarms = []
        for kind, terminal, detail, source in found:
            alarm = self.ops.raise_alarm(kind, terminal, detail, source)
            if alarm is not None:
                alarms.append(alarm)
                log.warning("ALARM %s from %s: %s", kind, alarm["terminal"], detail)
                if self.notifier is not None:
                    self.notifier.notify(alarm)
                self.on_alarm(alarm)
        return alarms

    def _txn_alarm(self, r):
        card = self.ops_mask(r["card_key"])
        where = "stan %s card %s" % (r["stan"], card)
        if r["code"] == "75":
            return ("pin", r["terminal_id"], "PIN tries exhausted, card locked (%s)" % where)
        if r["code"] == "55" and r["card_key"]:
            row = self.ops.db.execute("SELECT failures FROM pin_tries WHERE key = ?", (r["card_key"],)).fetchone()
            if row is not None and row[0] >= 2:
                return ("pin", r["terminal_id"], "%d wrong PINs in a row (%s)" % (row[0], where))
        if r["code"] == "65":
            return ("velocity", r["terminal_id"], "velocity decline (%s)" % where)
        if r["code"] == "63" and r["card_key"]:
            return ("security", r["terminal_id"], "security refusal 63 (%s)" % where)
        return None

    @staticmethod
    def ops_mask(key):
        from kapos_tools.host.web.ops import mask

        return mask(key)

    def start(self):
        self._task = asyncio.ensure_future(self._loop())

    async def _loop(self):
        while True:
            try:
                self.scan()
            except Exception:
                log.exception("alarm watcher: scan failed (retrying)")
            await asyncio.sleep(self.interval)

    async def close(self):
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.notifier is not None:
            await self.notifier.close()
