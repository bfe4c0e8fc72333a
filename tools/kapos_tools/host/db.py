"""The ledger's storage: one small adapter over SQLite (the embedded default) and
PostgreSQL (psycopg 3), so the ledger's SQL is written once.

    db = connect("host.db")                          # or ":memory:"
    db = connect("postgresql://kapos@db1/kapos")     # any libpq URL
    with db.transaction():                           # nestable: see "Inner blocks"
        db.execute("UPDATE accounts SET balance = balance + ? WHERE number = ?", (5, "1"))
        new_id = db.insert("INSERT INTO alerts (...) VALUES (?, ...)", (...))

The SQL the host writes is the common part of both dialects (and of PostgreSQL-
compatible distributed databases): `?` placeholders (turned into `%s` for psycopg),
`INSERT ... ON CONFLICT ... DO NOTHING / DO UPDATE`, `IS NOT DISTINCT FROM`, no
`INSERT OR ...`, no two-argument max(). Rows are read by name or position.

Isolation: SQLite writers are serialized by BEGIN IMMEDIATE. PostgreSQL transactions run
SERIALIZABLE, so two host processes on one database see the same outcome as one after
the other; a transaction that would not is refused by the server (a serialization
failure, or a unique constraint for the same message twice) and `is_retryable(exc)`
says to run it again from the start: the second run sees the first one's result.

Inner blocks (one message inside a group commit) are optimistic: no savepoint is taken,
as one costs more than the message's own writes (SQLite copies every page the message
touches into a sub-journal; PostgreSQL: two round trips). An inner block that raises
dooms the transaction instead: it can never commit, it rolls back, and
RunAgainWithSavepoints (retryable) tells the caller to run it again; that run puts every
inner block in a savepoint, so only the failing message is undone. Messages fail
half-way only through a bug or a database error, so the second run is rare.
"""

import random
import re
import sqlite3

from kapos.errors import KaposError


class DatabaseError(KaposError):
    """The ledger's database cannot be opened or used (the URL, the server, the driver)."""


class RunAgainWithSavepoints(DatabaseError):
    """A block inside a transaction without savepoints raised after it may have written:
    the transaction was rolled back; run it again (its inner blocks then get savepoints)."""


def is_postgresql_url(url):
    return isinstance(url, str) and url.split(":", 1)[0] in ("postgresql", "postgres")


def connect(url, synchronous="FULL"):
    if is_postgresql_url(url):
        return PostgresDatabase(url)
    return SqliteDatabase(url, synchronous)


