"""The reference host's terminal registry: which devices may talk to it, and with which keys.

    registry = TerminalRegistry(ledger.db, auto_enroll=False)
    registry.enroll("KAPOS001", "KAPOS-MERCHANT1", ik_id)      # kapos host enroll ...
    verdict = registry.check(message, data)   # after the MAC of `data` was found good
    ... verdict.reply (an exact repeat: the stored reply), verdict.refusal (a reason: 63)
    registry.answered(verdict, reply_bytes)

One row per terminal id: merchant id, the DUKPT Initial Key ID (IK ID: the left 8 bytes of
every KSN the device sends, kapos.security.dukpt) it was loaded with, status (active or
disabled), the highest KSN counter seen. A MACed message is accepted only when

- its terminal id (field 41) is enrolled and active (or, with auto_enroll, new: the first
  good message enrols it with its KSN's IK ID and merchant id);
- its KSN's IK ID is the one enrolled for that terminal id (another device's keys cannot
  speak for it) and its merchant id (42), when present, the enrolled one;
- its KSN counter was never used by that device and is above (highest - KSN_WINDOW).

Why a window and not "strictly above the last": a kapos terminal takes the KSN of a PIN
transaction when the PIN is entered and sends the 0200 later; a reversal repeat, alert or
echo sent meanwhile takes - and may deliver - a later KSN. Every counter is still used at
most once, and keys older than the window are refused.

A repeat of the very same bytes (a serial retransmission, a lost reply) is not a reuse:
it gets the reply stored for it, and the ledger is not asked again. Only messages whose
MAC is good reach check(), so nobody without the device's keys can enrol a terminal id,
burn its counters or read a stored reply of someone else's message.
"""

import binascii
import contextlib
import hashlib
import re
import time

from kapos.simdata.keys import ik_id_for
from kapos.errors import KaposError, SecurityError
from kapos.security import dukpt

KSN_WINDOW = 32  # counters below (highest - window) are stale
ACTIVE, DISABLED = "active", "disabled"
TERMINAL_ID = re.compile(r"^[0-9A-Za-z-]{1,8}$")  # field 41: ans 8
MERCHANT_ID = re.compile(r"^[0-9A-Za-z -]{1,15}$")  # field 42: ans 15

_SCHEMA = """
CREATE TABLE IF NOT EXISTS terminal_registry (
    terminal_id TEXT PRIMARY KEY, merchant_id TEXT, ik_id TEXT, status TEXT NOT NULL,
    last_counter INTEGER NOT NULL DEFAULT 0, enrolled REAL NOT NULL, source TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ksn_used (
    terminal_id TEXT NOT NULL, counter INTEGER NOT NULL, digest TEXT NOT NULL, reply BLOB,
    at REAL NOT NULL, PRIMARY KEY (terminal_id, counter));
CREATE TABLE IF NOT EXISTS terminal_status (
    terminal_id TEXT PRIMARY KEY, version TEXT, selftest TEXT, reported REAL NOT NULL);
"""


class EnrolmentError(KaposError):
    """An enrolment request is malformed or conflicts with the registry; nothing changed."""


def parse_ik_id(text, terminal_id=None, bdk_id=None):
    """IK ID bytes from `--ik-id HEX16`, or from `--bdk-id HEX8` + the terminal id (as
    `kapos keys load` makes it: BDK ID + a device id from the terminal id)."""
    if (text is None) == (bdk_id is None):
        raise EnrolmentError("give --ik-id (16 hex digits: the left half of the terminal's "
                             "KSN) or --bdk-id (8 hex digits; the public test keys: 12345678)")
    source, length = (text, dukpt.IK_ID_LEN) if text is not None else (bdk_id, 4)
    name = "--ik-id" if text is not None else "--bdk-id"
    try:
        value = binascii.unhexlify(source.strip())
    except (binascii.Error, ValueError):
        raise EnrolmentError("%s must be hex" % name)
    if len(value) != length:
        raise EnrolmentError("%s must be %d hex digits" % (name, 2 * length))
    return value if text is not None else ik_id_for(terminal_id, value)


