"""Amount formatting for screens and receipts (integer minor units in, text out)."""


def format_amount(minor, exponent=2, currency=""):
    sign = "-" if minor < 0 else ""
    minor = abs(int(minor))
    if exponent:
        units, cents = divmod(minor, 10 ** exponent)
        text = "%s%d.%0*d" % (sign, units, exponent, cents)
    else:
        text = "%s%d" % (sign, minor)
    return ("%s %s" % (currency, text)) if currency else text
