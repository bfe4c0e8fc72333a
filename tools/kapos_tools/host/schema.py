"""The ledger's schema (SQLite or PostgreSQL, through db.py), its version, and the
migration of older ledgers.

    prepare(db)   creates a new ledger, migrates a version 1 one (kapos hosts before the
                  double-entry book) in place, or raises LedgerSchemaError with what to do

The version is the meta row 'schema'; every migration is a function from one version to
the next, run inside the transaction that opens the ledger (on PostgreSQL that
transaction is SERIALIZABLE, so two host processes starting together migrate once).
The column types are SQLite's; db.py spells them for PostgreSQL (BIGINT, BYTEA, ...).

Version 1 had no `entries` / `books` and no lifecycle columns: its transactions in force
get entries from the effects they recorded, balanced against a "merchant:migrated" book,
so a consistent version 1 ledger is a consistent version 2 ledger.

Version 3 keeps each internal book (merchant, cash, fees) as shard rows of `book_shards`
(book.py: concurrent transactions of one merchant no longer update one row); `books` is
a view summing them, so what read `books` before reads the same. A version 2 `books`
table becomes shard 0 of each book.

Version 4 keeps fewer indexes on the two tables every message writes (each index is a
page every message dirties and every COMMIT writes): the holds in force are a partial
index (`txns_held`: only rows whose lifecycle is 'held'; queries name the literal) in
place of (account, lifecycle) over every transaction, and `entries_account` is gone
(only the consistency report read entries by account).

Version 5 keeps `txns_card_time` (card, time: what the velocity rule counts) only on a
ledger whose host runs the velocity rule: prepare(velocity=True) creates it when missing;
a host without the rule leaves an existing one alone (another host process on the same
database may run the rule), but the upgrade from version 4 drops it when the host that
upgrades does not run the rule. Without it every message writes one index fewer.
"""

import json
import sqlite3

from kapos.errors import KaposError

VERSION = 5
# indexes of older versions that version 4 dropped (see above)
_DROPPED_INDEXES = ("txns_account_lifecycle", "entries_account")
# the velocity rule's index (version 5: only where a host runs the rule)
VELOCITY_INDEX_NAME = "txns_card_time"
VELOCITY_INDEX = "CREATE INDEX IF NOT EXISTS txns_card_time ON txns (card_key, created)"
MIGRATED_BOOK = "merchant:migrated"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    number TEXT PRIMARY KEY, name TEXT, balance INTEGER NOT NULL,
    initial INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS book_shards (
    account TEXT NOT NULL, shard INTEGER NOT NULL, balance INTEGER NOT NULL,
    PRIMARY KEY (account, shard));
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, txn_id INTEGER, reversal_id INTEGER,
    account TEXT NOT NULL, amount INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS entries_txn ON entries (txn_id);
CREATE TABLE IF NOT EXISTS cards (
    key TEXT PRIMARY KEY, card_id TEXT, account TEXT NOT NULL, kind TEXT NOT NULL,
    expiry TEXT, pvv BLOB, decline TEXT, daily_limit INTEGER);
CREATE TABLE IF NOT EXISTS daily (
    card_key TEXT NOT NULL, day TEXT NOT NULL, total INTEGER NOT NULL,
    PRIMARY KEY (card_key, day));
CREATE TABLE IF NOT EXISTS txns (
    id INTEGER PRIMARY KEY AUTOINCREMENT, terminal_id TEXT NOT NULL, stan TEXT NOT NULL,
    transmission TEXT NOT NULL, mti TEXT NOT NULL, type TEXT, amount INTEGER, fee INTEGER,
    total INTEGER, card_key TEXT, account TEXT, target TEXT, code TEXT, auth_code TEXT,
    rrn TEXT, batch INTEGER, status TEXT NOT NULL, effects TEXT, original_id INTEGER,
    voided_by INTEGER, response BLOB, fingerprint TEXT, created REAL NOT NULL,
    lifecycle TEXT, refunded INTEGER NOT NULL DEFAULT 0, merchant TEXT,
    UNIQUE (terminal_id, stan, transmission));