class Verdict:
    """What check() decided: accept (refusal None, reply None), refuse, or repeat."""

    def __init__(self, terminal_id=None, counter=None, digest=None, refusal=None, reply=None):
        self.terminal_id, self.counter, self.digest = terminal_id, counter, digest
        self.refusal, self.reply = refusal, reply
        self.fresh = False  # accepted, its counter not yet burned (registry._burn)


_PRUNE_EVERY = 16  # counters between deletions of a terminal's old ksn_used rows
# The highest counter seen is the highest in ksn_used (its rows are burned in the
# message's own transaction), or `last_counter` where that is higher: the column is
# written only when old rows are pruned (every _PRUNE_EVERY counters), not per message.
_HIGHEST = "(SELECT MAX(u.counter) FROM ksn_used u WHERE u.terminal_id = r.terminal_id)"
# the terminal's enrolment, the KSN counter's used row and the highest counter, in one
# statement
_CHECK_SQL = ("SELECT r.merchant_id, r.ik_id, r.status, r.last_counter, k.digest, k.reply, "
              + _HIGHEST + " FROM terminal_registry r LEFT JOIN ksn_used k ON k.terminal_id = "
              "r.terminal_id AND k.counter = ? WHERE r.terminal_id = ?")
_BURN = "INSERT INTO ksn_used (terminal_id, counter, digest, reply, at)"  # 5 values a row
_BURN_ROWS = 64  # rows per INSERT of deferred burns (db.execute_rows: a power of two)

# Inside a group transaction without savepoints (db.py: `deferring`) the counters it burns
# are kept as {terminal id: {counter: [digest, reply, at]}} and inserted in one statement
# before COMMIT; check() reads them beside the table's rows. The primary key of ksn_used
# still decides: another host process's row of the same counter makes the COMMIT fail
# (a unique violation: retryable), and the group runs again and sees that row.
_BURNS = "ksn_used"


def _flush_burns(db, pending):
    rows = []
    for terminal_id in sorted(pending):  # one order of the key's index entries for all
        burns = pending[terminal_id]
        for counter in sorted(burns):
            digest, reply, at = burns[counter]
            # a blob as bytearray: sqlite3 binds bytes through its adapter look-up
            rows.extend((terminal_id, counter, digest,
                         bytearray(reply) if type(reply) is bytes else reply, at))
        if burns:  # (check() may have pruned them all: a counter far ahead)
            _raise_known(db, terminal_id, max(burns))
    db.execute_rows(_BURN, 5, rows, rows_per_statement=_BURN_ROWS)


class _Known:
    """The registry rows a SQLite connection read, so that a message from the next
    counter of a known terminal needs no statement: {terminal id: (merchant id, IK ID,
    status, highest counter in the table)}. A counter above the highest cannot have a
    ksn_used row, which is all check() would read for it. Emptied as soon as it may be
    stale: another connection committed (PRAGMA data_version, read once per transaction),
    a transaction or savepoint of this one rolled back (db.rollbacks), or a registry
    write of this one (enrol, status). The highest counter grows where the table's does:
    where burns are written (before their COMMIT: a COMMIT that fails counts as a
    rollback) and where check() moves the floor `last_counter` up. Not on
    PostgreSQL, where other host processes write without such a version."""

    __slots__ = ("rows", "version", "rollbacks", "transaction")

    def __init__(self):
        self.rows, self.version, self.rollbacks, self.transaction = {}, None, None, None


def _known_rows(db):
    """db's _Known rows, fresh for its open transaction; None on PostgreSQL."""
    if db.engine != "sqlite":
        return None
    known = getattr(db, "_registry_known", None)
    if known is None:
        known = db._registry_known = _Known()
    if known.transaction != db.transactions:
        version = db.execute("PRAGMA data_version").fetchone()[0]
        if version != known.version:
            known.rows.clear()
        known.version, known.transaction = version, db.transactions
    if known.rollbacks != db.rollbacks:
        known.rows.clear()
        known.rollbacks = db.rollbacks
    return known.rows


