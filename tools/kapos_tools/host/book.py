"""Double-entry postings of the reference host.

Every money movement is a set of entries that sums to zero, posted in one go:

    sale / cash     card -(amount + fee)   merchant:<id> +amount   fees +fee
    transfer        card -(amount + fee)   target account +amount  fees +fee
    refund          card +amount           merchant:<id> -amount
    deposit         card +amount           cash:<id> -amount (the cash the merchant took)
    completion      card -final            merchant:<id> +final  (a hold itself posts nothing)
    void, reversal  the inverse of the original's own entries

Card accounts are rows of `accounts` (balance = initial + their entries); the host's own
accounts - a settlement account per merchant and the fee income - are `books` (balance =
their entries). Every sale of a merchant credits its book, so one row per book would be
one row that every transaction of every host process updates (on PostgreSQL: a
serialization conflict between any two concurrent transactions of one merchant). A book is
therefore SHARDS rows of `book_shards`; a transaction posts to the shard its database
transaction drew at random (db.py: `lot`), and `books` is a view summing the shards. Internal account names contain a ':' or are "fees", which no
card account number does, so a transfer can never target one.

    post(db, entries, txn_id=..., reversal_id=...)   entries: [[account, amount], ...]
    own_entries(db, txn_id)                          what a transaction itself posted
    check(db)                                        problems, naming what breaks

Inside a group transaction that runs without savepoints (db.py: `deferring`), the
entries rows and the internal books' shard rows are written once, before COMMIT, for all
its messages together (one INSERT, one upsert per book) rather than per message; card
accounts are updated at once (the rules read them). Everything here that reads entries
or books writes the deferred rows first (db.flush_deferred()).
"""

from kapos.errors import KaposError

FEES = "fees"
SHARDS = 8  # rows per internal book: two concurrent transactions collide 1 time in 8


class PostingError(KaposError):
    """A posting that does not balance or names an account the ledger does not have
    (a bug: the message's SQL transaction is rolled back)."""


def merchant_account(merchant_id):
    return "merchant:" + ((merchant_id or "").strip() or "?")


def cash_account(merchant_id):
    """The merchant's cash book: deposits paid in at its counter (what it owes the host)."""
    return "cash:" + ((merchant_id or "").strip() or "?")


def is_internal(account):
    return account == FEES or ":" in account


def inverse(entries):
    return [[account, -amount] for account, amount in entries]


_UPDATE_ACCOUNT = "UPDATE accounts SET balance = balance + ? WHERE number = ?"
_ADD_TO_BOOK = ("INSERT INTO book_shards (account, shard, balance) VALUES (?, ?, ?) ON CONFLICT "
                "(account, shard) DO UPDATE SET balance = book_shards.balance + excluded.balance")
_ENTRIES = "INSERT INTO entries (txn_id, reversal_id, account, amount)"  # 4 values a row
# the same rows when none is a reversal's: reversal_id left to its default (NULL). Python's
# sqlite3 binds a None through its adapter look-up (~3.6k instructions each); a column not
# named costs nothing
_TXN_ENTRIES = "INSERT INTO entries (txn_id, account, amount)"


def _insert_entries(db, rows):
    """rows: flat, 4 values a row (txn_id, reversal_id, account, amount)."""
    if any(rows[1::4]):  # a reversal's entries among them (its ids are never 0)
        db.execute_rows(_ENTRIES, 4, rows)
    else:
        rows = rows[:]
        del rows[1::4]
        db.execute_rows(_TXN_ENTRIES, 3, rows)


def _new_pending():
    return [[], {}]  # entries rows (4 values each), {(book, shard): amount}


def _flush_pending(db, pending):
    rows, books = pending
    if rows:
        _insert_entries(db, rows)
    for (account, shard), amount in books.items():
        # even a net 0 (a refund and a sale of one merchant in one group): its entries
        # are there, so is its book's row, as when each message writes its own
        add_to_book(db, account, amount, shard)


