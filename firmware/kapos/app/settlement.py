"""The settlement result as short lines (21 columns) for the screen and the slip."""

from kapos.app.money import format_amount
from kapos.host.client import net

ROWS = (("Sales", "debits"), ("Voids", "debits_reversal"), ("Refunds", "credits"))


def settlement_lines(result, exponent=2):
    """Lines for a HostAuthorizer.settle() result: batch, verdict, counts, net totals."""
    totals, host_totals = result["totals"], result.get("host_totals")
    lines = ["Batch %06d" % result["batch"], result["text"]]
    for label, key in ROWS:
        lines.append("%-7s%3d%11s" % (label, totals[key + "_count"],
                                      format_amount(totals[key + "_amount"], exponent)))
    lines.append("%-10s%11s" % ("Net", format_amount(net(totals), exponent)))
    if host_totals and host_totals != {k: totals.get(k) for k in host_totals}:
        lines.append("%-10s%11s" % ("Host net", format_amount(net(host_totals), exponent)))
    return lines