def _raise_known(db, terminal_id, counter):
    """A counter of `terminal_id` is written to ksn_used: the highest known grows with it."""
    known = getattr(db, "_registry_known", None)
    if known is not None:
        row = known.rows.get(terminal_id)
        if row is not None and counter > row[3]:
            known.rows[terminal_id] = row[:3] + (counter,)


def _forget_known(db, terminal_id):
    known = getattr(db, "_registry_known", None)
    if known is not None:
        known.rows.pop(terminal_id, None)


_REPLY_SQL = "UPDATE ksn_used SET reply = ? WHERE terminal_id = ? AND counter = ? AND digest = ?"


class TerminalRegistry:
    def __init__(self, db, auto_enroll=False, clock=time.time, window=KSN_WINDOW):
        self.db = db
        self.auto_enroll = auto_enroll
        self.clock = clock
        self.window = window
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                self.db.execute(self.db.ddl(statement))  # db.py: SQLite or PostgreSQL

    # ------------------------------------------------------------ administration

    def enroll(self, terminal_id, merchant_id, ik_id, replace=False, source="enrol"):
        """Enrol (or with replace: re-key, resetting the KSN counter) one terminal."""
        if not isinstance(terminal_id, str) or not TERMINAL_ID.match(terminal_id):
            raise EnrolmentError("terminal id must be 1-8 letters, digits or '-'")
        if merchant_id is not None and not MERCHANT_ID.match(merchant_id):
            raise EnrolmentError("merchant id must be 1-15 letters, digits, spaces or '-'")
        if len(ik_id) != dukpt.IK_ID_LEN:
            raise EnrolmentError("the IK ID must be 8 bytes")
        merchant = merchant_id.strip() if merchant_id is not None else None
        with self.db.transaction():
            _forget_known(self.db, terminal_id)
            row = self._row(terminal_id)
            if row is not None and not replace:
                raise EnrolmentError("terminal %s is already enrolled (use --replace after "
                                     "re-keying it: that resets its KSN counter)" % terminal_id)
            self.db.execute("DELETE FROM ksn_used WHERE terminal_id = ?", (terminal_id,))
            self.db.execute(
                "INSERT INTO terminal_registry (terminal_id, merchant_id, ik_id, status, "
                "last_counter, enrolled, source) VALUES (?, ?, ?, ?, 0, ?, ?) ON CONFLICT "
                "(terminal_id) DO UPDATE SET merchant_id = excluded.merchant_id, ik_id = "
                "excluded.ik_id, status = excluded.status, last_counter = 0, enrolled = "
                "excluded.enrolled, source = excluded.source",
                (terminal_id, merchant, ik_id.hex().upper(), ACTIVE, self.clock(), source))

    def set_status(self, terminal_id, status):
        if status not in (ACTIVE, DISABLED):
            raise EnrolmentError("status must be %s or %s" % (ACTIVE, DISABLED))
        with self.db.transaction():
            _forget_known(self.db, terminal_id)
            changed = self.db.execute("UPDATE terminal_registry SET status = ? WHERE "
                                      "terminal_id = ?", (status, terminal_id)).rowcount
        if not changed:
            raise EnrolmentError("terminal %s is not enrolled" % terminal_id)

    def terminals(self):
        rows = self.db.execute(
            "SELECT r.terminal_id, r.merchant_id, r.ik_id, r.status, r.last_counter, r.enrolled, "
            "r.source, s.version, s.selftest, " + _HIGHEST + " FROM terminal_registry r LEFT "
            "JOIN terminal_status s ON s.terminal_id = r.terminal_id ORDER BY r.terminal_id")
        keys = ("terminal_id", "merchant_id", "ik_id", "status", "last_counter", "enrolled",
                "source", "version", "selftest")
        out = []
        for row in rows:
            terminal = dict(zip(keys, tuple(row)))
            terminal["last_counter"] = _highest(terminal["last_counter"], row[9])
            out.append(terminal)
        return out

    def record_status(self, terminal_id, version, selftest):
        """What a terminal's 0800 said of itself (48 SV, ST; checked by private48 first).
        A tag it left out keeps the value it reported before."""
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO terminal_status (terminal_id, version, selftest, reported) VALUES "
                "(?, ?, ?, ?) ON CONFLICT (terminal_id) DO UPDATE SET version = COALESCE("
                "excluded.version, terminal_status.version), selftest = COALESCE("
                "excluded.selftest, terminal_status.selftest), reported = excluded.reported",
                (terminal_id, version, selftest, self.clock()))

    def _row(self, terminal_id):
        row = self.db.execute("SELECT merchant_id, ik_id, status, last_counter FROM "
                              "terminal_registry WHERE terminal_id = ?",
                              (terminal_id,)).fetchone()
        return None if row is None else tuple(row)

    # ------------------------------------------------------------ per message

    def check(self, message, data, ksn_checked=True):
        """The Verdict for one request whose MAC is good. `ksn_checked` False (--no-mac):
        only the enrolment and status are checked (a KSN without a MAC proves nothing)."""
        terminal_id = str(message.get(41, "")).rstrip()
        if not terminal_id:
            return Verdict(refusal="no terminal id (field 41)")
        merchant = message.get(42)
        merchant = merchant.rstrip() if isinstance(merchant, str) else None
        if not ksn_checked:
            return self._check_enrolment_only(terminal_id, merchant)
        try:
            ik_id, counter = dukpt.split_ksn(bytes(message.get(53) or b""))
        except SecurityError as exc:
            return Verdict(terminal_id, refusal=str(exc))
        digest = hashlib.sha256(bytes(data)).hexdigest()
        verdict = Verdict(terminal_id, counter, digest)
        with self._atomic():
            known = _known_rows(self.db)
            row = known.get(terminal_id) if known is not None else None
            used = None
            if row is None or counter <= row[3]:  # not known, or perhaps used: read it
                found = self.db.execute(_CHECK_SQL, (counter, terminal_id)).fetchone()
                row = None if found is None else (found[0], found[1], found[2],
                                                  _highest(found[3], found[6]))
                used = None if found is None or found[4] is None else (found[4], found[5])
                if row is not None and known is not None:
                    known[terminal_id] = row
            burns = self.db.deferred(_BURNS)
            mine = burns.get(terminal_id) if burns else None
            if mine:  # this transaction's own burns of the terminal (not in the table yet)
                if used is None and counter in mine:
                    used = (mine[counter][0], mine[counter][1])
                if row is not None:
                    row = row[:3] + (_highest(row[3], max(mine)),)
            if row is None:
                if not self.auto_enroll:
                    verdict.refusal = "terminal not enrolled (kapos host enroll)"
                    return verdict
                self._insert(terminal_id, merchant, ik_id, "auto-enrol")
                row = (merchant, ik_id.hex().upper(), ACTIVE, 0)
            enrolled_merchant, enrolled_ik, status, last = row
            if enrolled_ik is None:  # auto-enrolled under --no-mac: its first KSN binds it
                _forget_known(self.db, terminal_id)
                enrolled_ik = ik_id.hex().upper()
                self.db.execute("UPDATE terminal_registry SET ik_id = ? WHERE terminal_id = ?",
                                (enrolled_ik, terminal_id))
            if status != ACTIVE:
                verdict.refusal = "terminal %s" % status
            elif enrolled_ik != ik_id.hex().upper():
                verdict.refusal = "KSN of another device (IK ID differs from the enrolment)"
            elif merchant and enrolled_merchant and merchant != enrolled_merchant:
                verdict.refusal = "merchant id differs from the enrolment"
            if verdict.refusal:
                return verdict
            if counter <= last - self.window:  # (its used row may not be deleted yet)
                verdict.refusal = "stale KSN counter %d (highest seen %d)" % (counter, last)
                return verdict
            if used is not None:
                if used[0] != digest:
                    verdict.refusal = "KSN counter %d already used" % counter
                elif used[1] is not None:
                    verdict.reply = bytes(used[1])  # the same message again: same answer
                # else: the same message, unanswered (a crash in between): the ledger,
                # idempotent for repeats, answers it again
                return verdict
            verdict.fresh = True
            if counter > last and counter // _PRUNE_EVERY != last // _PRUNE_EVERY:
                # rows below the window are never read (stale above): pruned now and then,
                # the floor kept in the registry row (the highest row may go one day)
                self.db.execute("UPDATE terminal_registry SET last_counter = ? WHERE "
                                "terminal_id = ?", (counter, terminal_id))
                _raise_known(self.db, terminal_id, counter)  # the table's highest, now
                self.db.execute("DELETE FROM ksn_used WHERE terminal_id = ? AND counter <= ?",
                                (terminal_id, counter - self.window))
                for old_counter in [c for c in mine or () if c <= counter - self.window]:
                    del mine[old_counter]  # this transaction's burns below the window too
        if not self.db.depth:  # on its own (not inside a group commit): burn it now
            self._burn(verdict, None)
        return verdict

    def answered(self, verdict, reply):
        """Keep the reply of an accepted message for its exact repeats (and, inside the
        server's transaction, burn its counter: one statement where there were two)."""
        if verdict.counter is None or verdict.refusal or verdict.reply is not None:
            return
        self._burn(verdict, reply)

    def _burn(self, verdict, reply):
        """The counter's ksn_used row: inserted once (its unique key is what stops another
        host process applying the same message), its reply set when known."""
        db = self.db
        if db.deferring:
            burns = db.defer(_BURNS, dict, _flush_burns)
            mine = burns.get(verdict.terminal_id)
            if verdict.fresh:
                verdict.fresh = False
                if mine is None:
                    mine = burns[verdict.terminal_id] = {}
                mine[verdict.counter] = [verdict.digest, reply, self.clock()]
                return
            burned = mine.get(verdict.counter) if mine else None
            if burned is not None:  # burned in this transaction: its reply now
                if reply is not None and burned[0] == verdict.digest:
                    burned[1] = reply
                return
        with self._atomic():
            if verdict.fresh:
                verdict.fresh = False
                self.db.execute_rows(_BURN, 5, (verdict.terminal_id, verdict.counter,
                                                verdict.digest, reply, self.clock()))
                _raise_known(self.db, verdict.terminal_id, verdict.counter)
            elif reply is not None:
                self.db.execute(_REPLY_SQL, (reply, verdict.terminal_id, verdict.counter,
                                             verdict.digest))

    def _atomic(self):
        """A transaction of its own, or nothing more inside one already open (the server's
        group commit): what runs here is reads and single statements."""
        return self.db.transaction() if not self.db.depth else contextlib.nullcontext()

    def _check_enrolment_only(self, terminal_id, merchant):
        with self.db.transaction():
            row = self._row(terminal_id)
            if row is None and self.auto_enroll:
                self.db.execute(
                    "INSERT INTO terminal_registry (terminal_id, merchant_id, ik_id, status, "
                    "enrolled, source) VALUES (?, ?, NULL, ?, ?, 'auto-enrol')",
                    (terminal_id, merchant, ACTIVE, self.clock()))
                return Verdict(terminal_id)
        if row is None:
            return Verdict(terminal_id, refusal="terminal not enrolled (kapos host enroll)")
        if row[2] != ACTIVE:
            return Verdict(terminal_id, refusal="terminal %s" % row[2])
        return Verdict(terminal_id)

    def _insert(self, terminal_id, merchant, ik_id, source):
        self.db.execute(
            "INSERT INTO terminal_registry (terminal_id, merchant_id, ik_id, status, "
            "last_counter, enrolled, source) VALUES (?, ?, ?, ?, 0, ?, ?)",
            (terminal_id, merchant, ik_id.hex().upper(), ACTIVE, self.clock(), source))


def _highest(last_counter, highest_used):
    """The highest KSN counter seen: the registry's floor or the highest burned one."""
    if highest_used is None or highest_used < last_counter:
        return last_counter
    return highest_used
