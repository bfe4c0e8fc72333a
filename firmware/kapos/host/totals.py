"""Reconciliation totals (portable): one rule for what an approved transaction adds, used
by the terminal's client, the Pico W's batch and the reference host; and the totals a
host puts in its 0510. Its own module so a small board loads this and not the client."""

from kapos import txn_types
from kapos.errors import LocalProtocolError
from kapos.host.sale_messages import TOTALS_FIELDS

RECONCILED = "00"
NOT_RECONCILED = "95"  # ISO 8583:1987 "reconcile error"


def parse_host_totals(reply):
    """Reconciliation totals the host put in a 0510 (fields 74-89), or None."""
    found = {}
    for key, (number, size) in TOTALS_FIELDS.items():
        value = reply.get(number)
        if value is not None and value.isdigit():
            found[key] = int(value)
    return found or None


def add_to_totals(totals, txn_type, total, original_type=None, original_total=None):
    """Add one approved transaction to reconciliation `totals` (terminal and host).
    A type of totals class 'none' (a hold) counts nowhere; an unknown type is refused."""
    row = txn_types.get(txn_type)
    if row is None:
        raise LocalProtocolError("unknown transaction type %s" % txn_type)
    kind = row["totals"]
    if kind == "debit":
        totals["debits_count"] += 1
        totals["debits_amount"] += total
        if row["posting"] == "transfer":
            totals["transfer_count"] += 1
    elif kind == "credit":
        totals["credits_count"] += 1
        totals["credits_amount"] += total
    elif kind == "reversal":
        amount = original_total if original_total is not None else total
        voided = txn_types.get(original_type) if original_type else None
        if txn_type == txn_types.VOID_REFUND or (voided is not None
                                                  and voided["totals"] == "credit"):
            totals["credits_reversal_count"] += 1
            totals["credits_reversal_amount"] += amount
        else:
            totals["debits_reversal_count"] += 1
            totals["debits_reversal_amount"] += amount
    elif kind == "inquiry":
        totals["inquiries_count"] += 1


def net(totals):
    """Debits less credits, each net of its reversals."""
    return (totals.get("debits_amount", 0) - totals.get("debits_reversal_amount", 0)) \
        - (totals.get("credits_amount", 0) - totals.get("credits_reversal_amount", 0))