def redact(url):
    """A URL for logs and messages: never its password."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url) if isinstance(url, str) else url


ADVISORY_KEY = 0x6B61706F  # "kapo": the host processes' transaction lock (PostgreSQL)


class _Transactions:
    """Nestable transactions: the outermost is BEGIN / COMMIT, inner ones savepoints (so a
    message that fails inside a group commit undoes only itself)."""

    depth = 0
    lot = 0
    # set by a caller whose transaction kept being refused as a conflict: the next one
    # runs with no other host process's transaction beside it (PostgreSQL; see there)
    alone_next = False
    # the next outermost transaction puts each inner block in a savepoint (set after an
    # inner block failed in one without); `_savepoints`: the open one does
    savepoints_next = False
    _savepoints = False
    _doomed = False  # an inner block failed without a savepoint: this one must not commit
    # outermost transactions begun, and transactions or savepoints that did not commit (for
    # caches of what the connection read: registry.py)
    transactions = 0
    rollbacks = 0
    _deferred = None  # key -> [state, flush]: writes kept until COMMIT (defer())

    def transaction(self):
        return _Block(self)

    @property
    def deferring(self):
        """Writes may wait for the COMMIT: inside a transaction whose failure rolls back
        all of it (no savepoint would have to undo them alone)."""
        return self.depth > 0 and not self._savepoints

    def defer(self, key, make, flush):
        """The open transaction's deferred state `key` (make() at first use); flush(db,
        state) writes it before COMMIT, or earlier through flush_deferred()."""
        deferred = self._deferred
        if deferred is None:
            deferred = self._deferred = {}
        entry = deferred.get(key)
        if entry is None:
            entry = deferred[key] = (make(), flush)
        return entry[0]

    def deferred(self, key):
        """The open transaction's deferred state `key`, or None (nothing deferred yet)."""
        entry = self._deferred.get(key) if self._deferred else None
        return entry[0] if entry is not None else None

    def flush_deferred(self):
        """Write the deferred writes now: before anything reads the tables they go to."""
        deferred, self._deferred = self._deferred, None
        if deferred:
            for state, flush in deferred.values():
                flush(self, state)

    def execute_rows(self, head, width, values, tail="", rows_per_statement=128):
        """`head` VALUES (?, ...), ... `tail` over the rows of `values` (flat, `width`
        values a row): a few statements of many rows each, not one per row. Each
        statement has a power-of-two number of rows (100 rows: 64 + 32 + 4), so a
        kind of statement has at most 8 shapes and they stay in the connection's
        statement cache: one text per row count would be compiled again and again
        (the cache holds 128) as group sizes vary under load."""
        rows = len(values) // width
        most = 1 << (max(1, rows_per_statement).bit_length() - 1)
        start = 0
        while rows:
            count = min(most, 1 << (rows.bit_length() - 1))
            key = (head, width, count, tail)
            sql = _ROWS_SQL.get(key)
            if sql is None:
                row = "(" + ", ".join(["?"] * width) + ")"
                sql = _ROWS_SQL[key] = "%s VALUES %s%s" % (head, ", ".join([row] * count), tail)
            stop = start + count * width
            self.execute(sql, values[start:stop] if start or stop < len(values) else values)
            start, rows = stop, rows - count

    def _before_commit(self):
        """Write what the transaction kept in memory before its COMMIT."""
        self.flush_deferred()

    def _begin_outer(self):
        raise NotImplementedError

    def _end_outer(self):
        pass

    def _savepoint(self, verb):
        self.raw_execute("%s SAVEPOINT s%d" % (verb, self.depth))


_SET_COUNTER = "UPDATE meta SET value = ? WHERE key = ?"
_ROWS_SQL = {}  # (head, width, rows, tail) -> an execute_rows() statement


class _Block:
    __slots__ = ("db", "savepoint")

    def __init__(self, db):
        self.db = db
        self.savepoint = False

    def __enter__(self):
        db = self.db
        if db.depth == 0:
            db.transactions += 1
            db.lot = random.getrandbits(30)  # book.py: which shard rows this transaction posts to
            db._savepoints, db.savepoints_next = db.savepoints_next, False
            db._doomed = False
            db._deferred = None
            db._begin_outer()
        elif db._savepoints:
            db._savepoint("")
            self.savepoint = True
        db.depth += 1
        return db

    def __exit__(self, kind, value, tb):
        db = self.db
        db.depth -= 1
        if db.depth == 0:
            return self._end(db, kind)
        if self.savepoint:
            if kind is None:
                db._savepoint("RELEASE")
            elif not (db.is_retryable(value) and db.engine == "postgresql"):
                # a doomed PostgreSQL transaction cannot roll back to a savepoint: the
                # outermost block rolls it all back and the caller runs it again
                db.rollbacks += 1
                db._savepoint("ROLLBACK TO")
        elif kind is not None and not db.is_retryable(value):
            # nothing but the whole transaction can undo what this block wrote
            db._doomed = True
            raise RunAgainWithSavepoints("a message failed inside a group transaction (%s): "
                                         "it is run again, each message in a savepoint"
                                         % kind.__name__) from value
        return False

    @staticmethod
    def _end(db, kind):
        doomed = db._doomed
        committed = False
        try:
            if kind is None and not doomed:
                try:
                    db._before_commit()
                except BaseException:
                    db.raw_execute("ROLLBACK")
                    raise
                db.raw_execute("COMMIT")
                committed = True
            else:
                db.raw_execute("ROLLBACK")
        finally:
            if not committed:
                db.rollbacks += 1
            db._deferred = None
            db._end_outer()
        if doomed:
            db.savepoints_next = True
            if kind is None:  # the failure was caught inside: still nothing of it commits
                raise RunAgainWithSavepoints("a block inside the transaction failed without "
                                             "a savepoint: rolled back, to be run again")
        return False


