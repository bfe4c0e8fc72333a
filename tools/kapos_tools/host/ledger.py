"""The reference host's ledger and rules: one SQLite file, one transaction per message.

    ledger = Ledger("host.db")              # ":memory:" for a throw-away ledger
    ledger.load_cards("testcards.toml")     # accounts + cards (kapos test cards format)
    response = ledger.handle(message, data) # decoded request dict (+ its raw bytes)

Tables: accounts (number, balance, daily limit), cards (by PAN, or "TK:<UID hex>" for a
closed-loop token; a PVV instead of the PIN), daily (per card and host-local day: what
counts toward the daily limit), txns (every 0200/0220: status, response, the exact
effects applied - so a reversal or a void undoes exactly those), reversals (one row per
original: the first undoes, repeats are answered again), batches (per terminal and batch
number: totals on both sides and the 0510 sent).

Rules of a 0200, in order (response code):
    30 required fields missing         94 same terminal/STAN/field 7, different content
    (same key and content: the stored response again - a duplicate is idempotent)
    12 reversed before it arrived, or an unknown processing code
    14 unknown card or transfer target  <card's decline code from the cards file>
    54 expired (card expiry before the host's month)
    55 wrong PIN (format 4 block: under the DUKPT PIN key of the KSN in field 53, derived
       from the BDK - by default the public test BDK - or, without 53, the static test key)
    13 bad amount                       61 per-card daily limit (sale + cash + transfer)
    51 insufficient funds               00 approved (37 RRN, 38 auth code; 54 balance for
                                           balance inquiry and cash)
A void (02/22) finds its original by RRN (37) then field 90: 25 not found, 12 not
approved / already voided / wrong type, 13 amount differs, else 00 and the original's
effects are undone. A reversal (0400/0401/0420/0421) undoes its original once (00),
answers repeats the same way, and answers 25 for an original it never saw - remembering
it, so that original is refused (12) if it arrives later.
"""

import hashlib
import json
import logging
import os
import sqlite3
import time
import tomllib

from kapos.app.pinseal import TEST_PIN_KEY

from kapos.app.testkeys import TEST_BDK, TEST_TOKEN_KEY
from kapos.errors import DecodeError, LocalProtocolError, SecurityError
from kapos.host import codec
from kapos.host import messages as m
from kapos.host.codec import MTI
from kapos.security import pinblock, pinverify
from kapos.security.token import verify_token_block
from kapos.services.host_client import TOKEN_DATA_TAG
from kapos.services.journal import add_to_totals

log = logging.getLogger("kapos_tools.host")

DEFAULT_DAILY_LIMIT = 200000
MAX_PIN_TRIES = 3  # wrong PINs in a row before a card is locked (75)
PRIVATE_BATCH = "BN"

TYPES_BY_CODE = {"00": "sale", "01": "cash", "02": "void", "20": "refund",
                 "22": "void_refund", "31": "balance", "40": "transfer"}
DEBIT_TYPES = ("sale", "cash", "transfer")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    number TEXT PRIMARY KEY, name TEXT, balance INTEGER NOT NULL,
    initial INTEGER NOT NULL DEFAULT 0);
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
    UNIQUE (terminal_id, stan, transmission));
CREATE INDEX IF NOT EXISTS txns_rrn ON txns (rrn);
CREATE INDEX IF NOT EXISTS txns_batch ON txns (terminal_id, batch, status);
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