def post(db, entries, txn_id=None, reversal_id=None):
    """Apply balanced `entries` to the balances and record them."""
    if sum(amount for _, amount in entries) != 0:
        raise PostingError("a posting of %d entries does not balance" % len(entries))
    shard = getattr(db, "lot", 0) % SHARDS
    pending = db.defer("book", _new_pending, _flush_pending) if db.deferring else None
    rows = []
    for account, amount in entries:
        if amount == 0:
            continue
        if is_internal(account):
            if pending is None:
                add_to_book(db, account, amount, shard)
            else:
                key = (account, shard)
                pending[1][key] = pending[1].get(key, 0) + amount
        elif db.execute(_UPDATE_ACCOUNT, (amount, account)).rowcount != 1:
            raise PostingError("a posting names an unknown account")
        rows.extend((txn_id, reversal_id, account, amount))
    if rows:
        if pending is None:  # one statement for all of them
            _insert_entries(db, rows)
        else:
            pending[0].extend(rows)


def add_to_book(db, account, amount, shard=0):
    """`amount` onto one shard row of the internal book `account`."""
    db.execute(_ADD_TO_BOOK, (account, shard, amount))


def book_balance(db, account):
    """An internal book's balance (the sum of its shards), 0 for a book never posted to."""
    db.flush_deferred()
    return db.execute("SELECT COALESCE(SUM(balance), 0) FROM book_shards WHERE account = ?",
                      (account,)).fetchone()[0]


def own_entries(db, txn_id):
    db.flush_deferred()
    return [[r[0], r[1]] for r in db.execute(
        "SELECT account, amount FROM entries WHERE txn_id = ? AND reversal_id IS NULL ORDER BY id",
        (txn_id,))]


def check(db):
    """Problems of the double-entry book (an empty list when it holds):
    every posting sums to zero, all entries sum to zero, every card account's balance is
    its initial balance plus its entries, every internal account's balance its entries."""
    db.flush_deferred()
    problems = []
    for row in db.execute(
            "SELECT e.txn_id, e.reversal_id, SUM(e.amount) AS total, t.terminal_id, t.stan, t.type "
            "FROM entries e LEFT JOIN txns t ON t.id = e.txn_id "
            "GROUP BY e.txn_id, e.reversal_id, t.terminal_id, t.stan, t.type "
            "HAVING SUM(e.amount) != 0"):
        if row["reversal_id"] is not None:
            problems.append("reversal %d of txn %s: its entries sum to %d"
                            % (row["reversal_id"], row["txn_id"], row["total"]))
        else:
            problems.append("txn %s (%s stan %s %s): its entries sum to %d" % (
                row["txn_id"], (row["terminal_id"] or "?").strip(), row["stan"], row["type"],
                row["total"]))
    total = db.execute("SELECT COALESCE(SUM(amount), 0) FROM entries").fetchone()[0]
    if total != 0:
        problems.append("all entries sum to %d, not 0" % total)
    posted = {r[0]: r[1] for r in db.execute(
        "SELECT account, SUM(amount) FROM entries GROUP BY account")}
    known = set()
    for a in db.execute("SELECT number, balance, initial FROM accounts ORDER BY number"):
        known.add(a["number"])
        expected = a["initial"] + posted.get(a["number"], 0)
        if a["balance"] != expected:
            problems.append("account %s: balance %d, initial + entries say %d%s" % (
                _masked(a["number"]), a["balance"], expected, _last_txn(db, a["number"])))
    for b in db.execute("SELECT account, balance FROM books ORDER BY account"):
        known.add(b["account"])
        if b["balance"] != posted.get(b["account"], 0):
            problems.append("book %s: balance %d, entries say %d"
                            % (b["account"], b["balance"], posted.get(b["account"], 0)))
    for account in sorted(set(posted) - known):
        problems.append("entries for an account the ledger does not have: %s" % _masked(account))
    return problems


def _last_txn(db, account):
    row = db.execute("SELECT txn_id FROM entries WHERE account = ? ORDER BY id DESC LIMIT 1",
                     (account,)).fetchone()
    return " (last posting: txn %s)" % row[0] if row is not None else ""


def _masked(key):
    if key and key.isdigit() and len(key) >= 13:
        return key[:6] + "*" * (len(key) - 10) + key[-4:]
    return key
