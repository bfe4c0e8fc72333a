"""Transaction types as rows of data (L0), shared by the terminal and the reference host.

A transaction type is one row here: everything the terminal's flow, the card rules, the
ISO 8583 client, the journal's totals, the receipt and the host's ledger need to know
about it. Nobody else keeps a list of types. Adding a type is adding a row with
`register()` (and, if it needs new behaviour at the host, a posting rule there).

    label      the screen and receipt name ("Sale")
    menu       the idle-menu key ("1"), or None (reached another way: void_refund)
    code       field 3 positions 1-2, the ISO 8583 processing code ("00")
    category   the service-code restriction it falls under: 'goods' (goods and
               services, refunds, voids, transfers), 'cash' (cash out or in) or
               'inquiry' (no money moves)
    pin        'always' | 'card' (debit account or the card's service code) | 'never'
    amount     the flow asks for an amount
    target     the flow asks for a destination account (transfer, deposit)
    card       the flow asks for a card (False: void, completion - they name an original)
    fee        the fee table applies (the fee is added to the total)
    daily      approved amounts count toward the daily limit (+1 adds, -1 removes)
    merchant   the merchant PIN is asked for before the flow starts
    totals     reconciliation class: 'debit' | 'credit' | 'reversal' | 'inquiry' | 'none'
    posting    the host's posting rule: 'debit' | 'credit' | 'inquiry' | 'transfer' |
               'deposit' | 'void' | 'hold' | 'complete' | 'release'
    original   the flow names an original transaction ('last': the last approved one of
               `original_types`)
    receipt    the heading printed on the receipt (double width: at most 16 characters)
    signature  a credit account without PIN prints a signature line (False: no money
               leaves the cardholder, e.g. a deposit or an inquiry)
    token_pin  a closed-loop token still needs a PIN when `pin` says 'always' (False:
               e.g. a token's balance inquiry, which shows only the token's own balance)
    balance    the host's reply carries the balance (field 54: ledger and available)
    undoes     a 'void' posting: the totals class of the originals it undoes ('debit':
               sale, cash, transfer, completion; 'credit': refund, deposit)

Posting rules (the reference host, tools/kapos_tools/host/ledger.py; double entry in
book.py, what may happen afterwards in lifecycle.py):
    debit     card -(amount + fee), merchant +amount, fees +fee
    transfer  card -(amount + fee), target account +amount, fees +fee
    credit    card +amount, merchant -amount (a refund, linked to a sale or not)
    deposit   card +amount, the merchant's cash book -amount (cash taken at the counter)
    inquiry   nothing moves
    hold      nothing moves; the amount is held (available balance = balance - holds)
    complete  of a hold: card -final (at most the hold), merchant +final; hold closed
    release   of a hold: nothing moves; the hold is closed
    void      the inverse of the original's own entries
"""

_DEFAULTS = {
    "menu": None, "category": "goods", "pin": "never", "amount": True, "target": False,
    "card": True, "fee": False, "daily": 0, "merchant": False, "totals": "none",
    "posting": "debit", "original": None, "original_types": (), "signature": True,
    "token_pin": True, "balance": False, "undoes": None,
}

CATEGORIES = ("goods", "cash", "inquiry")
TOTALS = ("debit", "credit", "reversal", "inquiry", "none")
PIN_RULES = ("always", "card", "never")
POSTINGS = ("debit", "credit", "inquiry", "transfer", "deposit", "void", "hold", "complete",
            "release")

TYPES = {}
RECEIPT_HEADING_MAX = 16  # printed double width on a 32-column roll


