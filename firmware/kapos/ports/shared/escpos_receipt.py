"""Print an app.receipts.Receipt through python-escpos (any escpos printer object)."""


def print_receipt(printer, receipt, cut=True):
    for line in receipt.lines:
        printer.set(align=line.align, bold=line.bold, double_height=line.double,
                    double_width=line.double, normal_textsize=not line.double)
        printer.text(line.text + "\n")
    printer.set(normal_textsize=True, bold=False, align="left")
    if cut:
        printer.cut()
