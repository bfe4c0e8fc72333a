#!/usr/bin/env python3
"""Printer figures: ESC/POS bytes per receipt (python-escpos, POS-5890 profile, the same
code path as the real printer driver) and modeled print time at the board's baud rate.

Model: serial time = bytes x 10 bits / baud (8N1); mechanism time = dot rows / speed, at
203 dpi and a typical 58 mm TTL printer's 50 mm/s (double-height lines take twice the rows).
The receipt prints while bytes still arrive, so the slower of the two is the print time."""

import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from escpos.printer import Dummy  # noqa: E402

from kapos.app.receipts import build_receipt  # noqa: E402
from kapos.core.settings import Settings  # noqa: E402
from kapos.ports.shared import escpos_receipt  # noqa: E402

DOTS_PER_MM = 8  # 203 dpi
SPEED_MM_S = 50.0
ROW_DOTS = 24  # font A line height with spacing

RECORD = {
    "ref": 1, "type": "sale", "outcome": "approved", "amount": 1235, "fee": 25, "total": 1260,
    "currency": "EUR", "account": "credit", "card": "************4444", "brand": "mastercard",
    "entry": "swipe", "target": None, "code": "00", "text": "Approved", "auth_code": "654321",
    "rrn": "000000000042", "stan": "000042", "balance": None, "pin_verified": False, "signature": True,
    "original_ref": None, "time": 1795000000.0, "date": "20261125",
    "terminal_id": "KAPOS001", "merchant_id": "KAPOS-MERCHANT1", "merchant_name": "Kapos test shop",
}


def main():
    settings = Settings()
    for label, record in (("sale, credit, signature", RECORD),
                          ("sale, debit, PIN", dict(RECORD, account="debit", signature=False, pin_verified=True))):
        receipt = build_receipt(record, settings)
        printer = Dummy(profile="POS-5890")
        escpos_receipt.print_receipt(printer, receipt)
        data = printer.output
        rows = sum(2 if line.double else 1 for line in receipt.lines)
        mechanism = rows * ROW_DOTS / DOTS_PER_MM / SPEED_MM_S
        print("%-26s %5d bytes, %2d lines, paper %.0f mm" % (label, len(data), len(receipt.lines),
                                                               rows * ROW_DOTS / DOTS_PER_MM))
        for baud in (9600, 19200, 115200):
            serial = len(data) * 10.0 / baud
            print("    at %6d baud: serial %.2f s, mechanism %.2f s -> about %.2f s"
                  % (baud, serial, mechanism, max(serial, mechanism)))


if __name__ == "__main__":
    main()