_GET_COUNTER = "SELECT value FROM meta WHERE key = ?"
_COUNTERS = "meta counters"  # next_value()'s deferred state (SQLite)


def _write_counters(db, counters):
    for name, value in counters.items():
        db.execute(_SET_COUNTER, (str(value), name))


class SqliteDatabase(_Transactions):
    engine = "sqlite"

    def __init__(self, path, synchronous="FULL"):
        try:
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise DatabaseError("cannot open the ledger %s: %s" % (path, exc))
        self.conn.row_factory = sqlite3.Row
        self.path = path
        if path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=%s" % synchronous)
        # a group's multi-row INSERT keeps a statement journal (to undo that statement
        # alone); over 64 KiB SQLite spills it to a temp file it creates, writes and
        # unlinks per group: kept in memory instead (its size is one group's pages)
        self.conn.execute("PRAGMA temp_store=MEMORY")
        self.execute = self.conn.execute  # the hot path: no wrapper at all
        self.raw_execute = self.conn.execute
        self.Error = sqlite3.Error

    @property
    def in_transaction(self):
        return self.conn.in_transaction

    def _begin_outer(self):
        self.conn.execute("BEGIN IMMEDIATE")

    def _savepoint(self, verb):
        self.conn.execute("%s SAVEPOINT s%d" % (verb, self.depth) if verb else "SAVEPOINT s%d" % self.depth)

    def insert(self, sql, params=()):
        return self.conn.execute(sql, params).lastrowid

    def is_retryable(self, exc):
        # one writer at a time: no conflicts; only a doomed group transaction runs again
        return isinstance(exc, RunAgainWithSavepoints)

    def tables(self):
        return {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def columns(self, table):
        return {r[1] for r in self.conn.execute("PRAGMA table_info(%s)" % table)}

    def ddl(self, statement):
        return statement

    def next_value(self, name):
        """The next value of a named counter (meta row `name`). Inside a transaction the
        row is read once and written with the deferred writes (before COMMIT; BEGIN
        IMMEDIATE: no other writer meanwhile), not updated per message."""
        if not self.depth:
            row = self.conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 "
                                    "WHERE key = ? RETURNING value", (name,)).fetchone()
            return int(row[0])
        counters = self.defer(_COUNTERS, dict, _write_counters)  # {name: value}
        value = counters.get(name)
        if value is None:
            value = int(self.conn.execute(_GET_COUNTER, (name,)).fetchone()[0])
        counters[name] = value = value + 1
        return value

    def create_counter(self, name, start):
        self.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                          (name, str(start)))

    def backup(self, target_path):
        """An online copy (SQLite's backup API) that stays consistent under writes."""
        target = sqlite3.connect(target_path)
        try:
            self.conn.backup(target)
        finally:
            target.close()

    def close(self):
        try:
            self.conn.close()
        except sqlite3.Error:
            pass

    def __getattr__(self, name):  # set_trace_callback and friends (tests, sqlite only)
        return getattr(self.__dict__["conn"], name)


class Row:
    """A result row read by position, by column name, or as a dict."""

    __slots__ = ("_names", "_values")

    def __init__(self, names, values):
        self._names, self._values = names, values

    def __getitem__(self, key):
        if type(key) is str:
            return self._values[self._names[key]]
        return self._values[key]

    def keys(self):
        return list(self._names)

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __repr__(self):
        return "Row(%r)" % dict(zip(self._names, self._values))


def _row_factory(cursor):
    import decimal

    names = {c.name: i for i, c in enumerate(cursor.description or ())}

    def make(values):
        # SUM() of BIGINT is NUMERIC: money here is integer minor units
        values = tuple(int(v) if type(v) is decimal.Decimal else v for v in values)
        return Row(names, values)

    return make