def register(name, **fields):
    """Add (or replace) the row of transaction type `name`; returns the row."""
    row = dict(_DEFAULTS)
    row.update(fields)
    row["name"] = name
    row.setdefault("label", name[:1].upper() + name[1:])  # str.title: not in MicroPython
    row.setdefault("receipt", row["label"].upper())
    if len(row["receipt"]) > RECEIPT_HEADING_MAX:
        raise ValueError("transaction type %s: receipt heading over %d characters"
                         % (name, RECEIPT_HEADING_MAX))
    code = row.get("code")
    if type(code) is not str or len(code) != 2 or not all("0" <= c <= "9" for c in code):
        raise ValueError("transaction type %s: code must be 2 digits" % name)
    if row["category"] not in CATEGORIES or row["totals"] not in TOTALS \
            or row["pin"] not in PIN_RULES or row["posting"] not in POSTINGS:
        raise ValueError("transaction type %s: bad category, totals, pin or posting" % name)
    for other in TYPES.values():
        if other["name"] != name and other["code"] == code:
            raise ValueError("transaction type %s: code %s is %s's" % (name, code, other["name"]))
        if other["name"] != name and row["menu"] is not None and other["menu"] == row["menu"]:
            raise ValueError("transaction type %s: menu key %s is %s's" % (name, row["menu"],
                                                                      other["name"]))
    TYPES[name] = row
    return row


def unregister(name):
    TYPES.pop(name, None)


def row(name):
    """The row of `name`; KeyError for a type nobody registered."""
    return TYPES[name]


def get(name):
    return TYPES.get(name)


def by_code(code):
    """The type name whose processing code is `code` (2 digits), or None."""
    for name, r in TYPES.items():
        if r["code"] == code:
            return name
    return None


def names():
    return list(TYPES)


def menu():
    """((key, name), ...) in key order: the idle menu."""
    keyed = [(r["menu"], name) for name, r in TYPES.items() if r["menu"] is not None]
    keyed.sort()
    return tuple(keyed)


def of_totals(kind):
    return tuple(name for name, r in TYPES.items() if r["totals"] == kind)


def of_posting(*rules):
    """The names of the types whose posting rule is one of `rules`."""
    return tuple(name for name, r in TYPES.items() if r["posting"] in rules)


SALE = "sale"
REFUND = "refund"
VOID = "void"
VOID_REFUND = "void_refund"
BALANCE = "balance"
CASH = "cash"
TRANSFER = "transfer"
DEPOSIT = "deposit"
PREAUTH = "preauth"
COMPLETION = "completion"
RELEASE = "release"

register(SALE, label="Sale", menu="1", code="00", pin="card", fee=True, daily=1,
         totals="debit", posting="debit")
register(REFUND, label="Refund", menu="2", code="20", merchant=True, totals="credit",
         posting="credit", original_types=(SALE,))
register(VOID, label="Void", menu="3", code="02", amount=False, card=False, daily=-1,
         merchant=True, totals="reversal", posting="void", original="last",
         original_types=(SALE, CASH, TRANSFER, REFUND), undoes="debit")
register(VOID_REFUND, label="Void", code="22", amount=False, card=False, daily=0,
         totals="reversal", posting="void", undoes="credit")
register(BALANCE, label="Balance", menu="4", code="31", category="inquiry", pin="always",
         amount=False, totals="inquiry", posting="inquiry", signature=False, token_pin=False,
         balance=True)
register(CASH, label="Cash", menu="5", code="01", category="cash", pin="always", fee=True,
         daily=1, totals="debit", posting="debit", balance=True)
register(TRANSFER, label="Transfer", menu="6", code="40", pin="always", target=True,
         fee=True, daily=1, totals="debit", posting="transfer")
# cash paid in at the counter, credited to the card's account or the token (merchant PIN)
register(DEPOSIT, label="Deposit", menu="7", code="21", category="cash", merchant=True,
         totals="credit", posting="deposit", signature=False, balance=True,
         receipt="CASH DEPOSIT")
# a hold on funds (kapos-87 private codes 90-92: ISO 8583:1987 leaves 90-99 to private use)
register(PREAUTH, label="Pre-auth", menu="8", code="90", pin="card", totals="none",
         posting="hold", receipt="PRE-AUTH HOLD")
register(COMPLETION, label="Completion", menu="9", code="91", card=False, totals="debit",
         posting="complete", original="last", original_types=(PREAUTH,),
         receipt="COMPLETION")
register(RELEASE, label="Release", code="92", amount=False, card=False, totals="none",
         posting="release", original="last", original_types=(PREAUTH,), signature=False,
         receipt="HOLD RELEASED")
