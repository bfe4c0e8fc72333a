"""What the operations dashboard reads from and does to the host's ledger.

Every change goes through here, in one SQL transaction with its audit row:

    ops = Operations(ledger)
    ops.topup(user, account, amount)      # cash -> account, a balanced posting
    ops.block(user, card_key) / ops.unblock(user, card_key)
    ops.acknowledge(user, alarm_id)

A top-up is posted against the `cash:topup` book (the money the operator took in), so
`Ledger.check()` stays clean: the card account goes up by exactly what the book goes down.
Nothing read here leaves unmasked: PANs and account numbers show their last 4 digits; the
page names an account or a card by a number of its own (`ops_refs`), never by its key.

The SQL goes through the ledger's storage adapter (db.py), so the dashboard runs on
SQLite and on PostgreSQL alike; a write PostgreSQL refuses as a serialization conflict
(another host process on the same rows) is run again from the start.
"""

import json
import time

from kapos.errors import KaposError
from kapos.host.messages import response_text

from kapos_tools.host import book

TOPUP_BOOK = "cash:topup"
BLOCK_CODE = "62"  # restricted card: what a blocked card's requests are answered
MAX_TOPUP = 10_000_000  # minor units in one top-up: a typo must not mint a fortune

WRITE_ATTEMPTS = 5  # a write refused as a conflict this often gives up with the error

# `staff` names the dashboard user (`user` is a reserved word in PostgreSQL)
SCHEMA = """
CREATE TABLE IF NOT EXISTS ops_users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS ops_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, staff TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT, detail TEXT);
CREATE TABLE IF NOT EXISTS ops_alarms (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, kind TEXT NOT NULL,
    terminal_id TEXT, detail TEXT NOT NULL, source TEXT UNIQUE,
    acked_by TEXT, acked_at REAL);
CREATE TABLE IF NOT EXISTS ops_blocks (
    card_key TEXT PRIMARY KEY, prior TEXT, staff TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS ops_topups (
    id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL, amount INTEGER NOT NULL,
    staff TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS ops_watch (name TEXT PRIMARY KEY, last_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ops_refs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, key TEXT NOT NULL,
    UNIQUE (kind, key));
"""
_RENAMED = ("ops_audit", "ops_blocks", "ops_topups")  # their `user` column of the first release


class OperationError(KaposError):
    """An operator's request the ledger refuses (unknown account, bad amount...)."""


def mask(key):
    """Last 4 of a PAN, an account number or a token key; internal books as they are."""
    if not key:
        return ""
    if key.startswith("TK:"):
        return "token ****" + key[-4:]
    if book.is_internal(key):
        return key
    return "****" + key[-4:] if len(key) > 4 else "****"


def prepare(db):
    tables = db.tables()
    for table in _RENAMED:  # a SQLite ledger of the first dashboard release
        if table in tables and "user" in db.columns(table):
            db.execute('ALTER TABLE %s RENAME COLUMN "user" TO staff' % table)
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(db.ddl(statement))


def write(ledger, change):
    """change() in one ledger transaction, run again when PostgreSQL refuses it as a
    conflict with another host process (inside an open transaction: once, its caller retries)."""
    db = ledger.db
    for attempt in range(WRITE_ATTEMPTS):
        try:
            with ledger._tx():
                return change()
        except Exception as exc:
            if db.depth or not db.is_retryable(exc) or attempt == WRITE_ATTEMPTS - 1:
                raise


