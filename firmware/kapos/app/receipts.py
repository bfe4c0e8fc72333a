"""Receipts: a transaction record in, a printer-neutral Receipt out.

The same Receipt is printed as ESC/POS (ports.shared.escpos_receipt), drawn as a PNG
(ports.shared.receipt_png) and rendered as text (Receipt.text), for the console and tests.
Records are already masked (see core.handlers._record): nothing sensitive reaches here.
"""

import time

from kapos.app.money import format_amount
from kapos.core import txn_types as T
from kapos.hal.output import PAPER_CHARS, Line, Receipt  # the Printer interface's value types (L1)

MERCHANT = "merchant"
CUSTOMER = "customer"


def _pair(left, right, width=PAPER_CHARS):
    return left + " " * max(1, width - len(left) - len(right)) + right


def _when(epoch):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def build_receipt(record, settings, copy="customer"):
    exp = settings.exponent
    cur = record.get("currency") or settings.currency

    def money(minor):
        return format_amount(minor, exp, cur)

    rule = Line("-" * PAPER_CHARS)
    lines = [
        Line(record.get("merchant_name") or settings.merchant_name, "center", bold=True),
        Line("Merchant %s" % record["merchant_id"], "center"),
        Line("Terminal %s" % record["terminal_id"], "center"),
        Line(_pair(_when(record["time"]), "Ref %06d" % record["ref"])),
        rule,
        Line(T.row(record["type"]).get("receipt") or T.label(record["type"]).upper(),
             bold=True, double=True),
    ]
    if record.get("card"):
        brand = (record.get("brand") or "").upper()
        lines.append(Line(_pair(brand, record["card"])))
        if record.get("entry"):
            lines.append(Line(_pair("Entry", record["entry"].upper())))
    if record.get("account"):
        lines.append(Line(_pair("Account", record["account"].upper())))
    if record.get("target"):
        lines.append(Line(_pair("To account", record["target"])))
    if record["type"] == T.VOID and record.get("original_ref"):
        lines.append(Line(_pair("Voids ref", "%06d" % record["original_ref"])))
    if record.get("amount"):
        lines.append(Line(_pair("Amount", money(record["amount"]))))
    if record.get("fee"):
        lines.append(Line(_pair("Fee", money(record["fee"]))))
    if record.get("total"):
        lines.append(Line(_pair("TOTAL", money(record["total"])), bold=True))
    lines.append(rule)
    outcome = record["outcome"]
    lines.append(Line(outcome.upper(), "center", bold=True, double=True))
    if outcome == "approved":
        if record.get("auth_code"):
            lines.append(Line(_pair("Auth code", record["auth_code"])))
    else:
        lines.append(Line(_pair("Response", record.get("code") or "--")))
        if record.get("text"):
            lines.append(Line(record["text"], "center"))
    if record.get("rrn"):
        lines.append(Line(_pair("RRN", record["rrn"])))
    if record.get("balance") is not None:
        lines.append(Line(_pair("Balance", money(record["balance"])), bold=True))
    if record.get("pin_verified"):
        lines.append(Line("PIN VERIFIED", "center"))
    if record.get("signature") and copy == MERCHANT:  # the merchant keeps the signed copy
        lines += [Line(""), Line(""), Line("X" + "_" * (PAPER_CHARS - 1)), Line("Cardholder signature", "center")]
    if record.get("daily_left") is not None:  # what the card may still spend today
        lines.append(Line(_pair("Daily left", format_amount(record["daily_left"], exp))))
    lines += [Line(""), Line("%s copy" % copy.capitalize(), "center"),
              Line("Test terminal - not a bank", "center")]
    return Receipt(lines, copy=copy)


def build_receipts(record, settings):
    """The copies a finished transaction prints, in order: the customer's, then the
    merchant's (last, so it is the one at hand to be signed and kept)."""
    return [build_receipt(record, settings, CUSTOMER), build_receipt(record, settings, MERCHANT)]


def duplicate(receipt):
    """A reprint: the same receipt marked DUPLICATE at the top and the bottom."""
    mark = Line("*** DUPLICATE ***", "center", bold=True)
    return Receipt([mark] + list(receipt.lines) + [mark], copy=receipt.copy)
