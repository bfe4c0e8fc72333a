"""The reference host's ledger and rules: one database (an SQLite file, or PostgreSQL for
several host processes: db.py), one transaction per message (or per group commit).

    ledger = Ledger("host.db")              # ":memory:"; "postgresql://user@host/db"
    ledger.load_cards("testcards.toml")     # accounts + cards (kapos test cards format)
    response = ledger.handle(message)       # a decoded request dict

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
Money moves only as balanced double-entry postings (book.py); what may happen to an
original (void, reversal, linked refunds, undoing those) is one table (lifecycle.py);
field 48 is checked item by item (private48.py, 30); a PIN is required where the card,
its service code or the type asks (55); expiry is the earlier of record and message;
unlinked refunds are capped per merchant; advices (0220) pass the same rules; anything
that raises is rolled back and answered 96. Details: docs/host.md.
A void (02/22) finds its original by RRN (37) then field 90: 25 not found, 12 not
allowed by the lifecycle / wrong type, 13 amount differs, else 00 and the original's
entries are undone. A reversal (0400/0401/0420/0421) undoes its original once (00),
answers repeats the same way, and answers 25 for an original it never saw - remembering
it, so that original is refused (12) if it arrives later.
"""

import hashlib
import hmac
import json
from json.encoder import encode_basestring_ascii as _json_string
import logging
import os
import time
import tomllib

from kapos.simdata.keys import TEST_PIN_KEY

from kapos.simdata.keys import TEST_BDK, TEST_TOKEN_KEY
from kapos_tools.host.keyfile import create_private, private_umask
from kapos.simdata.cards import DEFAULT_FILE as DEFAULT_CARDS_FILE, entry_expiry
from kapos.errors import DecodeError, KaposError, LocalProtocolError, SecurityError
from kapos.host import codec
from kapos.host import messages as m
from kapos.host.codec import MTI
from kapos.security import pinblock, pinverify
from kapos.security.token import verify_token_block
from kapos import txn_types
from kapos.host import private48
from kapos.host.client import add_to_totals
from kapos_tools.host import book, schema
from kapos_tools.host import db as ledger_db
from kapos_tools.host import lifecycle as L
from kapos_tools.host.emv_auth import EmvIssuer

log = logging.getLogger("kapos_tools.host")

_ATTEMPTS = 5  # runs of a message refused as a conflict with another host process
DEFAULT_DAILY_LIMIT = 200000
MAX_PIN_TRIES = 3  # wrong PINs in a row before a card is locked (75)
ACCOUNT_FLOOR = 0  # no message may take a card account below this
# unlinked refunds (no original named) per merchant and host-local day, minor units; 0: none
DEFAULT_UNLINKED_REFUND_LIMIT = 100000
# transaction types that need a PIN on a card with a PIN on file (docs/host.md); None:
# the rows say (pin 'always'; a token only where the row's token_pin says so)
DEFAULT_PIN_TYPES = None
# posting rules an advice (0220, decided offline) may apply
_ADVICE_POSTINGS = ("debit", "transfer", "credit")
# service code digit 3 -> PIN rule (ISO/IEC 7813; kapos.card.service_code)
_SERVICE_PIN = {"0": "always", "3": "always", "5": "always", "6": "pad", "7": "pad"}