_PLACEHOLDER = re.compile(r"\?")
_DDL = [(re.compile(p, re.I), r) for p, r in (
    (r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b", "BIGSERIAL PRIMARY KEY"),
    (r"\bINTEGER PRIMARY KEY\b", "BIGSERIAL PRIMARY KEY"),
    (r"\bINTEGER\b", "BIGINT"),
    (r"\bREAL\b", "DOUBLE PRECISION"),
    (r"\bBLOB\b", "BYTEA"),
)]


class PostgresDatabase(_Transactions):
    engine = "postgresql"
    _alone = False  # this connection holds the advisory lock exclusively (till its COMMIT)

    def __init__(self, url):
        try:
            import psycopg
        except ImportError:
            raise DatabaseError("a postgresql:// ledger needs psycopg: pip install 'kapos[postgresql]'")
        self._psycopg = psycopg
        self.path = redact(url)
        try:
            self.conn = psycopg.connect(url, autocommit=True, row_factory=_row_factory)
        except psycopg.Error as exc:
            raise DatabaseError("cannot connect to the ledger database %s: %s"
                                % (redact(url), str(exc).strip().splitlines()[0] if str(exc) else exc))
        self.Error = psycopg.Error
        self._sql = {}  # the host's statements, translated once
        # SERIALIZABLE tracks what each transaction read: a sequential scan of a small
        # table reads all of it, so every pair of concurrent messages would conflict;
        # through the indexes only the rows a message looked up count
        self.conn.execute("SET enable_seqscan = off")
        # ... which prices every plan with a sequential scan so high that the server JIT-
        # compiles it (hundreds of ms for a query that runs in microseconds): never here
        self.conn.execute("SET jit = off")

    def _translate(self, sql):
        out = self._sql.get(sql)
        if out is None:
            out = self._sql[sql] = _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))
        return out

    def execute(self, sql, params=()):
        return self.conn.execute(self._translate(sql), params, prepare=True)

    def raw_execute(self, sql):
        return self.conn.execute(sql)

    @property
    def in_transaction(self):
        return self.conn.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE

    def _begin_outer(self):
        # Every transaction holds a shared advisory lock; one that kept conflicting takes
        # the lock exclusively *before* BEGIN, so it starts after every other host
        # process's transaction has ended and none starts beside it: SERIALIZABLE cannot
        # refuse it again (no concurrent transaction), so no message starves under load.
        alone, self.alone_next = self.alone_next, False
        if alone:
            self.conn.execute("SELECT pg_advisory_lock(%d)" % ADVISORY_KEY)
            self._alone = True
            self.conn.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
        else:
            self.conn.execute("BEGIN ISOLATION LEVEL SERIALIZABLE; "
                              "SELECT pg_advisory_xact_lock_shared(%d)" % ADVISORY_KEY)

    def _end_outer(self):
        if self._alone:
            self._alone = False
            self.conn.execute("SELECT pg_advisory_unlock(%d)" % ADVISORY_KEY)

    def _savepoint(self, verb):
        self.conn.execute("%s SAVEPOINT s%d" % (verb, self.depth) if verb else "SAVEPOINT s%d" % self.depth)

    def insert(self, sql, params=()):
        return self.execute(sql + " RETURNING id", params).fetchone()[0]

    def is_retryable(self, exc):
        errors = self._psycopg.errors
        return isinstance(exc, (errors.SerializationFailure, errors.DeadlockDetected,
                                errors.UniqueViolation, RunAgainWithSavepoints))

    def tables(self):
        return {r[0] for r in self.conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}

    def columns(self, table):
        return {r[0] for r in self.conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = %s", (table,))}

    def ddl(self, statement):
        for pattern, replacement in _DDL:
            statement = pattern.sub(replacement, statement)
        return statement

    def next_value(self, name):
        """A sequence: no row that every message of every host process would update."""
        return int(self.conn.execute("SELECT nextval('%s')" % _ident(name)).fetchone()[0])

    def create_counter(self, name, start):
        self.conn.execute("CREATE SEQUENCE IF NOT EXISTS %s START WITH %d" % (_ident(name), start + 1))

    def close(self):
        try:
            self.conn.close()
        except self._psycopg.Error:
            pass


def _ident(name):
    if not name.replace("_", "").isalnum():
        raise ValueError("identifier %r" % name)
    return name
