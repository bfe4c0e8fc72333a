"""PAN helpers: Luhn (ISO/IEC 7812-1 Annex B), masking and the BIN.

Display rule (PCI DSS): never more than BIN + last 4; kapos shows only the last 4.
"""

from kapos.errors import CardReadError

PAN_MIN = 12
PAN_MAX = 19


def is_digits(text):
    """True for a non-empty str of ASCII 0-9 (str.isdigit() would also accept '²')."""
    if not isinstance(text, str) or not text:
        return False
    for c in text:
        if c < "0" or c > "9":
            return False
    return True


def _luhn_sum(digits, double_rightmost):
    total = 0
    double = double_rightmost
    for i in range(len(digits) - 1, -1, -1):
        d = ord(digits[i]) - 48
        if double:
            d *= 2
            if d > 9:
                d -= 9
        total += d
        double = not double
    return total


def luhn_valid(digits):
    """True if `digits` (check digit last) passes the Luhn mod-10 check."""
    if not is_digits(digits) or len(digits) < 2:
        return False
    return _luhn_sum(digits, False) % 10 == 0


def luhn_check_digit(partial):
    """The digit to append to `partial` so the whole passes Luhn."""
    if not is_digits(partial):
        raise ValueError("Luhn input must be digits")
    # With the check digit still to come, the rightmost digit here is doubled.
    return str((10 - _luhn_sum(partial, True) % 10) % 10)


def check_pan(pan):
    """Raise CardReadError unless `pan` is 12-19 digits passing Luhn."""
    if not is_digits(pan):
        raise CardReadError("PAN is not all digits")
    if len(pan) < PAN_MIN or len(pan) > PAN_MAX:
        raise CardReadError("PAN length must be %d-%d digits" % (PAN_MIN, PAN_MAX))
    if not luhn_valid(pan):
        raise CardReadError("PAN fails Luhn check")


def mask_pan(pan):
    """All but the last 4 digits as '*': '************1111'."""
    n = len(pan)
    if n <= 4:  # too short to show anything safely
        return "*" * n
    return "*" * (n - 4) + pan[-4:]


def short_mask(pan):
    """'**** 1111' for screens and receipts."""
    if len(pan) <= 4:
        return "****"
    return "**** " + pan[-4:]


def bin_of(pan, length=6):
    """The issuer identification number: first 6 (or 8) digits."""
    if length not in (6, 8):
        raise ValueError("BIN length must be 6 or 8")
    return pan[:length]
