"""The terminal's journal: one SQLite file, durable per commit.

What it keeps (and what it never keeps)
---------------------------------------
- `txns`: one row per financial request sent (or about to be sent) to the host: ref,
  STAN, MTI, type, amount, fee, total, masked PAN, field 7 transmission time, batch,
  status, response code, authorization code, RRN, balance, times.
- `meta`: the STAN counter (`last_stan`), the open batch number, the schema version.
- `queue`: the store-and-forward queue - reversals as *encoded ISO 8583 messages* (the
  terminal decides nothing offline, so it queues no 0220 advice; `kind` is always
  `reversal`). A reversal identifies the original by field 90 (original MTI, STAN,
  transmission time) and the terminal id (41); the card by nothing at all. Fields 2, 14,
  35, 45, 48, 52, 53 and 55 are refused (`SENSITIVE_QUEUE_FIELDS`): no clear PAN, track,
  PIN block, KSN or ICC data ever reaches the disk. (Should a host ever need field 2 in a
  reversal, it must be stored encrypted: issue 4.)
- `batches`: settlement history (totals sent, response code, agreed or not).
- `batch_totals`: one row per batch, the running reconciliation totals (count and amount
  per totals class of kapos.txn_types), changed in the same transaction as the status
  change that moves an entry into or out of `approved`. Closing a batch reads one row,
  whatever the batch's size; `recount_totals()` is the full scan it must always equal.

Durability: WAL journal mode with `synchronous=FULL` (durable at each commit, also on
power loss). Every state change that matters is one transaction (`BEGIN IMMEDIATE`).

Threads: every write takes the journal's lock, so it can run on any thread; the event
loop awaits its writes through `journal.aio.<write>(...)`, which runs them in order on
the journal's one writer thread (an fsync on an SD card takes tens of milliseconds: the
loop must not wait for it). Reads go through a second connection (WAL lets it read the
last committed state beside a commit in progress), so a read on the loop never waits for
the writer. An awaited write is on disk when the await returns: the write-ahead rule
(a request's reversal is durable before the request leaves) is kept by awaiting.

Transaction status
------------------
    pending           journaled, sent or being sent; its reversal is armed (not due)
    approved          the host approved it; the armed reversal stays for a cancel()
    declined          the host declined it (the reversal is dropped)
    unsent            never left the terminal (the link was down); nothing to reverse
    reversal-pending  the outcome is unknown or was cancelled: the reversal is due
    reversed          the host answered the reversal
A restart turns `pending` into `reversal-pending`: a request in flight when the power
went is reversed, whatever the host did with it.

Queue item state: armed (kept, not sent), due (to send, from `next_attempt`), done.

STAN: `next_stan()` advances `last_stan` and commits BEFORE returning, so a STAN is never
used twice, across restarts; 999999 wraps to 000001.
"""

import asyncio
import concurrent.futures
import json
import os
import sqlite3
import threading
import time

from kapos.errors import KaposError
from kapos.host import client, codec
from kapos.host.messages import TOTALS_FIELDS, next_stan

SCHEMA_VERSION = 2  # 2: batch_totals (running totals); a version 1 journal is migrated
DEFAULT_NAME = "journal.sqlite3"

PENDING = "pending"
APPROVED = "approved"
DECLINED = "declined"
UNSENT = "unsent"
REVERSAL_PENDING = "reversal-pending"
REVERSED = "reversed"
STATUSES = (PENDING, APPROVED, DECLINED, UNSENT, REVERSAL_PENDING, REVERSED)

ARMED = "armed"
DUE = "due"
DONE = "done"

REVERSAL = "reversal"  # the one kind of queue item

# Fields a stored (queued) message may never carry (kapos.host.client).
SENSITIVE_QUEUE_FIELDS = client.SENSITIVE_QUEUE_FIELDS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS txns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ref INTEGER, stan TEXT NOT NULL, mti TEXT NOT NULL, type TEXT NOT NULL,
    amount INTEGER NOT NULL DEFAULT 0, fee INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0, currency TEXT, masked_pan TEXT,
    transmission TEXT NOT NULL, local_date TEXT, batch INTEGER NOT NULL,
    original_id INTEGER, status TEXT NOT NULL, response_code TEXT, auth_code TEXT,
    rrn TEXT, balance INTEGER, reason TEXT, late_code TEXT,
    created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS txns_stan ON txns (stan);