class Ledger:
    def __init__(self, path=":memory:", clock=time.time, pin_key=TEST_PIN_KEY, bdk=TEST_BDK,
                 daily_limit=DEFAULT_DAILY_LIMIT, synchronous="FULL", token_key=TEST_TOKEN_KEY,
                 velocity=None):
        if path != ":memory:" and os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path = path
        self.clock = clock
        self.pin_key = pin_key
        self.bdk = bdk
        self.token_key = token_key  # None: tokens by UID alone (no anti-clone check)
        self.daily_limit = daily_limit
        self.velocity = velocity  # (count, seconds): more approved debits per card -> 65
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        if path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=%s" % synchronous)
        with self._tx():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('rrn', '0')")
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('pvv_key', ?)",
                            (os.urandom(16).hex(),))
        self._pvv_key = bytes.fromhex(self._meta("pvv_key"))
        self.seen = {}  # terminal id -> messages handled by this process

    # ------------------------------------------------------------ plumbing

    def _tx(self):
        return _Tx(self.db)

    def _meta(self, key):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def close(self):
        try:
            self.db.close()
        except sqlite3.Error:
            pass

    def _today(self):
        return time.strftime("%Y%m%d", time.localtime(self.clock()))

    def _yymm(self):
        return time.strftime("%y%m", time.localtime(self.clock()))

    # ------------------------------------------------------------ cards and accounts

    def load_cards(self, path=None, reset=False):
        """Load accounts and cards from a cards file (kapos test cards TOML; see
        docs/host.md). Existing rows keep their balances unless `reset`. Returns the
        number of cards loaded."""
        if path is None:
            from kapos.app.testcards import DEFAULT_FILE
            path = DEFAULT_FILE
        with open(path, "rb") as f:
            data = tomllib.load(f)
        loaded = 0
        with self._tx():
            for entry in data.get("account", []):
                self._put_account(str(entry["number"]), entry.get("name", ""),
                                  int(entry.get("balance", 0)), reset)
            for entry in data.get("card", []):
                if self._put_card(entry, reset):
                    loaded += 1
        return loaded

    def _put_account(self, number, name, balance, reset):
        if reset:
            self.db.execute("INSERT OR REPLACE INTO accounts (number, name, balance, initial) "
                            "VALUES (?, ?, ?, ?)", (number, name, balance, balance))
        else:
            self.db.execute("INSERT OR IGNORE INTO accounts (number, name, balance, initial) "
                            "VALUES (?, ?, ?, ?)", (number, name, balance, balance))

    def _put_card(self, entry, reset):
        pan = entry.get("pan")
        token = bool(entry.get("token", False))
        uid = entry.get("uid")
        if token:
            if not uid:
                return False
            key = "TK:" + uid.upper()
            pin_pan = _token_pin_pan(uid)
            default_account = uid.upper()
        elif pan:
            if entry.get("raw") is not None and not entry.get("expiry"):
                return False
            key = pan
            pin_pan = pan
            default_account = pan
        else:
            return False  # a malformed-swipe card: nothing for the host to know
        account = str(entry.get("account", default_account))
        if "account" not in entry or entry.get("balance") is not None:
            self._put_account(account, entry.get("name", entry.get("id", "")),
                              int(entry.get("balance", 0)), reset)
        pvv = None
        if entry.get("pin"):
            pvv = pinverify.make_pvv(self._pvv_key, pin_pan, bytearray(entry["pin"].encode()))
        verb = "INSERT OR REPLACE" if reset else "INSERT OR IGNORE"
        self.db.execute(
            verb + " INTO cards (key, card_id, account, kind, expiry, pvv, decline, "
            "daily_limit) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, entry.get("id"), account, "token" if token else "pan", entry.get("expiry"),
             pvv, entry.get("decline"), entry.get("daily_limit")))
        return True

    def add_account(self, number, balance, name=""):
        with self._tx():
            self._put_account(number, name, balance, True)

    def balance(self, account):
        row = self.db.execute("SELECT balance FROM accounts WHERE number = ?",
                              (account,)).fetchone()
        return row[0] if row else None

    def card_account(self, key):
        row = self.db.execute("SELECT account FROM cards WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def accounts(self):
        return [dict(r) for r in self.db.execute("SELECT * FROM accounts ORDER BY number")]

    def transactions(self, terminal_id=None):
        if terminal_id is None:
            rows = self.db.execute("SELECT * FROM txns ORDER BY id")
        else:
            rows = self.db.execute("SELECT * FROM txns WHERE terminal_id = ? ORDER BY id",
                                   (terminal_id.ljust(8),))
        out = []
        for r in rows:
            d = dict(r)
            d.pop("response", None)
            out.append(d)
        return out

    def reversals(self):
        return [dict(r) for r in self.db.execute("SELECT * FROM reversals ORDER BY id")]

    def batches(self):
        return [dict(r) for r in self.db.execute(
            "SELECT terminal_id, number, code, terminal_totals, host_totals, created "
            "FROM batches ORDER BY created")]

    def check(self):
        """Internal consistency: every balance = initial + the effects of the
        transactions in force. Returns a list of problems (empty when consistent)."""
        expected = {a["number"]: a["initial"] for a in self.accounts()}
        for row in self.db.execute("SELECT effects FROM txns WHERE status = 'approved'"):
            for account, delta in json.loads(row[0] or "{}").get("accounts", []):
                expected[account] = expected.get(account, 0) + delta
        problems = []
        for a in self.accounts():
            if expected.get(a["number"]) != a["balance"]:
                problems.append("account %s: balance %d, transactions say %d"
                                % (a["number"], a["balance"], expected.get(a["number"])))
        return problems

    # ------------------------------------------------------------ dispatch

    def handle(self, message, data=None):
        """The response dict for a decoded request, or None for no response (a message
        that is not a request). Every message is handled in one SQLite transaction."""
        mti = message.get(MTI)
        terminal_id = message.get(41)
        if terminal_id is not None:
            self._seen(terminal_id)
        base = mti[:3] + "0" if mti and mti[3] in "01" else mti
        if base not in m.REQUIRED_FIELDS or base not in m.REQUEST_MTIS:
            return None
        if m.missing_fields(dict(message, mti=base)):
            return m.build_response(message, "30")
        if base in ("0100", "0200"):
            return self._financial(message, data)
        if base == "0220":
            return self._advice(message, data)
        if base in ("0400", "0420"):
            return self._reversal(message)
        if base == "0500":
            return self._reconcile(message)
        if base == "0800":
            return self._network(message)
        if base == "0620":
            return self._alert(message)
        return m.build_response(message, "12")

    def _seen(self, terminal_id):
        """Per-terminal message counts, in memory (persisted at sign-on)."""
        self.seen[terminal_id] = self.seen.get(terminal_id, 0) + 1

    # ------------------------------------------------------------ 0200 / 0100

    def _financial(self, message, data):
        tid, stan, transmission = message[41], message[11], message[7]
        fingerprint = _fingerprint(message)
        with self._tx():
            row = self.db.execute("SELECT fingerprint, response FROM txns WHERE terminal_id = ? "
                                  "AND stan = ? AND transmission = ?",
                                  (tid, stan, transmission)).fetchone()
            if row is not None:
                if row["fingerprint"] == fingerprint and row["response"]:
                    return codec.decode(row["response"])  # the same reply again
                return m.build_response(message, "94")
            kind = TYPES_BY_CODE.get(message[3][:2])
            context = {"tid": tid, "stan": stan, "transmission": transmission,
                       "mti": message[MTI], "type": kind, "fingerprint": fingerprint,
                       "batch": _batch_of(message)}
            tomb = self.db.execute("SELECT id FROM reversals WHERE terminal_id = ? AND "
                                   "orig_stan = ? AND orig_transmission = ?",
                                   (tid, stan, transmission)).fetchone()
            if tomb is not None:
                return self._store(context, message, "12", status="reversed")
            if kind is None:
                return self._store(context, message, "12")
            if kind in ("void", "void_refund"):
                return self._void(context, message)
            return self._authorize(context, message)

    def _authorize(self, ctx, message):
        kind = ctx["type"]
        try:
            private = m.unpack_private(message.get(48, ""))
        except DecodeError:
            return self._store(ctx, message, "30")
        card, expiry = self._card_of(message, private)
        if card is None:
            return self._store(ctx, message, "14")
        ctx["card_key"] = card["key"]
        ctx["account"] = card["account"]
        if card["decline"]:
            return self._store(ctx, message, card["decline"])
        expiry = expiry or (card["expiry"] if card["kind"] == "pan" else None)
        if expiry and expiry < self._yymm():
            return self._store(ctx, message, "54")
        if card["kind"] == "token" and not self._token_ok(card, private):
            return self._store(ctx, message, "63")
        if 52 in message:
            failures = self._pin_failures(card)
            if failures >= MAX_PIN_TRIES:
                return self._store(ctx, message, "75")
            if not self._pin_ok(card, message):
                self._set_pin_failures(card, failures + 1)
                return self._store(ctx, message, "75" if failures + 1 >= MAX_PIN_TRIES else "55")
            if failures:
                self._set_pin_failures(card, 0)
        amount = 0
        if kind != "balance":
            if 4 not in message or int(message[4]) <= 0:
                return self._store(ctx, message, "13")
            amount = int(message[4])
        fee = 0
        if kind in DEBIT_TYPES and m.PRIVATE_FEE in private:
            fee_text = private[m.PRIVATE_FEE]
            if not fee_text.isdigit():
                return self._store(ctx, message, "30")
            fee = int(fee_text)
        total = amount + fee
        ctx.update(amount=amount, fee=fee, total=total)
        balance = self.balance(card["account"])
        if kind == "balance":
            return self._store(ctx, message, "00", effects={"accounts": []},
                               fields={54: self._balance_field(message, balance)})
        if kind == "refund":
            return self._store(ctx, message, "00",
                               effects={"accounts": [[card["account"], amount]]})
        target = None
        if kind == "transfer":
            target = self._target_account(private.get(m.PRIVATE_TRANSFER_TARGET))
            if target is None or target == card["account"]:
                return self._store(ctx, message, "14")
            ctx["target"] = target
        if self.velocity is not None and self._too_fast(card):
            return self._store(ctx, message, "65")
        day = self._today()
        limit = card["daily_limit"] if card["daily_limit"] is not None else self.daily_limit
        used = self.db.execute("SELECT total FROM daily WHERE card_key = ? AND day = ?",
                               (card["key"], day)).fetchone()
        if (used[0] if used else 0) + total > limit:
            return self._store(ctx, message, "61")
        if balance < total:
            return self._store(ctx, message, "51")
        effects = {"accounts": [[card["account"], -total]], "daily": [[card["key"], day, total]]}
        if target is not None:
            effects["accounts"].append([target, amount])
        fields = {}
        if kind == "cash":
            fields[54] = self._balance_field(message, balance - total)
        return self._store(ctx, message, "00", effects=effects, fields=fields)

    def _balance_field(self, message, balance):
        currency = message.get(49, "000")
        account = message.get(3, "000000")[2:4]
        return m.format_additional_amounts([(account, m.AMOUNT_LEDGER_BALANCE, currency, balance),
                                            (account, m.AMOUNT_AVAILABLE_BALANCE, currency,
                                             balance)])

    def _card_of(self, message, private):
        """(card row, expiry from the message or None) or (None, None)."""
        expiry = None
        if 35 in message:
            try:
                pan, expiry = m._card_from_track2(message[35])
            except LocalProtocolError:
                return None, None
            key = pan
        elif 2 in message:
            key = message[2]
            expiry = message.get(14)
        elif m.PRIVATE_TOKEN in private:
            key = "TK:" + private[m.PRIVATE_TOKEN].upper()
        else:
            return None, None
        row = self.db.execute("SELECT * FROM cards WHERE key = ?", (key,)).fetchone()
        if row is None or self.balance(row["account"]) is None:
            return None, None
        return dict(row), expiry

    def _token_ok(self, card, private):
        """Anti-clone: the token's block must carry a valid MAC over its UID, and a counter
        not below the newest seen for it (a re-issued token revokes older copies)."""
        if self.token_key is None:
            return True
        uid_hex = card["key"][3:]
        try:
            block = bytes.fromhex(private.get(TOKEN_DATA_TAG, ""))
            counter = verify_token_block(self.token_key, bytes.fromhex(uid_hex), block)
        except (ValueError, SecurityError) as exc:
            log.warning("token %s refused: %s", uid_hex[-6:], exc)
            return False
        row = self.db.execute("SELECT counter FROM token_counters WHERE key = ?", (card["key"],)).fetchone()
        if row is not None and counter < row["counter"]:
            log.warning("token %s refused: counter %d is older than %d", uid_hex[-6:], counter, row["counter"])
            return False
        self.db.execute("INSERT INTO token_counters (key, counter) VALUES (?, ?) ON CONFLICT(key) "
                        "DO UPDATE SET counter = max(counter, excluded.counter)", (card["key"], counter))
        return True

    def _pin_ok(self, card, message):
        if card["pvv"] is None:
            return False
        if card["kind"] == "token":
            pan = _token_pin_pan(card["key"][3:])
        else:
            pan = card["key"]
        key = self.pin_key
        if 53 in message:
            if self.bdk is None:
                return False  # a DUKPT PIN block and no BDK: cannot verify
            from kapos.security import dukpt
            try:
                key = dukpt.host_derive_working_key(self.bdk, message[53], dukpt.PIN_ENCRYPTION)
            except Exception:
                return False
        try:
            digits = pinblock.decipher_iso4(key, message[52], pan)
        except (SecurityError, ValueError):
            return False
        try:
            return pinverify.check_pvv(self._pvv_key, pan, digits, card["pvv"])
        except (SecurityError, ValueError):
            return False
        finally:
            for i in range(len(digits)):
                digits[i] = 0

    def _target_account(self, target):
        if not target:
            return None
        for sql, key in (("SELECT number FROM accounts WHERE number = ?", target),
                         ("SELECT account FROM cards WHERE key = ?", target),
                         ("SELECT account FROM cards WHERE key = ?", "TK:" + target.upper())):
            row = self.db.execute(sql, (key,)).fetchone()
            if row is not None:
                return row[0]
        return None

    def _void(self, ctx, message):
        kind = ctx["type"]
        original = None
        if 37 in message:
            original = self.db.execute("SELECT * FROM txns WHERE rrn = ? AND terminal_id = ?",
                                       (message[37], ctx["tid"])).fetchone()
        if original is None and 90 in message:
            try:
                _, ostan, otrans, _, _ = m.parse_original_data(message[90])
            except DecodeError:
                return self._store(ctx, message, "30")
            original = self.db.execute("SELECT * FROM txns WHERE terminal_id = ? AND stan = ? "
                                       "AND transmission = ?",
                                       (ctx["tid"], ostan, otrans)).fetchone()
        if original is None:
            return self._store(ctx, message, "25")
        ctx["original_id"] = original["id"]
        ctx["card_key"] = original["card_key"]
        ctx["account"] = original["account"]
        wanted = ("refund",) if kind == "void_refund" else DEBIT_TYPES
        if original["status"] != "approved" or original["voided_by"] is not None \
                or original["type"] not in wanted:
            return self._store(ctx, message, "12")
        amount = int(message.get(4, "0"))
        if amount != original["amount"]:
            return self._store(ctx, message, "13")
        ctx.update(amount=amount, fee=0, total=original["total"])
        effects = _inverse(json.loads(original["effects"] or "{}"))
        response = self._store(ctx, message, "00", effects=effects)
        self.db.execute("UPDATE txns SET voided_by = (SELECT id FROM txns WHERE rrn = ?) "
                        "WHERE id = ?", (response[37], original["id"]))
        return response

    def _store(self, ctx, message, code, effects=None, fields=None, status=None):
        """Apply `effects` (approved only), record the transaction and its response."""
        approved = m.is_approved(code)
        seq = int(self._meta("rrn")) + 1
        self.db.execute("UPDATE meta SET value = ? WHERE key = 'rrn'", (str(seq),))
        rrn = "%012d" % seq
        extra = {37: rrn}
        auth_code = None
        if approved:
            auth_code = "%06d" % ((seq * 7919 + 104729) % 1000000)
            extra[38] = auth_code
            self._apply(effects or {})
        if fields:
            extra.update(fields)
        response = m.build_response(message, code, extra)
        self.db.execute(
            "INSERT INTO txns (terminal_id, stan, transmission, mti, type, amount, fee, total, "
            "card_key, account, target, code, auth_code, rrn, batch, status, effects, "
            "original_id, response, fingerprint, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ctx["tid"], ctx["stan"], ctx["transmission"], ctx["mti"], ctx.get("type"),
             ctx.get("amount"), ctx.get("fee"), ctx.get("total"), ctx.get("card_key"),
             ctx.get("account"), ctx.get("target"), code, auth_code, rrn, ctx.get("batch"),
             status or ("approved" if approved else "declined"),
             json.dumps(effects) if approved else None, ctx.get("original_id"),
             codec.encode(response), ctx.get("fingerprint"), self.clock()))
        return response

    def _apply(self, effects):
        for account, delta in effects.get("accounts", []):
            self.db.execute("UPDATE accounts SET balance = balance + ? WHERE number = ?",
                            (delta, account))
        for card_key, day, delta in effects.get("daily", []):
            self.db.execute("INSERT INTO daily (card_key, day, total) VALUES (?, ?, ?) "
                            "ON CONFLICT (card_key, day) DO UPDATE SET total = "
                            "max(0, total + excluded.total)", (card_key, day, delta))

    # ------------------------------------------------------------ 0220

    def _advice(self, message, data):
        tid, stan, transmission = message[41], message[11], message[7]
        with self._tx():
            row = self.db.execute("SELECT response FROM txns WHERE terminal_id = ? AND stan = ? "
                                  "AND transmission = ?", (tid, stan, transmission)).fetchone()
            if row is not None:
                return m.build_response(message, "00")
            kind = TYPES_BY_CODE.get(message[3][:2])
            ctx = {"tid": tid, "stan": stan, "transmission": transmission, "mti": "0220",
                   "type": kind, "fingerprint": _fingerprint(message),
                   "batch": _batch_of(message)}
            try:
                private = m.unpack_private(message.get(48, ""))
            except DecodeError:
                private = {}
            card, _ = self._card_of(message, private)
            if card is None or kind not in DEBIT_TYPES + ("refund",) \
                    or not m.is_approved(message[39]):
                self._store(ctx, message, "12")
                return m.build_response(message, "00")  # advice received, nothing applied
            amount = int(message[4])
            ctx.update(card_key=card["key"], account=card["account"], amount=amount, fee=0,
                       total=amount)
            delta = amount if kind == "refund" else -amount
            effects = {"accounts": [[card["account"], delta]]}
            if kind != "refund":
                effects["daily"] = [[card["key"], self._today(), amount]]
            self._store(ctx, message, "00", effects=effects)
            return m.build_response(message, "00")

    # ------------------------------------------------------------ reversals

    def _reversal(self, message):
        tid = message[41]
        try:
            omti, ostan, otrans, _, _ = m.parse_original_data(message[90])
        except DecodeError:
            return m.build_response(message, "30")
        with self._tx():
            row = self.db.execute("SELECT id, code FROM reversals WHERE terminal_id = ? AND "
                                  "orig_stan = ? AND orig_transmission = ?",
                                  (tid, ostan, otrans)).fetchone()
            if row is not None:
                self.db.execute("UPDATE reversals SET received = received + 1 WHERE id = ?",
                                (row[0],))
                return m.build_response(message, row[1])
            original = self.db.execute("SELECT * FROM txns WHERE terminal_id = ? AND stan = ? "
                                       "AND transmission = ?", (tid, ostan, otrans)).fetchone()
            applied = 0
            if original is None:
                code = "25"
            else:
                code = "00"
                if original["status"] == "approved":
                    self._apply(_inverse(json.loads(original["effects"] or "{}")))
                    self.db.execute("UPDATE txns SET status = 'reversed' WHERE id = ?",
                                    (original["id"],))
                    if original["original_id"] is not None:  # a reversed void: un-void
                        self.db.execute("UPDATE txns SET voided_by = NULL WHERE id = ? AND "
                                        "voided_by = ?", (original["original_id"], original["id"]))
                    applied = 1
            self.db.execute(
                "INSERT INTO reversals (terminal_id, orig_mti, orig_stan, orig_transmission, "
                "mti, stan, reason, code, txn_id, applied, created) VALUES (?, ?, ?, ?, ?, ?, ?, "
                "?, ?, ?, ?)",
                (tid, omti, ostan, otrans, message[MTI], message[11], message.get(39), code,
                 original["id"] if original is not None else None, applied, self.clock()))
            return m.build_response(message, code)

    # ------------------------------------------------------------ reconciliation

    def totals(self, terminal_id, batch):
        """Host totals of one terminal batch (same rules as the terminal journal)."""
        totals = dict.fromkeys(m.TOTALS_FIELDS, 0)
        rows = self.db.execute(
            "SELECT t.type, t.total, o.type AS original_type, o.total AS original_total "
            "FROM txns t LEFT JOIN txns o ON o.id = t.original_id "
            "WHERE t.terminal_id = ? AND t.batch IS ? AND t.status = 'approved' "
            "AND t.mti IN ('0100', '0200', '0220')", (terminal_id, batch))
        for row in rows:
            add_to_totals(totals, row["type"], row["total"], row["original_type"],
                          row["original_total"])
        return totals

    def _reconcile(self, message):
        tid = message[41]
        batch = _batch_of(message)
        with self._tx():
            row = self.db.execute("SELECT response FROM batches WHERE terminal_id = ? AND "
                                  "number IS ?", (tid, batch)).fetchone()
            if row is not None:
                stored = codec.decode(row[0])
                stored[11] = message[11]  # the same answer, to this request
                stored[7] = message[7]
                return stored
            host = self.totals(tid, batch)
            terminal = {}
            agreed = True
            for key, (number, size) in m.TOTALS_FIELDS.items():
                if number in message:
                    terminal[key] = int(message[number])
                    if terminal[key] != host[key]:
                        agreed = False
            code = "00" if agreed else "95"
            fields = {}
            for key, (number, size) in m.TOTALS_FIELDS.items():
                fields[number] = ("%0" + str(size) + "d") % host[key]
            net = (host["debits_amount"] - host["debits_reversal_amount"]) \
                - (host["credits_amount"] - host["credits_reversal_amount"])
            fields[97] = ("D" if net > 0 else "C") + "%016d" % abs(net)
            response = m.build_response(message, code, fields)
            self.db.execute("INSERT INTO batches (terminal_id, number, code, terminal_totals, "
                            "host_totals, response, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (tid, batch, code, json.dumps(terminal, sort_keys=True),
                             json.dumps(host, sort_keys=True), codec.encode(response),
                             self.clock()))
            return response

    # ------------------------------------------------------------ 0800

    def _pin_failures(self, card):
        row = self.db.execute("SELECT failures FROM pin_tries WHERE key = ?", (card["key"],)).fetchone()
        return row["failures"] if row is not None else 0

    def _set_pin_failures(self, card, failures):
        """Wrong PINs in a row; at MAX_PIN_TRIES the card is PIN-locked (75) until reset."""
        self.db.execute("INSERT INTO pin_tries (key, failures) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                        "SET failures = excluded.failures", (card["key"], failures))

    def unlock_pin(self, card_key):
        with self._tx():
            self.db.execute("DELETE FROM pin_tries WHERE key = ?", (card_key,))

    def _too_fast(self, card):
        """Velocity rule: `count` approved debits on this card within `seconds` already."""
        count, seconds = self.velocity
        recent = self.db.execute(
            "SELECT COUNT(*) FROM txns WHERE card_key = ? AND code = '00' AND status = 'approved' "
            "AND type IN ('sale', 'cash', 'transfer') AND created >= ?",
            (card["key"], self.clock() - seconds)).fetchone()[0]
        if recent >= count:
            log.warning("velocity: card %s had %d debits in %d s: declined 65", card["key"][-4:], recent, seconds)
            return True
        return False

    def _alert(self, message):
        """A terminal's anomaly alert: logged and kept (`alerts()`, --show-ledger)."""
        try:
            private = m.unpack_private(message[48])
        except DecodeError:
            return m.build_response(message, "30")
        rule = private.get(m.PRIVATE_ALERT_RULE, "?")
        detail = private.get(m.PRIVATE_ALERT_DETAIL, "")
        with self._tx():
            self.db.execute("INSERT INTO alerts (terminal_id, rule, detail, at) VALUES (?, ?, ?, ?)",
                            (message[41], rule, detail, self.clock()))
        log.warning("ALERT from %s: %s (%s)", message[41], rule, detail)
        return m.build_response(message, "00")

    def alerts(self):
        return [dict(r) for r in self.db.execute("SELECT * FROM alerts ORDER BY id")]

    def _network(self, message):
        code = message[70]
        if code == m.NETWORK_SIGN_ON:
            with self._tx():
                self.db.execute("INSERT INTO terminals (terminal_id, signed_on, last_seen, "
                                "messages) VALUES (?, ?, ?, ?) ON CONFLICT (terminal_id) DO "
                                "UPDATE SET signed_on = excluded.signed_on, last_seen = "
                                "excluded.last_seen, messages = excluded.messages",
                                (message[41], self.clock(), self.clock(),
                                 self.seen.get(message[41], 0)))
            return m.build_response(message, "00")
        if code in (m.NETWORK_ECHO, m.NETWORK_SIGN_OFF):
            return m.build_response(message, "00")
        return m.build_response(message, "12")  # key change / cutover: not offered

    # ------------------------------------------------------------ display

    def show(self, limit=20):
        """The ledger as text (for --show-ledger)."""
        lines = ["accounts:"]
        for a in self.accounts():
            lines.append("  %-20s %12d  (initial %d)  %s" % (_masked_key(a["number"]), a["balance"],
                                                             a["initial"], a["name"] or ""))
        lines.append("daily totals:")
        for d in self.db.execute("SELECT * FROM daily ORDER BY day DESC, card_key LIMIT 50"):
            lines.append("  %s %-20s %12d" % (d["day"], _masked_key(d["card_key"]), d["total"]))
        lines.append("last %d transactions:" % limit)
        for t in reversed(self.db.execute("SELECT * FROM txns ORDER BY id DESC LIMIT ?",
                                          (limit,)).fetchall()):
            lines.append("  %s %s stan %s %-11s %10s code %s rrn %s %s %s" % (
                t["terminal_id"], time.strftime("%Y-%m-%d %H:%M:%S",
                                                time.localtime(t["created"])),
                t["stan"], t["type"], t["total"] if t["total"] is not None else "-", t["code"],
                t["rrn"], t["status"], _masked_key(t["card_key"])))
        lines.append("reversals: %d (%d applied)" % tuple(self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(applied), 0) FROM reversals").fetchone()))
        for b in self.batches():
            lines.append("batch %s #%s: %s" % (b["terminal_id"], b["number"], b["code"]))
        problems = self.check()
        lines.append("consistency: " + ("ok" if not problems else "; ".join(problems)))
        return "\n".join(lines)


# ---------------------------------------------------------------- helpers

def _token_pin_pan(uid_hex):
    """The PAN digits of a token's PIN block (kapos.app.pinseal.pan_for_pin_block)."""
    return str(int(uid_hex, 16))[-19:]


def _masked_key(key):
    """A card key or account number for display: PAN-like numbers as BIN + last 4."""
    if not key:
        return "-"
    if key.startswith("TK:"):
        return "TOKEN .." + key[-6:]
    if key.isdigit() and len(key) >= 13:
        return key[:6] + "*" * (len(key) - 10) + key[-4:]
    return key


def _fingerprint(message):
    """What makes two requests with the same key the same request."""
    parts = []
    for number in sorted(k for k in message if k != MTI and k not in (64, 128)):
        value = message[number]
        parts.append("%d=%s" % (number, value.hex() if isinstance(value, bytes) else value))
    return hashlib.sha256(("%s|" % message[MTI] + "|".join(parts)).encode()).hexdigest()


def _batch_of(message):
    try:
        value = m.unpack_private(message.get(48, "")).get(PRIVATE_BATCH)
    except DecodeError:
        return None
    return int(value) if value and value.isdigit() else None


def _inverse(effects):
    return {"accounts": [[a, -d] for a, d in effects.get("accounts", [])],
            "daily": [[k, day, -d] for k, day, d in effects.get("daily", [])]}


class _Tx:
    """Nestable BEGIN IMMEDIATE / COMMIT: only the outermost block commits."""

    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.outer = not self.db.in_transaction
        if self.outer:
            self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, value, tb):
        if self.outer:
            self.db.execute("COMMIT" if kind is None else "ROLLBACK")
        return False