CREATE INDEX IF NOT EXISTS txns_rrn ON txns (rrn);
CREATE INDEX IF NOT EXISTS txns_batch ON txns (terminal_id, batch, status);
CREATE INDEX IF NOT EXISTS txns_held ON txns (account) WHERE lifecycle = 'held';
CREATE TABLE IF NOT EXISTS alerts (id INTEGER PRIMARY KEY, terminal_id TEXT NOT NULL,
    rule TEXT NOT NULL, detail TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS pin_tries (key TEXT PRIMARY KEY, failures INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS token_counters (key TEXT PRIMARY KEY, counter INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reversals (
    id INTEGER PRIMARY KEY AUTOINCREMENT, terminal_id TEXT NOT NULL, orig_mti TEXT,
    orig_stan TEXT NOT NULL, orig_transmission TEXT NOT NULL, mti TEXT, stan TEXT,
    reason TEXT, code TEXT NOT NULL, txn_id INTEGER, applied INTEGER NOT NULL,
    received INTEGER NOT NULL DEFAULT 1, created REAL NOT NULL,
    UNIQUE (terminal_id, orig_stan, orig_transmission));
CREATE TABLE IF NOT EXISTS batches (
    terminal_id TEXT NOT NULL, number INTEGER NOT NULL, code TEXT NOT NULL,
    terminal_totals TEXT, host_totals TEXT, response BLOB, created REAL NOT NULL,
    PRIMARY KEY (terminal_id, number));
CREATE TABLE IF NOT EXISTS terminals (
    terminal_id TEXT PRIMARY KEY, signed_on REAL, last_seen REAL,
    messages INTEGER NOT NULL DEFAULT 0);
"""


class LedgerSchemaError(KaposError):
    """The file is not a kapos host ledger, or one this version cannot use."""


def _index_names(db):
    if getattr(db, "engine", "sqlite") == "postgresql":
        sql = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'index'"
    return {row[0] for row in db.execute(sql)}


def prepare(db, where="the ledger", velocity=False):
    """Create or migrate the schema; call inside one SQL transaction. `velocity`: the
    host runs the velocity rule (it needs txns_card_time)."""
    try:
        tables = db.tables()
        if tables and "meta" not in tables:
            raise LedgerSchemaError("%s is not a kapos host ledger (it has other tables)" % where)
        old_txns = "txns" in tables and "lifecycle" not in db.columns("txns")
        statements = [s for s in SCHEMA.split(";") if s.strip()]
        indexes = [s for s in statements if s.strip().upper().startswith("CREATE INDEX")]
        for statement in statements:
            if statement not in indexes:
                db.execute(db.ddl(statement))
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        version = int(row[0]) if row is not None else (1 if old_txns else VERSION)
        if version > VERSION:
            raise LedgerSchemaError("%s was written by a newer kapos host (schema %d, this one "
                                    "knows %d): use that version, or another --db" % (where, version, VERSION))
        if version == 1:
            _migrate_from_1(db)
        _books_as_shards(db)
        existing = _index_names(db)
        if version < 4:
            for name in _DROPPED_INDEXES:
                if name in existing:
                    db.execute("DROP INDEX %s" % name)
        if version < 5 and not velocity and VELOCITY_INDEX_NAME in existing:
            db.execute("DROP INDEX %s" % VELOCITY_INDEX_NAME)
        if velocity:
            indexes.append(VELOCITY_INDEX)
        for statement in indexes:  # after the migrations: an index may name a new column
            # an existing index is left alone: on PostgreSQL even CREATE INDEX IF NOT EXISTS
            # takes a SHARE lock on the table, which deadlocks with a host writing to it
            if statement.split()[5] not in existing:
                db.execute(db.ddl(statement))
        db.execute("INSERT INTO meta VALUES ('schema', ?) ON CONFLICT (key) DO UPDATE SET "
                   "value = excluded.value", (str(VERSION),))
    except db.Error as exc:
        raise LedgerSchemaError("%s cannot be opened as a kapos host ledger (%s): move it away "
                                "or use another --db" % (where, exc))


BOOKS_VIEW = ("CREATE VIEW books AS SELECT account, SUM(balance) AS balance FROM book_shards "
              "GROUP BY account")


def _relation_kind(db, name):
    """'table', 'view' or None."""
    if getattr(db, "engine", "sqlite") == "postgresql":
        row = db.execute("SELECT table_type FROM information_schema.tables WHERE table_schema = "
                         "current_schema() AND table_name = ?", (name,)).fetchone()
        return None if row is None else ("view" if row[0] == "VIEW" else "table")
    row = db.execute("SELECT type FROM sqlite_master WHERE name = ?", (name,)).fetchone()
    return None if row is None else row[0]


def _books_as_shards(db):
    """Version 2's one-row books become shard 0 of `book_shards`; `books` the view."""
    kind = _relation_kind(db, "books")
    if kind == "table":
        db.execute("INSERT INTO book_shards (account, shard, balance) SELECT account, 0, balance "
                   "FROM books WHERE true ON CONFLICT (account, shard) DO UPDATE SET balance = "
                   "book_shards.balance + excluded.balance")
        db.execute("DROP TABLE books")
        kind = None
    if kind is None:
        db.execute(BOOKS_VIEW)


def _migrate_from_1(db):
    have = db.columns("txns")
    for name, kind in (("lifecycle", "TEXT"), ("refunded", "INTEGER NOT NULL DEFAULT 0"),
                       ("merchant", "TEXT")):
        if name not in have:
            db.execute(db.ddl("ALTER TABLE txns ADD COLUMN %s %s" % (name, kind)))
    for t in db.execute("SELECT id, status, voided_by, effects FROM txns").fetchall():
        if t["status"] == "approved":
            lifecycle = "voided" if t["voided_by"] is not None else "approved"
            try:
                moves = json.loads(t["effects"] or "{}").get("accounts", [])
            except ValueError:
                raise LedgerSchemaError("the ledger's transaction %d has unreadable effects: "
                                        "it cannot be migrated" % t["id"])
            balance = 0
            for account, delta in moves:
                db.execute("INSERT INTO entries (txn_id, account, amount) VALUES (?, ?, ?)",
                           (t["id"], account, delta))
                balance += delta
            if balance:
                db.execute("INSERT INTO entries (txn_id, account, amount) VALUES (?, ?, ?)",
                           (t["id"], MIGRATED_BOOK, -balance))
                db.execute("INSERT INTO book_shards (account, shard, balance) VALUES (?, 0, ?) "
                           "ON CONFLICT (account, shard) DO UPDATE SET balance = "
                           "book_shards.balance + excluded.balance", (MIGRATED_BOOK, -balance))
        else:
            lifecycle = "reversed" if t["status"] == "reversed" else "declined"
        db.execute("UPDATE txns SET lifecycle = ? WHERE id = ?", (lifecycle, t["id"]))


def check_file(path):
    """Refuse, with a clear error, a file that SQLite cannot read as a database (before
    the ledger sets WAL mode on it)."""
    if path == ":memory:" or "://" in path:
        return
    import os

    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return
    try:
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
        try:
            db.execute("SELECT name FROM sqlite_master").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise LedgerSchemaError("ledger %s cannot be opened as a kapos host ledger (%s): move "
                                "it away or use another --db" % (path, exc))
