"""Transaction types as rows of data: adding a type is adding a row (and its menu key).

amount   : the flow asks for an amount
target   : the flow asks for a destination account (transfer)
card     : the flow asks for a card
pin      : 'always' | 'card' (debit account or the card's service code) | 'never'
fee      : the fee table applies
daily    : approved amounts count toward the daily limit (+1 adds, -1 removes)
merchant : the merchant PIN is asked for before the flow starts (money going back out)
"""

SALE = "sale"
REFUND = "refund"
VOID = "void"
BALANCE = "balance"
CASH = "cash"
TRANSFER = "transfer"

TYPES = {
    SALE: {"label": "Sale", "amount": True, "target": False, "card": True, "pin": "card", "fee": True, "daily": 1, "merchant": False},
    REFUND: {"label": "Refund", "amount": True, "target": False, "card": True, "pin": "never", "fee": False, "daily": 0, "merchant": True},
    VOID: {"label": "Void", "amount": False, "target": False, "card": False, "pin": "never", "fee": False, "daily": -1, "merchant": True},
    BALANCE: {"label": "Balance", "amount": False, "target": False, "card": True, "pin": "always", "fee": False, "daily": 0, "merchant": False},
    CASH: {"label": "Cash", "amount": True, "target": False, "card": True, "pin": "always", "fee": True, "daily": 1, "merchant": False},
    TRANSFER: {"label": "Transfer", "amount": True, "target": True, "card": True, "pin": "always", "fee": True, "daily": 1, "merchant": False},
}

# Idle menu: key -> type. Order is the menu order on screen.
MENU = (("1", SALE), ("2", REFUND), ("3", VOID), ("4", BALANCE), ("5", CASH), ("6", TRANSFER))


def row(txn_type):
    return TYPES[txn_type]


def label(txn_type):
    return TYPES[txn_type]["label"]


def from_menu_key(key):
    for menu_key, txn_type in MENU:
        if menu_key == key:
            return txn_type
    return None
