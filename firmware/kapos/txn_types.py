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
    receipt    the heading printed on the receipt
    signature  a credit account without PIN prints a signature line (False: no money
               leaves the cardholder, e.g. a deposit or an inquiry)
    token_pin  a closed-loop token still needs a PIN when `pin` says 'always' (False:
               e.g. a token's balance inquiry, which shows only the token's own balance)
"""

_DEFAULTS = {
    "menu": None, "category": "goods", "pin": "never", "amount": True, "target": False,
    "card": True, "fee": False, "daily": 0, "merchant": False, "totals": "none",
    "posting": "debit", "original": None, "original_types": (), "signature": True,
    "token_pin": True,
}

CATEGORIES = ("goods", "cash", "inquiry")
TOTALS = ("debit", "credit", "reversal", "inquiry", "none")
PIN_RULES = ("always", "card", "never")

TYPES = {}


def register(name, **fields):
    """Add (or replace) the row of transaction type `name`; returns the row."""
    row = dict(_DEFAULTS)
    row.update(fields)
    row["name"] = name
    row.setdefault("label", name[:1].upper() + name[1:])  # str.title: not in MicroPython
    row.setdefault("receipt", row["label"].upper())
    code = row.get("code")
    if type(code) is not str or len(code) != 2 or not all("0" <= c <= "9" for c in code):
        raise ValueError("transaction type %s: code must be 2 digits" % name)
    if row["category"] not in CATEGORIES or row["totals"] not in TOTALS \
            or row["pin"] not in PIN_RULES:
        raise ValueError("transaction type %s: bad category, totals or pin" % name)
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


SALE = "sale"
REFUND = "refund"
VOID = "void"
VOID_REFUND = "void_refund"
BALANCE = "balance"
CASH = "cash"
TRANSFER = "transfer"

register(SALE, label="Sale", menu="1", code="00", pin="card", fee=True, daily=1,
         totals="debit", posting="debit")
register(REFUND, label="Refund", menu="2", code="20", merchant=True, totals="credit",
         posting="credit", original_types=(SALE,))
register(VOID, label="Void", menu="3", code="02", amount=False, card=False, daily=-1,
         merchant=True, totals="reversal", posting="void", original="last",
         original_types=(SALE, CASH, TRANSFER, REFUND))
register(VOID_REFUND, label="Void", code="22", amount=False, card=False, daily=0,
         totals="reversal", posting="void")
register(BALANCE, label="Balance", menu="4", code="31", category="inquiry", pin="always",
         amount=False, totals="inquiry", posting="inquiry", signature=False, token_pin=False)
register(CASH, label="Cash", menu="5", code="01", category="cash", pin="always", fee=True,
         daily=1, totals="debit", posting="debit")
register(TRANSFER, label="Transfer", menu="6", code="40", pin="always", target=True,
         fee=True, daily=1, totals="debit", posting="transfer")