class Operations:
    def __init__(self, ledger, clock=time.time):
        self.ledger = ledger
        self.db = ledger.db
        self.clock = clock
        write(ledger, lambda: prepare(self.db))

    def _write(self, change):
        return write(self.ledger, change)

    # ------------------------------------------------------------ audit

    def audit(self, user, action, target="", detail=""):
        self.db.execute("INSERT INTO ops_audit (at, staff, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                        (self.clock(), user, action, target, detail))

    def audit_log(self, limit=50):
        return [{"at": r["at"], "user": r["staff"], "action": r["action"], "target": r["target"],
                 "detail": r["detail"]} for r in self.db.execute(
            "SELECT at, staff, action, target, detail FROM ops_audit ORDER BY id DESC LIMIT ?", (limit,))]

    # ------------------------------------------------------------ references

    def _refs(self, kind, keys):
        """{key: ref} for these account numbers or card keys, new ones numbered now."""
        known = {r["key"]: r["id"] for r in self.db.execute("SELECT key, id FROM ops_refs WHERE kind = ?",
                                                             (kind,))}
        missing = [key for key in keys if key not in known]
        if missing:
            def number():
                for key in missing:
                    self.db.execute("INSERT INTO ops_refs (kind, key) VALUES (?, ?) ON CONFLICT (kind, key) "
                                    "DO NOTHING", (kind, key))
            self._write(number)
            known = {r["key"]: r["id"] for r in self.db.execute(
                "SELECT key, id FROM ops_refs WHERE kind = ?", (kind,))}
        return known

    def _key_of(self, kind, ref):
        row = self.db.execute("SELECT key FROM ops_refs WHERE id = ? AND kind = ?", (ref, kind)).fetchone()
        return row["key"] if row is not None else None

    # ------------------------------------------------------------ accounts and cards

    def _account_of(self, ref):
        """The account the dashboard showed under reference `ref`."""
        number = self._key_of("account", ref)
        if number is None or self.db.execute("SELECT 1 FROM accounts WHERE number = ?",
                                             (number,)).fetchone() is None:
            raise OperationError("no such account")
        return number

    def topup(self, user, account_ref, amount):
        try:
            amount = int(amount)
        except (TypeError, ValueError):
            raise OperationError("the amount must be a whole number of minor units")
        if not 0 < amount <= MAX_TOPUP:
            raise OperationError("a top-up is 1 to %d minor units" % MAX_TOPUP)
        def change():
            account = self._account_of(account_ref)
            topup_id = self.db.insert("INSERT INTO ops_topups (account, amount, staff, at) VALUES (?, ?, ?, ?)",
                                      (account, amount, user, self.clock()))
            # no txn row: the entries carry neither txn_id nor reversal_id, and sum to zero
            book.post(self.db, [[account, amount], [TOPUP_BOOK, -amount]])
            self.audit(user, "topup", mask(account), "%d (topup %d)" % (amount, topup_id))
            return account
        return self.ledger.balance(self._write(change))

    def _card(self, card_ref):
        row = self.db.execute("SELECT key, decline FROM cards WHERE key = ?",
                              (self._key_of("card", card_ref),)).fetchone()
        if row is None:
            raise OperationError("no such card")
        return row

    def block(self, user, card_ref):
        def change():
            card = self._card(card_ref)
            if self.db.execute("SELECT 1 FROM ops_blocks WHERE card_key = ?", (card["key"],)).fetchone():
                raise OperationError("the card is blocked already")
            self.db.execute("INSERT INTO ops_blocks (card_key, prior, staff, at) VALUES (?, ?, ?, ?)",
                            (card["key"], card["decline"], user, self.clock()))
            self.db.execute("UPDATE cards SET decline = ? WHERE key = ?", (BLOCK_CODE, card["key"]))
            self.audit(user, "block", mask(card["key"]))
        self._write(change)

    def unblock(self, user, card_ref):
        def change():
            card = self._card(card_ref)
            row = self.db.execute("SELECT prior FROM ops_blocks WHERE card_key = ?", (card["key"],)).fetchone()
            if row is None:
                raise OperationError("the card is not blocked")
            self.db.execute("UPDATE cards SET decline = ? WHERE key = ?", (row["prior"], card["key"]))
            self.db.execute("DELETE FROM ops_blocks WHERE card_key = ?", (card["key"],))
            self.audit(user, "unblock", mask(card["key"]))
        self._write(change)

    def reissue_token(self, user, card_ref):
        """A closed-loop token re-issued: its counter at the host goes one past the newest
        seen, so every older copy (a clone of the lost tag) is refused 63 from now on.
        Returns the new token block (hex) to write to the replacement tag; it is not kept."""
        from kapos.security.token import make_token_block

        if self.ledger.token_key is None:
            raise OperationError("the host checks no token MACs (no token key): nothing to re-issue")

        def change():
            card = self._card(card_ref)
            if not card["key"].startswith("TK:"):
                raise OperationError("only closed-loop tokens are re-issued")
            row = self.db.execute("SELECT counter FROM token_counters WHERE key = ?", (card["key"],)).fetchone()
            counter = (row["counter"] if row is not None else 0) + 1
            self.db.execute("INSERT INTO token_counters (key, counter) VALUES (?, ?) ON CONFLICT (key) "
                            "DO UPDATE SET counter = excluded.counter", (card["key"], counter))
            self.audit(user, "reissue-token", mask(card["key"]), "counter %d" % counter)
            return card["key"], counter
        key, counter = self._write(change)
        return make_token_block(self.ledger.token_key, bytes.fromhex(key[3:]), counter).hex()

    def reset_pin_tries(self, user, card_ref):
        def change():
            card = self._card(card_ref)
            self.db.execute("DELETE FROM pin_tries WHERE key = ?", (card["key"],))
            self.audit(user, "reset-pin-tries", mask(card["key"]))
        self._write(change)

    def accounts(self):
        rows = self.db.execute("SELECT number, name, balance FROM accounts ORDER BY number").fetchall()
        refs = self._refs("account", [r["number"] for r in rows])
        return [{"ref": refs[r["number"]], "account": mask(r["number"]), "name": r["name"] or "",
                 "balance": r["balance"]} for r in rows]

    def cards(self):
        rows = self.db.execute(
            "SELECT c.key, c.card_id, c.kind, c.account, c.decline, a.balance, "
            "b.card_key IS NOT NULL AS blocked, COALESCE(p.failures, 0) AS pin_failures "
            "FROM cards c LEFT JOIN accounts a ON a.number = c.account "
            "LEFT JOIN ops_blocks b ON b.card_key = c.key "
            "LEFT JOIN pin_tries p ON p.key = c.key ORDER BY c.card_id").fetchall()
        refs = self._refs("card", [r["key"] for r in rows])
        return [{"ref": refs[r["key"]], "card": mask(r["key"]), "id": r["card_id"] or "", "kind": r["kind"],
                 "account": mask(r["account"]), "balance": r["balance"], "blocked": bool(r["blocked"]),
                 "pin_failures": r["pin_failures"]} for r in rows]

    # ------------------------------------------------------------ alarms

    def raise_alarm(self, kind, terminal_id, detail, source=None):
        """Record an alarm once per `source`; returns it, or None when it was known."""
        def change():
            row = self.db.execute(
                "INSERT INTO ops_alarms (at, kind, terminal_id, detail, source) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (source) DO NOTHING RETURNING id",
                (self.clock(), kind, (terminal_id or "").strip(), detail, source)).fetchall()
            return self.alarm(row[0][0]) if row else None
        return self._write(change)

    def alarm(self, alarm_id):
        row = self.db.execute("SELECT * FROM ops_alarms WHERE id = ?", (alarm_id,)).fetchone()
        return _alarm_dict(row) if row is not None else None

    def alarms(self, limit=100):
        return [_alarm_dict(r) for r in self.db.execute(
            "SELECT * FROM ops_alarms ORDER BY id DESC LIMIT ?", (limit,))]

    def acknowledge(self, user, alarm_id):
        def change():
            cursor = self.db.execute("UPDATE ops_alarms SET acked_by = ?, acked_at = ? WHERE id = ? "
                                     "AND acked_by IS NULL", (user, self.clock(), alarm_id))
            if not cursor.rowcount:
                raise OperationError("no such unacknowledged alarm")
            self.audit(user, "ack-alarm", str(alarm_id))
        self._write(change)

    def watermark(self, name):
        row = self.db.execute("SELECT last_id FROM ops_watch WHERE name = ?", (name,)).fetchone()
        return row[0] if row is not None else None

    def set_watermark(self, name, last_id):
        self.db.execute("INSERT INTO ops_watch (name, last_id) VALUES (?, ?) ON CONFLICT (name) "
                        "DO UPDATE SET last_id = excluded.last_id", (name, last_id))

    # ------------------------------------------------------------ views

    def transactions(self, limit=50):
        rows = self.db.execute(
            "SELECT id, created, terminal_id, stan, type, total, code, status, card_key, rrn "
            "FROM txns ORDER BY id DESC LIMIT ?", (limit,))
        return [{"id": r["id"], "at": r["created"], "terminal": (r["terminal_id"] or "").strip(),
                 "stan": r["stan"], "type": r["type"] or "", "total": r["total"], "code": r["code"],
                 "status": r["status"], "card": mask(r["card_key"]), "rrn": r["rrn"]} for r in rows]

    def terminals(self):
        """Registry rows joined with what the ledger saw: last message, reversals pending,
        the version and self-test status the terminal reported in its last 0800 (48 SV, ST),
        else its last self-test alert."""
        out = []
        db = self.db
        tables = db.tables()
        ids = {r[0].strip() for r in db.execute("SELECT DISTINCT terminal_id FROM txns")}
        signed_on = {r[0].strip(): r[1] for r in db.execute("SELECT terminal_id, last_seen FROM terminals")}
        ids |= set(signed_on)
        registry, reported = {}, {}
        if "terminal_registry" in tables:
            for r in db.execute("SELECT * FROM terminal_registry"):
                registry[r["terminal_id"].strip()] = dict(r)
        if "terminal_status" in tables:
            for r in db.execute("SELECT terminal_id, version, selftest, reported FROM terminal_status"):
                reported[r["terminal_id"].strip()] = r
        ids |= set(registry) | set(reported)
        for tid in sorted(ids):
            last = db.execute("SELECT MAX(created) FROM txns WHERE terminal_id = ?",
                              (tid.ljust(8),)).fetchone()[0]
            status = reported.get(tid)
            seen = [t for t in (last, signed_on.get(tid), status["reported"] if status else None) if t]
            # reversals the host was sent but could not apply (no original yet, or refused)
            pending = db.execute(
                "SELECT COUNT(*) FROM reversals WHERE terminal_id IN (?, ?) AND applied = 0",
                (tid, tid.ljust(8))).fetchone()[0]
            reg = registry.get(tid, {})
            selftest, selftest_ok = _selftest_text(status["selftest"] if status else None)
            if selftest_ok is None:
                alert = db.execute(
                    "SELECT rule, detail FROM alerts WHERE terminal_id IN (?, ?) AND rule LIKE 'selftest%' "
                    "ORDER BY id DESC LIMIT 1", (tid, tid.ljust(8))).fetchone()
                if alert is not None:
                    selftest, selftest_ok = "%s %s" % (alert["rule"], alert["detail"]), False
            out.append({"terminal": tid, "last_seen": max(seen) if seen else None,
                        "status": reg.get("status", ""), "merchant": (reg.get("merchant_id") or "").strip(),
                        "version": (status["version"] if status else None) or "not reported",
                        "selftest": selftest, "selftest_ok": selftest_ok, "pending_reversals": pending})
        return out

    def batches(self):
        out = []
        for b in self.ledger.batches():
            out.append({"terminal": (b["terminal_id"] or "").strip(), "number": b["number"],
                        "code": b["code"], "at": b["created"],
                        "terminal_totals": _totals(b["terminal_totals"]),
                        "host_totals": _totals(b["host_totals"])})
        return out

    def charts(self, hours=24):
        now = self.clock()
        start = now - hours * 3600
        volume = [0] * hours
        approved = declined = 0
        reasons = {}
        for r in self.db.execute("SELECT created, total, code, status FROM txns WHERE created >= ? "
                                 "AND mti IN ('0200', '0100', '0220')", (start,)):
            slot = min(hours - 1, int((r["created"] - start) // 3600))
            if r["code"] == "00":
                approved += 1
                volume[slot] += r["total"] or 0
            else:
                declined += 1
                label = "%s %s" % (r["code"], response_text(r["code"]) or "")
                reasons[label.strip()] = reasons.get(label.strip(), 0) + 1
        labels = [time.strftime("%H", time.localtime(start + 3600 * (i + 1))) for i in range(hours)]
        total = approved + declined
        return {"volume": {"labels": labels, "values": volume},
                "approval_rate": round(100.0 * approved / total, 1) if total else None,
                "approved": approved, "declined": declined,
                "declines": sorted(reasons.items(), key=lambda kv: -kv[1])}


def _selftest_text(value):
    """(text, ok) of a reported ST value (private48): ok None when nothing was reported."""
    if not value or value == "N":
        return ("not run yet" if value else "not reported"), None
    if value == "P":
        return "passed", True
    return "FAILED: " + value[2:].replace(",", ", "), False


def _alarm_dict(row):
    return {"id": row["id"], "at": row["at"], "kind": row["kind"], "terminal": row["terminal_id"] or "",
            "detail": row["detail"], "acked_by": row["acked_by"], "acked_at": row["acked_at"]}


def _totals(text):
    if not text:
        return ""
    try:
        return json.dumps(json.loads(text), separators=(",", ":"))[:200]
    except ValueError:
        return "?"