class Ledger:
    def __init__(self, path=":memory:", clock=time.time, pin_key=TEST_PIN_KEY, bdk=TEST_BDK,
                 daily_limit=DEFAULT_DAILY_LIMIT, synchronous="FULL", token_key=TEST_TOKEN_KEY,
                 velocity=None, pvv_key=None, unlinked_refund_limit=DEFAULT_UNLINKED_REFUND_LIMIT,
                 refund_limits=None, pin_types=DEFAULT_PIN_TYPES, keys_are_new=False):
        postgres = ledger_db.is_postgresql_url(path)
        if not postgres:
            schema.check_file(path)  # a clear error for a file that is no ledger, not a traceback
            create_private(path)  # the ledger holds PANs: it and its -wal/-shm are 0600
        self.path = ledger_db.redact(path)
        self.clock = clock
        self.pin_key = pin_key
        self.bdk = bdk
        self.token_key = token_key  # None: tokens by UID alone (no anti-clone check)
        self.daily_limit = daily_limit
        self.velocity = velocity  # (count, seconds): more approved debits per card -> 65
        self.unlinked_refund_limit = int(unlinked_refund_limit)
        self.refund_limits = dict(refund_limits or {})  # merchant id -> its own limit
        self.pin_types = None if pin_types is None else tuple(pin_types)
        with private_umask():
            self.db = ledger_db.connect(path, synchronous)
        for attempt in range(5):  # two host processes starting together: one creates it
            try:
                with self._tx():
                    schema.prepare(self.db, "ledger %s" % self.path,  # create, or migrate
                                   velocity=velocity is not None)
                    self.db.execute("INSERT INTO meta VALUES ('rrn', '0') ON CONFLICT DO NOTHING")
                    self.db.create_counter("rrn", int(self._meta("rrn")))
                    if pvv_key is None:  # no key file (tests): the PVV key stays in the ledger
                        self.db.execute("INSERT INTO meta VALUES ('pvv_key', ?) ON CONFLICT DO "
                                        "NOTHING", (os.urandom(16).hex(),))
                break
            except self.db.Error as exc:
                if not self.db.is_retryable(exc) or attempt == 4:
                    raise
        if pvv_key is None:
            self._pvv_key = bytes.fromhex(self._meta("pvv_key"))
        else:  # the host's key file holds it (keyfile.py): none may stay in the ledger
            self._pvv_key = bytes(pvv_key)
            if self._meta("pvv_key") is not None:
                if not postgres:
                    self.db.execute("PRAGMA secure_delete=ON")
                self.db.execute("DELETE FROM meta WHERE key = 'pvv_key'")
                if path != ":memory:" and not postgres:
                    self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._bind_pvv_key(keys_are_new)
        self.seen = {}  # terminal id -> messages handled by this process
        self.emv = EmvIssuer(self.db)  # ARQC / ATC / ARPC for chip data (field 55)

    def _bind_pvv_key(self, keys_are_new):
        """Refuse to serve a ledger whose PINs were made under another PVV key: every PIN
        would be wrong and every card locked after three tries. The ledger keeps a check
        value of its PVV key (an HMAC of a fixed text: it reveals nothing of the key). A
        ledger without PVVs takes any key; one from before the check value that holds PVVs
        is refused only when the key file was just created (`keys_are_new`: it was
        missing), else its key is taken as the right one."""
        mine = _key_check(self._pvv_key)

        def bind():
            stored = self._meta("pvv_key_check")
            if stored is not None and hmac.compare_digest(stored, mine):
                return None
            pins = self.db.execute("SELECT 1 FROM cards WHERE pvv IS NOT NULL LIMIT 1").fetchone()
            if pins is not None and (stored is not None or keys_are_new):
                return "missing" if keys_are_new else "different"
            # nothing made under another key (or a ledger from before the check value)
            self.db.execute("INSERT INTO meta (key, value) VALUES ('pvv_key_check', ?) ON "
                            "CONFLICT (key) DO UPDATE SET value = excluded.value", (mine,))
            return None

        problem = self._retried(bind)
        if problem is not None:
            self.db.close()
            raise LedgerKeyError(
                "the ledger %s holds PINs made under a PVV key %s: restore the host key file "
                "that belongs to this ledger (--key-file); the host does not start, as every "
                "PIN would be refused and every card locked" % (self.path, {
                    "missing": "and its key file is missing (a new one was made)",
                    "different": "other than the one in the key file"}[problem]))

    # ------------------------------------------------------------ plumbing

    def _tx(self):
        return self.db.transaction()  # nested (a group commit): a savepoint

    def _meta(self, key):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def close(self):
        self.db.close()

    def _today(self):
        return self._calendar()[0]

    def _yymm(self):
        return self._calendar()[1]

    _calendar_at = None

    def _calendar(self):
        """(YYYYMMDD, YYMM) of the host's local time, worked out once per second."""
        second = int(self.clock())
        if second != self._calendar_at:
            local = time.localtime(second)
            self._calendar_now = (time.strftime("%Y%m%d", local), time.strftime("%y%m", local))
            self._calendar_at = second
        return self._calendar_now

    # ------------------------------------------------------------ cards and accounts

    def load_cards(self, path=None, reset=False):
        """Load accounts and cards from a cards file (kapos test cards TOML; see
        docs/host.md). Existing rows keep their balances unless `reset`. Returns the
        number of cards loaded."""
        if path is None:
            path = DEFAULT_CARDS_FILE
        with open(path, "rb") as f:
            data = tomllib.load(f)

        def load():
            loaded = 0
            for entry in data.get("account", []):
                self._put_account(str(entry["number"]), entry.get("name", ""),
                                  int(entry.get("balance", 0)), reset)
            for entry in data.get("card", []):
                if self._put_card(entry, reset):
                    loaded += 1
            return loaded

        return self._retried(load)  # another host process may be serving meanwhile

    def _retried(self, work):
        """work() in one transaction, run again while another host process's transaction
        conflicts with it (PostgreSQL; never on SQLite)."""
        for attempt in range(_ATTEMPTS):
            self.db.alone_next = attempt >= 2 and not self.db.depth  # db.py: no starvation
            try:
                with self._tx():
                    return work()
            except Exception as exc:
                if not self.db.is_retryable(exc) or self.db.depth or attempt + 1 == _ATTEMPTS:
                    raise

    def _put_account(self, number, name, balance, reset):
        if reset:
            self.db.execute("INSERT INTO accounts (number, name, balance, initial) VALUES "
                            "(?, ?, ?, ?) ON CONFLICT (number) DO UPDATE SET name = excluded.name, "
                            "balance = excluded.balance, initial = excluded.initial",
                            (number, name, balance, balance))
        else:
            self.db.execute("INSERT INTO accounts (number, name, balance, initial) "
                            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", (number, name, balance, balance))

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
            if entry.get("raw") is not None and not entry_expiry(entry):
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
        conflict = (" ON CONFLICT (key) DO UPDATE SET card_id = excluded.card_id, account = "
                    "excluded.account, kind = excluded.kind, expiry = excluded.expiry, pvv = "
                    "excluded.pvv, decline = excluded.decline, daily_limit = excluded.daily_limit"
                    if reset else " ON CONFLICT DO NOTHING")
        self.db.execute(
            "INSERT INTO cards (key, card_id, account, kind, expiry, pvv, decline, "
            "daily_limit) VALUES (?, ?, ?, ?, ?, ?, ?, ?)" + conflict,
            (key, entry.get("id"), account, "token" if token else "pan", entry_expiry(entry, self.clock()),
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
        """Internal consistency (a list of problems, empty when consistent): the double-
        entry book (every posting sums to zero, all entries sum to zero, every balance is
        its initial balance plus its entries) and the lifecycles (no original undone twice,
        never more refunded than it was for)."""
        problems = book.check(self.db)
        for t in self.db.execute(
                "SELECT t.id, t.stan, t.type, t.lifecycle, t.amount, t.refunded, "
                "(SELECT COUNT(*) FROM txns v WHERE v.original_id = t.id AND v.type IN (%s) "
                " AND v.status = 'approved') AS voids, "
                "(SELECT COUNT(*) FROM entries e WHERE e.txn_id = t.id AND e.reversal_id IS NOT NULL) "
                " AS reversal_entries FROM txns t WHERE t.status != 'declined'"
                % _sql_names(txn_types.of_posting("void"))):
            undone = t["voids"] + (1 if t["reversal_entries"] else 0)
            if undone > 1:
                problems.append("txn %d (stan %s %s) undone %d times" % (t["id"], t["stan"], t["type"], undone))
            if t["refunded"] and t["refunded"] > (t["amount"] or 0):
                problems.append("txn %d (stan %s) refunded %d of %d" % (t["id"], t["stan"], t["refunded"], t["amount"]))
            if t["lifecycle"] not in L.STATES:
                problems.append("txn %d (stan %s): unknown lifecycle %s" % (t["id"], t["stan"], t["lifecycle"]))
        for h in self.db.execute(
                "SELECT h.id, h.stan, h.amount, (SELECT COALESCE(SUM(c.amount), 0) FROM txns c "
                "WHERE c.original_id = h.id AND c.type IN (%s) AND c.lifecycle = 'approved') "
                "AS taken FROM txns h WHERE h.type IN (%s) AND h.status = 'approved'"
                % (_sql_names(txn_types.of_posting("complete")),
                   _sql_names(txn_types.of_posting("hold")))):
            if h["taken"] > (h["amount"] or 0):
                problems.append("hold %d (stan %s): completed for %d of %d"
                                % (h["id"], h["stan"], h["taken"], h["amount"]))
        return problems

    # ------------------------------------------------------------ dispatch

    def handle(self, message, encode=None):
        """The response dict for a decoded request, or None for no response (a message
        that is not a request). Every message is handled in one SQLite transaction; no
        message makes this raise: a bug rolls its transaction back and is answered 96.

        Two host processes on one PostgreSQL database: a transaction the server refuses as
        a conflict (serialization failure; the same message's row inserted by the other
        process) is run again and then sees the other's result. Inside a group commit the
        refusal goes up to the server, which runs the whole group again."""
        for attempt in range(_ATTEMPTS):
            if not self.db.depth:
                self.db.alone_next = attempt >= 2  # db.py: no starvation
            try:
                return self._handle(message, encode)
            except Exception as exc:
                if not self.db.is_retryable(exc):
                    return self._failed(message)
                if self.db.depth:
                    raise  # the group's transaction is doomed: the server runs it again
                if attempt + 1 == _ATTEMPTS:
                    return self._failed(message)

    def _failed(self, message):
        """Answer 96 for a message whose handling raised (its transaction rolled back)."""
        log.exception("%s from %s stan %s: error while handling it: answered 96",
                      _safe(message, MTI), _safe(message, 41), _safe(message, 11))
        try:
            return m.build_response(message, "96")
        except Exception:
            return None  # not even a response MTI: nothing can answer it

    def _handle(self, message, encode=None):
        if not isinstance(message, dict):
            return None
        mti = message.get(MTI)
        if type(mti) is not str or len(mti) != 4:
            return None
        terminal_id = message.get(41)
        if terminal_id is not None:
            self._seen(terminal_id)
        base = mti[:3] + "0" if mti and mti[3] in "01" else mti
        if base not in m.REQUIRED_FIELDS or base not in m.REQUEST_MTIS:
            return None
        if m.missing_fields(message, base):
            return m.build_response(message, "30")
        if base in ("0100", "0200"):
            return self._financial(message, encode)
        if base == "0220":
            return self._advice(message, encode)
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

    def _financial(self, message, encode=None):
        tid, stan, transmission = message[41], message[11], message[7]
        fingerprint = _fingerprint(message)
        kind = txn_types.by_code(message[3][:2])
        try:
            private, bad_private = _private_items(message), None
            private48.check_required(private, _base_mti(message[MTI]))
        except private48.BadPrivateData as exc:
            private, bad_private = None, exc
        # the card a sale (or any type _authorize decides) names, read in the same
        # statement as the message's own row: one statement fewer per message
        authorizes = private is not None and kind is not None \
            and txn_types.row(kind)["posting"] not in _NOT_AUTHORIZED
        key, expiry = self._card_key(message, private) if authorizes else (None, None)
        day = self._today()
        with self._tx():
            # the message's own row (a duplicate), a reversal that came first (a
            # tombstone) and the card, in one statement
            row = self.db.execute(_SEEN_CARD_SQL, (day, tid, stan, transmission, tid, stan,
                                                   transmission, key)).fetchone()
            if row[0] is not None:
                if row[0] == fingerprint and row[1]:
                    return _stored_response(row[1])  # the same reply again
                return m.build_response(message, "94")
            context = {"tid": tid, "stan": stan, "transmission": transmission,
                       "mti": message[MTI], "type": kind, "fingerprint": fingerprint,
                       "batch": None, "merchant": _merchant_of(message), "encode": encode}
            if bad_private is not None:
                log.warning("%s from %s stan %s: %s", message[MTI], tid, stan, bad_private)
                return self._store(context, message, "30")
            context["batch"] = _batch_of(private)
            if row[2] is not None:  # reversed before it arrived
                return self._store(context, message, "12", lifecycle=L.REVERSED)
            if kind is None:
                return self._store(context, message, "12")
            posting = txn_types.row(kind)["posting"]
            if posting == "void":
                return self._void(context, message)
            if posting in ("complete", "release"):
                return self._close_hold(context, message, posting)
            card = None
            if key is not None and row[11] is not None:  # the card, and its account exists
                card = dict(zip(_CARD_COLUMNS, row[3:14]))
                card["day"] = day
                self._used_today(card)
            return self._authorize(context, message, private, card=(card, expiry))

    def _authorize(self, ctx, message, private, advice=False, card=None):
        """The rules of a 0200 (and, the same ones, of a 0220 advice); what moves is the
        type row's posting rule (kapos.txn_types). `card`: (card, expiry) as _card_of
        gives them, when the caller read them already."""
        kind = ctx["type"]
        row = txn_types.row(kind)
        posting = row["posting"]
        card, expiry = self._card_of(message, private) if card is None else card
        if card is None:
            return self._store(ctx, message, "14")
        ctx["card_key"] = card["key"]
        ctx["account"] = card["account"]
        if card["decline"]:
            return self._store(ctx, message, card["decline"])
        # the earlier of the host's record and the message: a message cannot extend it
        known = [e for e in (card["expiry"] if card["kind"] == "pan" else None, expiry) if e]
        if known and min(known) < self._yymm():
            return self._store(ctx, message, "54")
        if card["kind"] == "token" and not self._token_ok(card, private):
            return self._store(ctx, message, "63")
        if 55 in message and card["kind"] == "pan" and not advice:
            verdict = self.emv.check(card["key"], (message.get(23) or "000")[-2:], message[55],
                                     amount=message.get(4), currency=message.get(49))
            if not verdict.ok:  # a cloned track with made-up chip data, a replay, a forgery
                log.warning("%s from %s stan %s: chip data refused: %s", message[MTI],
                            ctx["tid"], ctx["stan"], verdict.reason)
                return self._store(ctx, message, "05")
            ctx["emv"] = verdict
        if 52 not in message and self._pin_required(card, kind, message):
            return self._store(ctx, message, "55")
        if 52 in message:
            failures = self._pin_failures(card)
            if failures >= MAX_PIN_TRIES:
                return self._store(ctx, message, "75")
            if not self._pin_ok(card, message):
                self._set_pin_failures(card, failures + 1)
                return self._store(ctx, message, "75" if failures + 1 >= MAX_PIN_TRIES else "55")
            if failures:
                self._set_pin_failures(card, 0)
            ctx["pin_verified"] = True
        amount = 0
        if posting != "inquiry":
            amount = _amount(message)
            if amount is None or amount <= 0:
                return self._store(ctx, message, "13")
        fee = 0
        if row["fee"] and m.PRIVATE_FEE in private:
            fee = int(private[m.PRIVATE_FEE])  # n12, checked by private48
        total = amount + fee
        ctx.update(amount=amount, fee=fee, total=total)
        available = card["balance"] - card["held"]
        if posting == "inquiry":
            return self._store(ctx, message, "00", entries=[],
                               fields={54: self._balance_field(message, card["account"])})
        if posting == "credit":
            if 37 in message or 90 in message:
                return self._linked_refund(ctx, message, card)
            return self._unlinked_refund(ctx, message, card)
        if posting == "deposit":
            return self._deposit(ctx, message, card)
        target = None
        if posting == "transfer":
            target = self._target_account(private.get(m.PRIVATE_TRANSFER_TARGET))
            if target is None or target == card["account"]:
                return self._store(ctx, message, "14")
            ctx["target"] = target
        if self.velocity is not None and self._too_fast(card):
            return self._store(ctx, message, "65")
        day = card["day"]
        limit = card["daily_limit"] if card["daily_limit"] is not None else self.daily_limit
        if card["used_today"] + total > limit:
            return self._store(ctx, message, "61")
        if available - total < ACCOUNT_FLOOR:
            return self._store(ctx, message, "51")
        if posting == "hold":  # nothing moves: the amount is held while the hold is in force
            return self._store(ctx, message, "00", entries=[], lifecycle=L.HELD,
                               daily=[[card["key"], day, total]],
                               fields={54: self._balance_field(message, card["account"],
                                                               held=total)})
        credited = target if target is not None else book.merchant_account(ctx["merchant"])
        entries = [[card["account"], -total], [credited, amount]]
        if fee:
            entries.append([book.FEES, fee])
        fields = {}
        if row["balance"]:
            fields[54] = self._balance_field(message, card["account"], moved=-total)
        return self._store(ctx, message, "00", entries=entries,
                           daily=[[card["key"], day, total]], fields=fields)

    def _pin_required(self, card, kind, message):
        """PIN policy at the host: the card's service code (track 2) asks for one, or the
        transaction type does (its row, or `pin_types`) and the card has a PIN on file.
        A type whose row says 'never' (money comes in: refund, deposit) needs none."""
        row = txn_types.row(kind)
        if row["pin"] == "never":
            return False
        if self.pin_types is not None:
            wanted = kind in self.pin_types
        else:
            wanted = row["pin"] == "always" and (card["kind"] != "token" or row["token_pin"])
        if card["pvv"] is not None and wanted:
            return True
        code = _service_code(message)
        if code is None:
            return False
        rule = _SERVICE_PIN.get(code[2], "never")
        if rule == "pad":
            return message.get(22, "")[2:3] == m.PIN_CAPABLE
        return rule == "always"

    def _refund_limit(self, merchant):
        return self.refund_limits.get(merchant, self.unlinked_refund_limit)

    def _unlinked_refund(self, ctx, message, card):
        """A refund with no original: only to a card that was present (swiped, tapped, a
        token), up to the merchant's daily limit of unlinked refunds (0: none)."""
        amount = ctx["amount"]
        if 2 in message and 35 not in message:
            log.warning("refund from %s: unlinked refund to a keyed PAN refused", ctx["tid"])
            return self._store(ctx, message, "57")
        limit = self._refund_limit(ctx["merchant"])
        if limit <= 0:
            return self._store(ctx, message, "57")
        used = self.db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM txns WHERE type IN (%s) AND original_id IS NULL "
            "AND lifecycle = 'approved' AND merchant = ? AND created >= ?"
            % _sql_names(txn_types.of_posting("credit")),
            (ctx["merchant"], self._day_start())).fetchone()[0]
        if used + amount > limit:
            log.warning("refund from %s: over the merchant's unlinked refund limit", ctx["tid"])
            return self._store(ctx, message, "61")
        return self._store(ctx, message, "00", entries=[
            [card["account"], amount], [book.merchant_account(ctx["merchant"]), -amount]])

    def _linked_refund(self, ctx, message, card):
        """A refund of (part of) a sale, found by RRN (37) or field 90: at most what is
        left of it, to the card it was paid with."""
        original = self._find_original(ctx, message, by_merchant=True)
        if original is None:
            return self._store(ctx, message, "25")
        if original == "bad":
            return self._store(ctx, message, "30")
        ctx["original_id"] = original["id"]
        if original["type"] not in txn_types.row(ctx["type"])["original_types"] \
                or not L.allowed(original["lifecycle"], L.REFUND):
            return self._store(ctx, message, "12")
        if card["key"] != original["card_key"]:
            log.warning("refund from %s: card differs from the original's", ctx["tid"])
            return self._store(ctx, message, "57")
        refunded = original["refunded"] + ctx["amount"]
        if refunded > original["amount"]:
            return self._store(ctx, message, "13")
        response = self._store(ctx, message, "00", entries=[
            [original["account"], ctx["amount"]],
            [book.merchant_account(original["merchant"] or ctx["merchant"]), -ctx["amount"]]])
        self._move(original, L.REFUND, refunded=refunded)
        return response

    def _day_start(self):
        now = time.localtime(self.clock())
        return time.mktime((now.tm_year, now.tm_mon, now.tm_mday, 0, 0, 0, 0, 0, -1))

    def _move(self, txn, event, refunded=None):
        """One lifecycle transition of `txn` (a row), as the table allows it."""
        refunded = txn["refunded"] if refunded is None else refunded
        state = L.next_state(txn["lifecycle"], event, refunded, txn["amount"] or 0)
        self.db.execute("UPDATE txns SET lifecycle = ?, status = ?, refunded = ? WHERE id = ?",
                        (state, L.status_of(state), refunded, txn["id"]))
        return state

    def _available(self, account):
        """The balance less the holds in force on the account (pre-authorizations)."""
        held = self.db.execute(_HELD_SQL, (account,)).fetchone()[0]
        return self.balance(account) - held

    def _balance_field(self, message, account, moved=0, held=0):
        """Field 54: the ledger balance and the available balance (less holds) after this
        message's own posting (`moved`) or hold (`held`)."""
        currency = message.get(49, "000")
        kind = message.get(3, "000000")[2:4]
        ledger = self.balance(account) + moved
        available = self._available(account) + moved - held
        return m.format_additional_amounts([(kind, m.AMOUNT_LEDGER_BALANCE, currency, ledger),
                                            (kind, m.AMOUNT_AVAILABLE_BALANCE, currency,
                                             available)])

    def _deposit(self, ctx, message, card):
        """Cash paid in at the counter: the card's account (or token) +amount against the
        merchant's cash book (the cash it took and owes the host)."""
        amount = ctx["amount"]
        entries = [[card["account"], amount], [book.cash_account(ctx["merchant"]), -amount]]
        return self._store(ctx, message, "00", entries=entries,
                           fields={54: self._balance_field(message, card["account"],
                                                           moved=amount)})

    def _bind_original(self, ctx, message):
        """(original, None) with the original's card and account bound to `ctx`, or
        (None, the stored refusal): 25 when it is not found, 30 when it is named badly."""
        original = self._find_original(ctx, message)
        if original is None:
            return None, self._store(ctx, message, "25")
        if original == "bad":
            return None, self._store(ctx, message, "30")
        ctx["original_id"] = original["id"]
        ctx["card_key"] = original["card_key"]
        ctx["account"] = original["account"]
        return original, None

    def _close_hold(self, ctx, message, posting):
        """A completion (the final amount, at most the hold, is charged) or a release (the
        hold ends, nothing moves) of a pre-authorization named by RRN (37) or field 90."""
        original, refusal = self._bind_original(ctx, message)
        if refusal is not None:
            return refusal
        event = L.COMPLETE if posting == "complete" else L.RELEASE
        if original["type"] not in txn_types.row(ctx["type"])["original_types"] \
                or not L.allowed(original["lifecycle"], event):
            return self._store(ctx, message, "12")
        entries = []
        if posting == "complete":
            amount = _amount(message)
            if amount is None or amount <= 0 or amount > original["total"]:
                return self._store(ctx, message, "13")
            # the hold is freed as the completion is posted: only the other holds count
            if self._available(original["account"]) + original["total"] - amount < ACCOUNT_FLOOR:
                return self._store(ctx, message, "51")
            merchant = book.merchant_account(original["merchant"] or ctx["merchant"])
            entries = [[original["account"], -amount], [merchant, amount]]
            ctx.update(amount=amount, fee=0, total=amount)
        else:
            ctx.update(amount=0, fee=0, total=0)
        daily = _inverse_daily(original["effects"]) if posting == "release" else []
        response = self._store(ctx, message, "00", entries=entries, daily=daily)
        self._move(original, event)
        return response

    def _card_key(self, message, private):
        """(card key, expiry from the message or None) the message names, or (None, None)."""
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
        if type(key) is not str or (expiry is not None and not _yymm_ok(expiry)):
            return None, None
        return key, expiry

    def _card_of(self, message, private):
        """(card row, expiry from the message or None) or (None, None)."""
        key, expiry = self._card_key(message, private)
        if key is None:
            return None, None
        day = self._today()
        row = self.db.execute(_CARD_SQL, (day, key)).fetchone()
        if row is None:  # no such card, or its account is gone
            return None, None
        card = dict(row)
        card["day"] = day
        self._used_today(card)
        return card, expiry

    def _token_ok(self, card, private):
        """Anti-clone: the token's block must carry a valid MAC over its UID, and a counter
        not below the newest seen for it (a re-issued token revokes older copies)."""
        if self.token_key is None:
            return True
        uid_hex = card["key"][3:]
        try:
            block = bytes.fromhex(private.get(private48.TOKEN_DATA, ""))
            counter = verify_token_block(self.token_key, bytes.fromhex(uid_hex), block)
        except (ValueError, SecurityError) as exc:
            log.warning("token %s refused: %s", uid_hex[-6:], exc)
            return False
        row = self.db.execute("SELECT counter FROM token_counters WHERE key = ?", (card["key"],)).fetchone()
        if row is not None and counter < row["counter"]:
            log.warning("token %s refused: counter %d is older than %d", uid_hex[-6:], counter, row["counter"])
            return False
        self.db.execute("INSERT INTO token_counters (key, counter) VALUES (?, ?) ON CONFLICT(key) "
                        "DO UPDATE SET counter = CASE WHEN excluded.counter > token_counters.counter "
                        "THEN excluded.counter ELSE token_counters.counter END", (card["key"], counter))
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
            from kapos_tools.host.mac import host_working_key
            try:
                key = host_working_key(self.bdk, message[53], dukpt.PIN_ENCRYPTION)  # once per KSN
            except Exception:
                return False
        try:
            digits = pinblock.decipher_iso4(key, message[52], pan)
        except (SecurityError, ValueError, TypeError):
            return False
        try:
            return pinverify.check_pvv(self._pvv_key, pan, digits, card["pvv"])
        except (SecurityError, ValueError):
            return False
        finally:
            for i in range(len(digits)):
                digits[i] = 0

    def _target_account(self, target):
        if not target or book.is_internal(target):
            return None
        for sql, key in (("SELECT number FROM accounts WHERE number = ?", target),
                         ("SELECT account FROM cards WHERE key = ?", target),
                         ("SELECT account FROM cards WHERE key = ?", "TK:" + target.upper())):
            row = self.db.execute(sql, (key,)).fetchone()
            if row is not None:
                return row[0]
        return None

    def _find_original(self, ctx, message, by_merchant=False):
        """The transaction a void or linked refund names: by RRN (37), then field 90; on
        this terminal (a refund: any terminal of the same merchant). None, or "bad" for
        an unreadable field 90."""
        original = None
        if 37 in message:
            if by_merchant:
                original = self.db.execute("SELECT * FROM txns WHERE rrn = ? AND merchant = ?",
                                           (message[37], ctx["merchant"])).fetchone()
            else:
                original = self.db.execute("SELECT * FROM txns WHERE rrn = ? AND terminal_id = ?",
                                           (message[37], ctx["tid"])).fetchone()
        if original is None and 90 in message:
            try:
                _, ostan, otrans, _, _ = m.parse_original_data(message[90])
            except DecodeError:
                return "bad"
            original = self.db.execute("SELECT * FROM txns WHERE terminal_id = ? AND stan = ? "
                                       "AND transmission = ?",
                                       (ctx["tid"], ostan, otrans)).fetchone()
        if original is not None and original["mti"] not in ("0100", "0200", "0220"):
            return None
        return original

    def _void(self, ctx, message):
        kind = ctx["type"]
        original, refusal = self._bind_original(ctx, message)
        if refusal is not None:
            return refusal
        voided = txn_types.get(original["type"])
        if voided is None or voided["totals"] != txn_types.row(kind)["undoes"] \
                or not L.allowed(original["lifecycle"], L.VOID):
            return self._store(ctx, message, "12")
        amount = _amount(message)
        if amount != original["amount"]:
            return self._store(ctx, message, "13")
        parent = self._parent_of(original)
        if parent is not None and not L.allowed(parent["lifecycle"], L.REFUND_UNDONE):
            return self._store(ctx, message, "12")
        entries = book.inverse(book.own_entries(self.db, original["id"]))
        if self._below_floor(entries):
            return self._store(ctx, message, "51")
        ctx.update(amount=amount, fee=0, total=original["total"])
        daily = _inverse_daily(original["effects"])
        response = self._store(ctx, message, "00", entries=entries, daily=daily)
        self._move(original, L.VOID)
        self.db.execute("UPDATE txns SET voided_by = (SELECT id FROM txns WHERE rrn = ?) "
                        "WHERE id = ?", (response[37], original["id"]))
        if parent is not None:
            self._move(parent, L.REFUND_UNDONE, refunded=parent["refunded"] - original["amount"])
        return response

    def _parent_of(self, txn):
        """The sale a linked refund refunds (None for anything else)."""
        if txn["original_id"] is None or _posting_of(txn) != "credit":
            return None
        return self.db.execute("SELECT * FROM txns WHERE id = ?", (txn["original_id"],)).fetchone()

    def _hold_of(self, txn):
        """The pre-authorization a completion or release closed (None for anything else)."""
        if txn["original_id"] is None or _posting_of(txn) not in _HOLD_UNDONE:
            return None
        return self.db.execute("SELECT * FROM txns WHERE id = ?", (txn["original_id"],)).fetchone()

    def _below_floor(self, entries):
        for account, amount in entries:
            if amount < 0 and not book.is_internal(account):
                balance = self.balance(account)
                if balance is not None and self._available(account) + amount < ACCOUNT_FLOOR:
                    return True
        return False

    def _store(self, ctx, message, code, entries=None, daily=None, fields=None, lifecycle=None):
        """Post `entries` and count `daily` (approved only), record the transaction and
        its response, which is final from here on: it is stored encoded by ctx["encode"]
        (the server's: the reply as the terminal gets it, MAC included) or codec.encode."""
        approved = m.is_approved(code)
        seq = self.db.next_value("rrn")  # PostgreSQL: a sequence, not a row every message locks
        rrn = "%012d" % seq
        extra = {37: rrn}
        auth_code = None
        if approved:
            auth_code = "%06d" % ((seq * 7919 + 104729) % 1000000)
            extra[38] = auth_code
        if fields:
            extra.update(fields)
        if ctx.get("pin_verified"):  # the terminal prints PIN VERIFIED only on this
            extra[48] = private48.pack([(private48.PIN_VERIFIED, "1")])
        icc = self.emv.response_icc(ctx.get("emv"), code)  # the ARPC for the card
        if icc is not None:
            extra[55] = icc
        response = m.build_response(message, code, extra)
        state = lifecycle or (L.APPROVED if approved else L.DECLINED)
        effects = _effects_json(daily or []) if approved else None
        values = (ctx["tid"], ctx["stan"], ctx["transmission"], _base_mti(ctx["mti"]),
                  ctx.get("type"), ctx.get("amount"), ctx.get("fee"), ctx.get("total"),
                  ctx.get("card_key"), ctx.get("account"), code, auth_code, rrn,
                  ctx.get("batch"), L.status_of(state), effects,
                  # a blob as bytearray: sqlite3 binds bytes through its adapter look-up
                  bytearray((ctx.get("encode") or codec.encode)(response)),
                  ctx.get("fingerprint"), self.clock(), state, ctx.get("merchant"))
        target, original_id = ctx.get("target"), ctx.get("original_id")
        if target is None and original_id is None:  # (most): both left NULL, not bound
            txn_id = self.db.insert(_INSERT_TXN, values)
        else:
            txn_id = self.db.insert(_INSERT_LINKED_TXN, values + (target, original_id))
        if approved:
            book.post(self.db, entries or [], txn_id=txn_id)
            self._count_daily(daily or [])
        return response

    def _count_daily(self, daily):
        """What counts toward each card's daily limit. Inside a group transaction without
        savepoints the additions wait for COMMIT (one statement for all its messages;
        _used_today adds them to what the table says); a subtraction writes them first,
        as the table's total never goes below 0 (only the sum before it is clamped)."""
        db = self.db
        for card_key, day, delta in daily:
            if delta > 0 and db.deferring:
                pending = db.defer(_DAILY, dict, _flush_daily)
                key = (card_key, day)
                pending[key] = pending.get(key, 0) + delta
                continue
            if db.deferred(_DAILY):
                db.flush_deferred()
            db.execute_rows(_DAILY_UPSERT, 3, (card_key, day, delta), _DAILY_ADD)

    def _used_today(self, card):
        """card["used_today"] as the table says, plus this transaction's deferred counts."""
        pending = self.db.deferred(_DAILY)
        if pending:
            card["used_today"] += pending.get((card["key"], card["day"]), 0)

    # ------------------------------------------------------------ 0220

    def _advice(self, message, encode=None):
        """A transaction the terminal decided without the host: the same rules as a 0200
        (an advice cannot credit more, or debit deeper, than a 0200 could); answered 0230
        with the host's decision."""
        tid, stan, transmission = message[41], message[11], message[7]
        fingerprint = _fingerprint(message)
        with self._tx():
            row = self.db.execute("SELECT fingerprint, response FROM txns WHERE terminal_id = ? "
                                  "AND stan = ? AND transmission = ?",
                                  (tid, stan, transmission)).fetchone()
            if row is not None:
                if row["fingerprint"] == fingerprint and row["response"]:
                    stored = _stored_response(row["response"])
                    return m.build_response(message, stored[39], {37: stored[37]})
                return m.build_response(message, "94")
            kind = txn_types.by_code(message[3][:2])
            ctx = {"tid": tid, "stan": stan, "transmission": transmission, "mti": "0220",
                   "type": kind, "fingerprint": fingerprint, "batch": None,
                   "merchant": _merchant_of(message), "encode": encode}
            try:
                private = _private_items(message)
            except private48.BadPrivateData as exc:
                log.warning("0220 from %s stan %s: %s", tid, stan, exc)
                return self._store(ctx, message, "30")
            ctx["batch"] = _batch_of(private)
            if kind is None or txn_types.row(kind)["posting"] not in _ADVICE_POSTINGS \
                    or not m.is_approved(message[39]):
                return self._store(ctx, message, "12")  # nothing to apply
            return self._authorize(ctx, message, private, advice=True)

    # ------------------------------------------------------------ reversals

    def _reversal(self, message):
        tid = message[41]
        try:
            omti, ostan, otrans, _, _ = m.parse_original_data(message[90])
            _private_items(message)
        except (DecodeError, private48.BadPrivateData):
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
            code, entries, applied = self._reversal_decision(original)
            reversal_id = self.db.insert(
                "INSERT INTO reversals (terminal_id, orig_mti, orig_stan, orig_transmission, "
                "mti, stan, reason, code, txn_id, applied, created) VALUES (?, ?, ?, ?, ?, ?, ?, "
                "?, ?, ?, ?)",
                (tid, omti, ostan, otrans, message[MTI], message[11], message.get(39), code,
                 original["id"] if original is not None else None, int(applied), self.clock()))
            if applied:
                book.post(self.db, entries, txn_id=original["id"], reversal_id=reversal_id)
                self._count_daily(_inverse_daily(original["effects"]))
            if code == "00":
                self._after_reversal(original)
            return m.build_response(message, code)

    def _reversal_decision(self, original):
        """(code, entries to post, whether they are posted) for a reversal of `original`:
        00 undone now or already undone (by its void), 25 never seen, 12 the lifecycle
        does not allow it (e.g. partly refunded, or its void was reversed after the
        original had been), 51 undoing it would take an account below its floor."""
        if original is None:
            return "25", [], False
        found = L.cell(original["lifecycle"], L.REVERSE)
        if found is None:
            return "12", [], False
        parent = self._parent_of(original)
        if parent is not None and not L.allowed(parent["lifecycle"], L.REFUND_UNDONE):
            return "12", [], False
        hold = self._hold_of(original)
        if hold is not None and not L.allowed(hold["lifecycle"], _HOLD_UNDONE[_posting_of(original)]):
            return "12", [], False
        if _posting_of(original) == "void":
            voided = self.db.execute("SELECT * FROM txns WHERE id = ?",
                                     (original["original_id"],)).fetchone()
            if voided is None or not L.allowed(voided["lifecycle"], L.VOID_UNDONE):
                return "12", [], False
            grand = self._parent_of(voided)
            if grand is not None and (not L.allowed(grand["lifecycle"], L.REFUND)
                                      or grand["refunded"] + voided["amount"] > grand["amount"]):
                return "12", [], False
        if found[1] != L.UNDO:
            return "00", [], False
        entries = book.inverse(book.own_entries(self.db, original["id"]))
        if self._below_floor(entries):
            return "51", [], False
        if hold is not None and self._available(hold["account"]) + sum(
                amount for account, amount in entries if account == hold["account"]) \
                - hold["total"] < ACCOUNT_FLOOR:
            return "51", [], False  # the hold in force again would take the card below its floor
        return "00", entries, True

    def _after_reversal(self, original):
        """The lifecycle moves of an accepted reversal: the original, and the sale of a
        reversed linked refund or the original of a reversed void."""
        if original is None:
            return
        undoes = L.cell(original["lifecycle"], L.REVERSE)[1] == L.UNDO
        self._move(original, L.REVERSE)
        if not undoes:
            return
        parent = self._parent_of(original)
        if parent is not None:
            self._move(parent, L.REFUND_UNDONE, refunded=parent["refunded"] - original["amount"])
        hold = self._hold_of(original)
        if hold is not None:  # a reversed completion or release: the hold is in force again
            self._move(hold, _HOLD_UNDONE[_posting_of(original)])
        if _posting_of(original) == "void":
            voided = self.db.execute("SELECT * FROM txns WHERE id = ?",
                                     (original["original_id"],)).fetchone()
            self._move(voided, L.VOID_UNDONE)
            self.db.execute("UPDATE txns SET voided_by = NULL WHERE id = ?", (voided["id"],))
            voided = self.db.execute("SELECT * FROM txns WHERE id = ?", (voided["id"],)).fetchone()
            grand = self._parent_of(voided)  # a voided linked refund in force again
            if grand is not None:
                self._move(grand, L.REFUND, refunded=grand["refunded"] + voided["amount"])

    # ------------------------------------------------------------ reconciliation

    def totals(self, terminal_id, batch):
        """Host totals of one terminal batch (same rules as the terminal journal)."""
        totals = dict.fromkeys(m.TOTALS_FIELDS, 0)
        rows = self.db.execute(
            "SELECT t.type, t.total, o.type AS original_type, o.total AS original_total "
            "FROM txns t LEFT JOIN txns o ON o.id = t.original_id "
            "WHERE t.terminal_id = ? AND t.batch IS NOT DISTINCT FROM ? AND t.status = 'approved' "
            "AND t.mti IN ('0100', '0200', '0220')", (terminal_id, batch))
        for row in rows:
            add_to_totals(totals, row["type"], row["total"], row["original_type"],
                          row["original_total"])
        return totals

    def _reconcile(self, message):
        tid = message[41]
        try:
            private = _private_items(message)
            private48.check_required(private, "0500")
        except private48.BadPrivateData as exc:
            log.warning("0500 from %s: %s", tid, exc)
            return m.build_response(message, "30")
        batch = _batch_of(private)
        with self._tx():
            row = self.db.execute("SELECT response FROM batches WHERE terminal_id = ? AND "
                                  "number IS NOT DISTINCT FROM ?", (tid, batch)).fetchone()
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
            "AND type IN (%s) AND created >= ?"
            % _sql_names([t for t in txn_types.names() if txn_types.row(t)["daily"] > 0]),
            (card["key"], self.clock() - seconds)).fetchone()[0]
        if recent >= count:
            log.warning("velocity: card %s had %d debits in %d s: declined 65", card["key"][-4:], recent, seconds)
            return True
        return False

    def _alert(self, message):
        """A terminal's anomaly alert: logged and kept (`alerts()`, --show-ledger)."""
        try:
            private = _private_items(message)
        except private48.BadPrivateData:
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
        lines.insert(0, "ledger %s (%s)" % (self.path, self.db.engine))
        lines.append("reversals: %d (%d applied)" % tuple(self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(applied), 0) FROM reversals").fetchone()))
        for b in self.batches():
            lines.append("batch %s #%s: %s" % (b["terminal_id"], b["number"], b["code"]))
        problems = self.check()
        lines.append("consistency: " + ("ok" if not problems else "; ".join(problems)))
        return "\n".join(lines)


# ---------------------------------------------------------------- helpers

# the holds in force name their lifecycle as a literal: that is what lets the database
# use the partial index txns_held (schema.py), which holds only those rows
_HELD = "lifecycle = '%s'" % L.HELD
_HELD_SQL = "SELECT COALESCE(SUM(total), 0) FROM txns WHERE account = ? AND " + _HELD

# a card with what the rules of a 0200 read about it: its account's balance, the holds in
# force on that account, and what counted toward its daily limit today
_CARD_COLUMNS = ("key", "card_id", "account", "kind", "expiry", "pvv", "decline", "daily_limit",
                 "balance", "held", "used_today")
_CARD_VALUES = (
    "c.key, c.card_id, c.account, c.kind, c.expiry, c.pvv, c.decline, c.daily_limit, "
    "a.balance AS balance, "
    "(SELECT COALESCE(SUM(h.total), 0) FROM txns h WHERE h.account = c.account "
    " AND h." + _HELD + ") AS held, "
    "COALESCE((SELECT d.total FROM daily d WHERE d.card_key = c.key AND d.day = ?), 0) "
    " AS used_today ")
_CARD_SQL = ("SELECT " + _CARD_VALUES +
             "FROM cards c JOIN accounts a ON a.number = c.account WHERE c.key = ?")

# a 0200's own row (a duplicate: its fingerprint and response), a reversal of it that
# arrived first (a tombstone), and its card (_CARD_SQL; all NULL for no card, or one
# whose account is gone: a.balance is NOT NULL), as one row
_SEEN_CARD_SQL = (
    "SELECT t.fingerprint, t.response, r.id, " + _CARD_VALUES + "FROM (SELECT 1 AS one) AS q "
    "LEFT JOIN txns t ON t.terminal_id = ? AND t.stan = ? AND t.transmission = ? "
    "LEFT JOIN reversals r ON r.terminal_id = ? AND r.orig_stan = ? AND r.orig_transmission = ? "
    "LEFT JOIN cards c ON c.key = ? LEFT JOIN accounts a ON a.number = c.account")

# a transaction's row; _INSERT_LINKED_TXN also names its target and original (sqlite3
# binds a None through its adapter look-up, ~3.6k instructions: a column not named is NULL
# for nothing)
_TXN_COLUMNS = ("terminal_id, stan, transmission, mti, type, amount, fee, total, card_key, "
                "account, code, auth_code, rrn, batch, status, effects, response, fingerprint, "
                "created, lifecycle, merchant")
_INSERT_TXN = "INSERT INTO txns (%s) VALUES (%s)" % (_TXN_COLUMNS, ", ".join(["?"] * 21))
_INSERT_LINKED_TXN = "INSERT INTO txns (%s, target, original_id) VALUES (%s)" % (
    _TXN_COLUMNS, ", ".join(["?"] * 23))

# postings whose rules are not _authorize's (they name an original, not a card)
_NOT_AUTHORIZED = ("void", "complete", "release")

# the daily counts a group transaction keeps until COMMIT (db.defer): {(card, day): sum}
_DAILY = "daily"
# the rows of one statement name distinct (card, day): PostgreSQL refuses an upsert that
# would change one row twice
_DAILY_UPSERT = "INSERT INTO daily (card_key, day, total)"  # 3 values a row
_DAILY_ADD = (" ON CONFLICT (card_key, day) DO UPDATE SET total = CASE WHEN daily.total + "
              "excluded.total < 0 THEN 0 ELSE daily.total + excluded.total END")


def _flush_daily(db, pending):
    # in key order: two host processes' transactions take the rows' locks in one order
    rows = []
    for (card_key, day), total in sorted(pending.items()):
        rows.extend((card_key, day, total))
    db.execute_rows(_DAILY_UPSERT, 3, rows, _DAILY_ADD)


# what undoing a completion or release does to its hold
_HOLD_UNDONE = {"complete": L.COMPLETE_UNDONE, "release": L.RELEASE_UNDONE}


class LedgerKeyError(KaposError):
    """The ledger holds data made under keys other than the host's key file's."""


def _key_check(key):
    return hmac.new(bytes(key), b"kapos host pvv key check", hashlib.sha256).hexdigest()[:16]


def _posting_of(txn):
    """The posting rule of a stored transaction's type (None: a type no row knows)."""
    row = txn_types.get(txn["type"]) if txn["type"] else None
    return row["posting"] if row is not None else None


def _sql_names(names):
    """Type names as an SQL list of literals (they are row names: letters and '_')."""
    for name in names:
        if not name.replace("_", "").isalnum():
            raise ValueError("transaction type name %r" % name)
    return ", ".join("'%s'" % name for name in names) or "''"


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
    """What makes two requests with the same key the same request (a repeat, 0201 or
    0221, is the same request as its first send)."""
    parts = [_base_mti(message[MTI])]
    for number in sorted(message.keys() - _NOT_FINGERPRINTED):
        value = message[number]
        # "%d=%s" % (number, value) with bytes in hex, without a format per field
        parts.append(_FIELD_PREFIX[number] + (
            value if type(value) is str else value.hex() if type(value) is bytes else str(value)))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


_FIELD_PREFIX = tuple("%d=" % number for number in range(129))


# what a repeat (0201, 0221) of a MACed request carries anew: the KSN (53; each message
# takes the next counter), and what is enciphered or MACed under its keys: the PIN block
# (52) and the MAC (64 / 128); its card data (48 EC) was deciphered before this
_NOT_FINGERPRINTED = {MTI, 52, 53, 64, 128}


def _private_items(message):
    """private48.parse(message), kept per field 48 text: most messages carry one of a few
    texts (a batch number, once its card data is deciphered). A copy each time."""
    text = message.get(48)
    if type(text) is not str:  # none (parse: {}), or not text (parse refuses it)
        return private48.parse(message)
    items = _PRIVATE_ITEMS.get(text)
    if items is None:
        items = private48.parse(message)  # BadPrivateData: not kept
        if len(_PRIVATE_ITEMS) >= _PRIVATE_ITEMS_KEPT:
            _PRIVATE_ITEMS.clear()
        _PRIVATE_ITEMS[text] = items
    return dict(items)


_PRIVATE_ITEMS = {}  # field 48 text -> its checked items
_PRIVATE_ITEMS_KEPT = 256


def _stored_response(data):
    """A stored response, decoded without its MAC field (the server MACs each reply
    with the keys of the request it answers)."""
    response = codec.decode(data)
    response.pop(64, None)
    response.pop(128, None)
    return response


def _base_mti(mti):
    return mti[:3] + "0" if mti[3] in "01" else mti


def _batch_of(private):
    value = private.get(private48.BATCH)
    return int(value) if value and value.isdigit() else None


def _merchant_of(message):
    value = message.get(42)
    return value.strip() if type(value) is str else ""


def _amount(message):
    """Field 4 as an int, or None when absent or not n12."""
    value = message.get(4)
    if type(value) is not str or len(value) != 12 or not value.isdigit():
        return None
    return int(value)


def _yymm_ok(text):
    return type(text) is str and len(text) == 4 and text.isdigit() and "01" <= text[2:] <= "12"


_DIGITS = "0123456789"


def _service_code(message):
    """The service code of field 35 (3 digits after PAN, separator and YYMM), or None."""
    track2 = message.get(35)
    if type(track2) is not str:
        return None
    if track2.isascii():  # the PAN's digits, without a loop over them
        pos = len(track2) - len(track2.lstrip(_DIGITS))
    else:
        pos = 0
        while pos < len(track2) and track2[pos].isdigit():
            pos += 1
    code = track2[pos + 5:pos + 8]
    return code if len(code) == 3 and code.isdigit() else None


def _effects_json(daily):
    """json.dumps({"daily": daily}) for its usual shape, a [card key, day, amount] row or
    none, without the encoder's set-up per call (the same text: tested)."""
    if len(daily) == 1 and len(daily[0]) == 3 and type(daily[0][2]) is int:
        key, day, amount = daily[0]
        if type(key) is str and type(day) is str:
            return '{"daily": [[%s, %s, %d]]}' % (_json_string(key), _json_string(day), amount)
    return json.dumps({"daily": daily})


def _inverse_daily(effects_json):
    try:
        daily = json.loads(effects_json or "{}").get("daily", [])
    except ValueError:
        return []
    return [[k, day, -d] for k, day, d in daily]


def _safe(message, field):
    try:
        value = message.get(field)
    except Exception:
        return "?"
    return value if type(value) is str and len(value) <= 8 else "?"