CREATE INDEX IF NOT EXISTS txns_batch ON txns (batch, status);
CREATE INDEX IF NOT EXISTS txns_ref ON txns (ref);
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    txn_id INTEGER, kind TEXT NOT NULL, state TEXT NOT NULL, stan TEXT NOT NULL,
    message BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0, last_error TEXT, response_code TEXT,
    created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS queue_state ON queue (state, next_attempt);
CREATE INDEX IF NOT EXISTS queue_txn ON queue (txn_id);
CREATE INDEX IF NOT EXISTS queue_stan ON queue (stan);
CREATE TABLE IF NOT EXISTS batches (
    number INTEGER PRIMARY KEY, state TEXT NOT NULL, totals TEXT, response_code TEXT,
    host_totals TEXT, opened REAL, closed REAL);
CREATE TABLE IF NOT EXISTS batch_totals (batch INTEGER PRIMARY KEY, %s);
""" % ", ".join("%s INTEGER NOT NULL DEFAULT 0" % key for key in sorted(TOTALS_FIELDS))

# The writes the loop awaits through `journal.aio` (run on the writer thread).
WRITES = frozenset(("next_stan", "begin", "record_result", "mark_unsent", "reverse",
                    "note_late_reply", "recover", "attempt_failed", "complete",
                    "close_batch", "finish_batch", "prune", "set_last_stan"))


def _batch_totals(db, batch):
    totals = dict.fromkeys(TOTALS_FIELDS, 0)
    rows = db.execute(
        "SELECT t.type, t.total, o.type AS original_type, o.total AS original_total "
        "FROM txns t LEFT JOIN txns o ON o.id = t.original_id "
        "WHERE t.batch = ? AND t.status = ?", (batch, APPROVED))
    for row in rows:
        client.add_to_totals(totals, row["type"], row["total"], row["original_type"], row["original_total"])
    return totals


class JournalError(KaposError):
    """The journal refused an operation (unknown row, a sensitive field to store)."""


def check_storable(message):
    """Raise JournalError if a message dict holds a field the queue must never store."""
    for number in SENSITIVE_QUEUE_FIELDS:
        if number in message:
            raise JournalError("field %d may not be stored in the journal" % number)


class Journal:
    """The terminal journal in `directory` (created if needed). Writes are serialised by
    a lock (any thread); the loop awaits them through `aio` (see the module text).

    fsync_delay: seconds added to each commit, holding the write lock, to model a slow
    SD card's fsync on the timed sim board (boards/sim-pi.toml); 0 elsewhere."""

    def __init__(self, directory, name=DEFAULT_NAME, clock=time.time, fsync_delay=0.0):
        if directory != ":memory:":
            os.makedirs(directory, exist_ok=True)
            path = os.path.join(directory, name)
        else:
            path = ":memory:"
        self.path = path
        self.clock = clock
        self.fsync_delay = fsync_delay
        self._lock = threading.RLock()  # one writer at a time, whichever thread
        self._writer = None  # the single-thread executor behind `aio`, made on first use
        self._writer_lock = threading.Lock()
        self.aio = _OffLoop(self)
        # opened where the terminal is composed, written by the writer thread and by
        # whoever holds the lock
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        with self._tx():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)
            for key, value in (("schema", str(SCHEMA_VERSION)), ("last_stan", "0"),
                               ("batch", "1")):
                self.db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                                (key, value))
            schema = int(self._meta("schema"))
            if schema == 1:  # before running totals: count every batch once, now
                self._rebuild_totals()
                self._set_meta("schema", SCHEMA_VERSION)
                schema = SCHEMA_VERSION
        if schema != SCHEMA_VERSION:
            self.db.close()
            raise JournalError("journal schema %d, this firmware knows %d" % (schema, SCHEMA_VERSION))
        if path == ":memory:":  # one connection only: reads share the writer's, and its lock
            self.reader, self._read_lock = self.db, self._lock
        else:
            self.reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.reader.row_factory = sqlite3.Row
            self._read_lock = threading.Lock()

    # ------------------------------------------------------------ plumbing

    def _tx(self):
        return _Transaction(self)

    def _rows(self, sql, args=()):
        """A read on the reader connection: the last committed state, never waiting for
        a commit in progress (file journals)."""
        with self._read_lock:
            return self.reader.execute(sql, args).fetchall()

    def _row(self, sql, args=()):
        rows = self._rows(sql, args)
        return rows[0] if rows else None

    def _meta(self, key):
        """A meta value read inside a write transaction (the writer's connection)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _read_meta(self, key):
        row = self._row("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0] if row else None

    def _set_meta(self, key, value):
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value)))

    def _on_writer(self, method, *args, **kwargs):
        """Submit one write to the writer thread; a concurrent future."""
        with self._writer_lock:  # not the write lock: a commit in progress holds that one
            if self._writer is None:
                self._writer = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="kapos-journal")
            return self._writer.submit(method, *args, **kwargs)

    def close(self):
        with self._writer_lock:
            writer, self._writer = self._writer, None
        if writer is not None:  # writes already submitted still reach the disk
            writer.shutdown(wait=True)
        reader = getattr(self, "reader", self.db)
        for db in (self.db,) if reader is self.db else (self.db, reader):
            try:
                db.close()
            except sqlite3.Error:
                pass

    # ------------------------------------------------------------ STAN and batch

    def next_stan(self):
        """The next STAN as 6 digits, committed to disk before it is returned."""
        with self._tx():
            stan = next_stan(int(self._meta("last_stan")))
            self._set_meta("last_stan", stan)
        return "%06d" % stan

    @property
    def last_stan(self):
        return "%06d" % int(self._read_meta("last_stan"))

    def set_last_stan(self, value):
        """For tests and migration: the STAN counter's last value (0..999999)."""
        next_stan(value)
        with self._tx():
            self._set_meta("last_stan", int(value))

    def stan_used(self, stan):
        """True when `stan` was used by a journaled transaction or queued message."""
        row = self._row("SELECT 1 FROM txns WHERE stan = ? UNION ALL "
                        "SELECT 1 FROM queue WHERE stan = ? LIMIT 1", (stan, stan))
        return row is not None

    def current_batch(self):
        return int(self._read_meta("batch"))

    # ------------------------------------------------------------ transactions

    def begin(self, ref, stan, mti, txn_type, amount, fee, total, transmission, batch,
              masked_pan=None, currency=None, local_date=None, original_id=None,
              reversal=None):
        """Journal a request as `pending` before it is sent, with its reversal armed.

        reversal: (stan, encoded message) or None. Returns the transaction id."""
        now = self.clock()
        with self._tx():
            cur = self.db.execute(
                "INSERT INTO txns (ref, stan, mti, type, amount, fee, total, currency, "
                "masked_pan, transmission, local_date, batch, original_id, status, created, "
                "updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (ref, stan, mti, txn_type, amount or 0, fee or 0, total or 0, currency,
                 masked_pan, transmission, local_date, batch, original_id, PENDING, now, now))
            txn_id = cur.lastrowid
            if reversal is not None:
                self._enqueue(txn_id, REVERSAL, ARMED, reversal[0], reversal[1], now)
        return txn_id

    def _enqueue(self, txn_id, kind, state, stan, message, now):
        if not isinstance(message, (bytes, bytearray)):
            raise JournalError("a queued message is encoded bytes")
        check_storable(codec.decode(bytes(message)))
        self.db.execute(
            "INSERT INTO queue (txn_id, kind, state, stan, message, next_attempt, created, "
            "updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (txn_id, kind, state, stan, bytes(message), now, now, now))

    def get(self, txn_id):
        row = self._row("SELECT * FROM txns WHERE id = ?", (txn_id,))
        return dict(row) if row else None

    def find_by_stan(self, stan):
        row = self._row("SELECT * FROM txns WHERE stan = ? ORDER BY id DESC LIMIT 1", (stan,))
        return dict(row) if row else None

    def find_by_ref(self, ref):
        row = self._row("SELECT * FROM txns WHERE ref = ? ORDER BY id DESC LIMIT 1", (ref,))
        return dict(row) if row else None

    def find_by_rrn(self, rrn):
        row = self._row("SELECT * FROM txns WHERE rrn = ? ORDER BY id DESC LIMIT 1", (rrn,))
        return dict(row) if row else None

    def transactions(self, status=None, batch=None):
        sql = "SELECT * FROM txns"
        where, args = [], []
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if batch is not None:
            where.append("batch = ?")
            args.append(batch)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [dict(r) for r in self._rows(sql + " ORDER BY id", args)]

    def record_result(self, txn_id, approved, code, auth_code=None, rrn=None, balance=None,
                      reversal_message=None):
        """The host answered: `approved` keeps the armed reversal (replaced by
        `reversal_message` if given, e.g. with the RRN and auth code); a decline drops it.
        Only a `pending` transaction changes; returns its status afterwards."""
        now = self.clock()
        with self._tx():
            row = self.db.execute("SELECT status FROM txns WHERE id = ?", (txn_id,)).fetchone()
            if row is None:
                raise JournalError("no transaction %s" % txn_id)
            if row[0] != PENDING:
                return row[0]
            status = APPROVED if approved else DECLINED
            self.db.execute(
                "UPDATE txns SET status = ?, response_code = ?, auth_code = ?, rrn = ?, "
                "balance = ?, updated = ? WHERE id = ?",
                (status, code, auth_code, rrn, balance, now, txn_id))
            if approved:
                self._count(txn_id, +1)
                if reversal_message is not None:
                    check_storable(codec.decode(bytes(reversal_message)))
                    self.db.execute("UPDATE queue SET message = ?, updated = ? WHERE txn_id = ? "
                                    "AND kind = ? AND state = ?",
                                    (bytes(reversal_message), now, txn_id, REVERSAL, ARMED))
            else:
                self.db.execute("DELETE FROM queue WHERE txn_id = ? AND state = ?",
                                (txn_id, ARMED))
        return status

    def mark_unsent(self, txn_id, reason):
        """The request never left the terminal: nothing to reverse."""
        now = self.clock()
        with self._tx():
            self.db.execute("UPDATE txns SET status = ?, reason = ?, updated = ? WHERE id = ? "
                            "AND status = ?", (UNSENT, reason, now, txn_id, PENDING))
            self.db.execute("DELETE FROM queue WHERE txn_id = ? AND state = ?", (txn_id, ARMED))

    def reverse(self, txn_id, reason, message=None):
        """Make the reversal of a pending or approved transaction due now (optionally
        replacing the stored message, e.g. with another reason code). Returns True when
        a reversal is (now or already) due, False when there is nothing to reverse."""
        now = self.clock()
        with self._tx():
            row = self.db.execute("SELECT status FROM txns WHERE id = ?", (txn_id,)).fetchone()
            if row is None:
                return False
            status = row[0]
            if status in (REVERSAL_PENDING, REVERSED):
                return True
            if status not in (PENDING, APPROVED):
                return False
            item = self.db.execute("SELECT id FROM queue WHERE txn_id = ? AND kind = ? AND "
                                   "state = ?", (txn_id, REVERSAL, ARMED)).fetchone()
            if item is None:
                return False
            if message is not None:
                check_storable(codec.decode(bytes(message)))
                self.db.execute("UPDATE queue SET message = ? WHERE id = ?",
                                (bytes(message), item[0]))
            if status == APPROVED:  # out of the batch's totals with its reversal
                self._count(txn_id, -1)
            self.db.execute("UPDATE queue SET state = ?, next_attempt = ?, updated = ? "
                            "WHERE id = ?", (DUE, now, now, item[0]))
            self.db.execute("UPDATE txns SET status = ?, reason = ?, updated = ? WHERE id = ?",
                            (REVERSAL_PENDING, reason, now, txn_id))
        return True

    def note_late_reply(self, txn_id, code):
        with self._tx():
            self.db.execute("UPDATE txns SET late_code = ?, updated = ? WHERE id = ?",
                            (code, self.clock(), txn_id))

    def recover(self):
        """After a restart: every transaction still `pending` was in flight when the
        terminal stopped; its reversal becomes due. Returns the number recovered."""
        now = self.clock()
        with self._tx():
            ids = [r[0] for r in self.db.execute("SELECT id FROM txns WHERE status = ?",
                                                 (PENDING,))]
            for txn_id in ids:
                self.db.execute("UPDATE queue SET state = ?, next_attempt = ?, updated = ? "
                                "WHERE txn_id = ? AND kind = ? AND state = ?",
                                (DUE, now, now, txn_id, REVERSAL, ARMED))
                self.db.execute("UPDATE txns SET status = ?, reason = ?, updated = ? "
                                "WHERE id = ?", (REVERSAL_PENDING, "restart", now, txn_id))
        return len(ids)

    # ------------------------------------------------------------ store and forward

    def due(self, now=None):
        """Due queue items (oldest first); with `now`, only those whose time has come."""
        sql = "SELECT * FROM queue WHERE state = ?"
        args = [DUE]
        if now is not None:
            sql += " AND next_attempt <= ?"
            args.append(now)
        return [dict(r) for r in self._rows(sql + " ORDER BY id", args)]

    def next_due_time(self):
        return self._row("SELECT MIN(next_attempt) FROM queue WHERE state = ?", (DUE,))[0]

    def pending_count(self):
        return self._row("SELECT COUNT(*) FROM queue WHERE state = ?", (DUE,))[0]

    def attempt_failed(self, item_id, next_attempt, error):
        with self._tx():
            self.db.execute("UPDATE queue SET attempts = attempts + 1, next_attempt = ?, "
                            "last_error = ?, updated = ? WHERE id = ?",
                            (next_attempt, error, self.clock(), item_id))

    def complete(self, item_id, code):
        """The host answered a queued reversal (whatever its response code)."""
        now = self.clock()
        with self._tx():
            item = self.db.execute("SELECT txn_id, kind FROM queue WHERE id = ?",
                                   (item_id,)).fetchone()
            if item is None:
                raise JournalError("no queue item %s" % item_id)
            row = self.db.execute("SELECT status FROM txns WHERE id = ?", (item[0],)).fetchone()
            status = row[0] if row else None
            if status == APPROVED:
                self._count(item[0], -1)
            self.db.execute("UPDATE queue SET state = ?, attempts = attempts + 1, "
                            "response_code = ?, updated = ? WHERE id = ?",
                            (DONE, code, now, item_id))
            self.db.execute("UPDATE txns SET status = ?, updated = ? WHERE id = ?",
                            (REVERSED, now, item[0]))

    def queue_items(self, txn_id=None):
        if txn_id is None:
            rows = self._rows("SELECT * FROM queue ORDER BY id")
        else:
            rows = self._rows("SELECT * FROM queue WHERE txn_id = ? ORDER BY id", (txn_id,))
        return [dict(r) for r in rows]

    # ------------------------------------------------------------ settlement

    def _count(self, txn_id, sign):
        """Add (+1) or take out (-1) one transaction in its batch's running totals, inside
        the write transaction that moves it into or out of `approved`. Its type and total
        and its original's are fixed at begin(), so the delta is the one a recount sees."""
        row = self.db.execute(
            "SELECT t.batch, t.type, t.total, o.type AS original_type, o.total AS original_total "
            "FROM txns t LEFT JOIN txns o ON o.id = t.original_id WHERE t.id = ?",
            (txn_id,)).fetchone()
        delta = dict.fromkeys(TOTALS_FIELDS, 0)
        client.add_to_totals(delta, row["type"], row["total"], row["original_type"],
                             row["original_total"])
        changed = sorted(key for key, value in delta.items() if value)
        if not changed:  # a hold counts nowhere
            return
        self.db.execute("INSERT OR IGNORE INTO batch_totals (batch) VALUES (?)", (row["batch"],))
        self.db.execute("UPDATE batch_totals SET %s WHERE batch = ?"
                        % ", ".join("%s = %s + ?" % (key, key) for key in changed),
                        [sign * delta[key] for key in changed] + [row["batch"]])

    def _rebuild_totals(self):
        """Every batch's running totals recounted from its entries (migration, repair)."""
        self.db.execute("DELETE FROM batch_totals")
        for (batch,) in self.db.execute("SELECT DISTINCT batch FROM txns").fetchall():
            totals = _batch_totals(self.db, batch)
            keys = sorted(totals)
            self.db.execute("INSERT INTO batch_totals (batch, %s) VALUES (?%s)"
                            % (", ".join(keys), ", ?" * len(keys)),
                            [batch] + [totals[key] for key in keys])

    def rebuild_totals(self):
        """Recount every batch's running totals (after rows were written behind the
        journal's back: benchmarks, repairs)."""
        with self._tx():
            self._rebuild_totals()

    def batch_totals(self, batch):
        """Reconciliation totals (messages.TOTALS_FIELDS keys) of one batch: its running
        totals row, one read whatever the batch's size.

        Counted: transactions the terminal holds as approved (reversed ones are left out
        on both sides). Each type counts by its row's totals class (kapos.txn_types).
        A void counts as a reversal of what it voids, for the voided total. Balance
        inquiries count in `inquiries_count`, transfers also in `transfer_count`."""
        row = self._row("SELECT * FROM batch_totals WHERE batch = ?", (batch,))
        totals = dict.fromkeys(TOTALS_FIELDS, 0)
        if row is not None:
            totals.update((key, row[key]) for key in TOTALS_FIELDS)
        return totals

    def recount_totals(self, batch):
        """batch_totals() by a full scan of the batch's entries (what the running totals
        must always equal; tests and `kapos` diagnostics)."""
        with self._read_lock:
            return _batch_totals(self.reader, batch)

    async def batch_totals_off_loop(self, batch):
        """batch_totals() from a coroutine: one row now, read in place."""
        return self.batch_totals(batch)

    def close_batch(self):
        """Start settling: the open batch becomes `settling` and a new one opens
        (transactions from now on belong to it). A batch already settling (its
        reconciliation never answered) is returned instead. Returns its number."""
        with self._tx():
            row = self.db.execute("SELECT number FROM batches WHERE state = 'settling' "
                                  "ORDER BY number LIMIT 1").fetchone()
            if row is not None:
                return row[0]
            number = int(self._meta("batch"))
            self.db.execute("INSERT OR REPLACE INTO batches (number, state, opened) "
                            "VALUES (?, 'settling', ?)", (number, self.clock()))
            self._set_meta("batch", number + 1)
        return number

    def settling_batch(self):
        row = self._row("SELECT number FROM batches WHERE state = 'settling' "
                        "ORDER BY number LIMIT 1")
        return row[0] if row else None

    def finish_batch(self, number, code, agreed, totals, host_totals=None):
        with self._tx():
            self.db.execute(
                "UPDATE batches SET state = ?, response_code = ?, totals = ?, host_totals = ?, "
                "closed = ? WHERE number = ?",
                ("agreed" if agreed else "not agreed", code, json.dumps(totals, sort_keys=True),
                 json.dumps(host_totals, sort_keys=True) if host_totals else None,
                 self.clock(), number))

    def batches(self):
        return [dict(r) for r in self._rows("SELECT * FROM batches ORDER BY number")]

    def prune(self, keep_batches=30):
        """Forget finished transactions of reconciled batches older than the last
        `keep_batches`, with their finished queue items. Nothing still to deliver is ever
        deleted. Returns the number of transactions removed."""
        cutoff = self.current_batch() - keep_batches
        with self._tx():
            ids = [r[0] for r in self.db.execute(
                "SELECT t.id FROM txns t JOIN batches b ON b.number = t.batch "
                "WHERE t.batch < ? AND b.state != 'settling' AND t.status IN (?, ?, ?, ?) "
                "AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.txn_id = t.id AND q.state = ?)",
                (cutoff, APPROVED, DECLINED, UNSENT, REVERSED, DUE))]
            for txn_id in ids:
                self.db.execute("DELETE FROM queue WHERE txn_id = ?", (txn_id,))
                self.db.execute("DELETE FROM txns WHERE id = ?", (txn_id,))
        return len(ids)


class _Transaction:
    """`with journal._tx():` - the write lock, BEGIN IMMEDIATE ... COMMIT (ROLLBACK on
    error), then the modelled fsync delay of a slow card, if any."""

    def __init__(self, journal):
        self.journal = journal
        self.db = journal.db

    def __enter__(self):
        self.journal._lock.acquire()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.journal._lock.release()
            raise
        return self.db

    def __exit__(self, kind, value, tb):
        try:
            if kind is None:
                self.db.execute("COMMIT")
                if self.journal.fsync_delay:
                    time.sleep(self.journal.fsync_delay)  # the card's fsync, lock held
            else:
                self.db.execute("ROLLBACK")
        finally:
            self.journal._lock.release()
        return False


class _OffLoop:
    """`await journal.aio.<write>(...)`: one of the journal's WRITES run on its writer
    thread, in submission order, awaited until committed (on disk). Once submitted a
    write completes even if the awaiting task is cancelled (shielded): a cancelled
    caller never leaves half a decision behind, and what the next write finds is
    what the previous one committed."""

    def __init__(self, journal):
        self._journal = journal

    def __getattr__(self, name):
        if name not in WRITES:
            raise AttributeError("journal.aio has no write %r (writes: %s)"
                                 % (name, ", ".join(sorted(WRITES))))
        journal = self._journal

        async def write(*args, **kwargs):
            future = asyncio.wrap_future(journal._on_writer(getattr(journal, name), *args, **kwargs))
            return await asyncio.shield(future)

        write.__name__ = name
        return write
