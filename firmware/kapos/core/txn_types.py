"""The core's view of the transaction types: the rows live in `kapos.txn_types` (L0),
shared with the card rules, the host client, the journal and the reference host.

Adding a type is adding a row there (`kapos.txn_types.register`); the flow reads it:

amount   : the flow asks for an amount
target   : the flow asks for a destination account (transfer, deposit)
card     : the flow asks for a card
pin      : 'always' | 'card' (debit account or the card's service code) | 'never'
fee      : the fee table applies
daily    : approved amounts count toward the daily limit (+1 adds, -1 removes)
merchant : the merchant PIN is asked for before the flow starts (money going back out)
original : the flow names an original ('last': the last approved of `original_types`)
"""

from kapos.txn_types import (BALANCE, CASH, REFUND, SALE, TRANSFER, VOID,  # noqa: F401
                             VOID_REFUND, TYPES, menu, row)


def label(txn_type):
    return TYPES[txn_type]["label"]


def from_menu_key(key):
    for menu_key, txn_type in menu():
        if menu_key == key:
            return txn_type
    return None
