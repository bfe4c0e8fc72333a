"""Card brand from the BIN, as data: (brand, low, high) prefix ranges + PAN lengths.

A PAN matches a row when its first len(low) digits lie in [low, high]; the longest
matching prefix wins, so '6011' (Discover) needs no ordering against shorter rows.
"""

from kapos.card.pan import is_digits, PAN_MIN, PAN_MAX

VISA = "visa"
MASTERCARD = "mastercard"
AMEX = "amex"
DISCOVER = "discover"
JCB = "jcb"
UNIONPAY = "unionpay"
MAESTRO = "maestro"
DINERS = "diners"
CLOSED_LOOP = "closed-loop"
UNKNOWN = "unknown"

BIN_TABLE = (
    (VISA, "4", "4"),
    (MASTERCARD, "51", "55"),
    (MASTERCARD, "2221", "2720"),
    (AMEX, "34", "34"),
    (AMEX, "37", "37"),
    (DISCOVER, "6011", "6011"),
    (DISCOVER, "644", "649"),
    (DISCOVER, "65", "65"),
    (JCB, "3528", "3589"),
    (UNIONPAY, "62", "62"),
    (MAESTRO, "50", "50"),
    (MAESTRO, "56", "58"),
    (MAESTRO, "6304", "6304"),
    (MAESTRO, "6759", "6759"),
    (MAESTRO, "6761", "6763"),
    (DINERS, "300", "305"),
    (DINERS, "36", "36"),
    (DINERS, "38", "39"),
)

_ANY_LENGTH = tuple(range(PAN_MIN, PAN_MAX + 1))

PAN_LENGTHS = {
    VISA: (13, 16, 18, 19),
    MASTERCARD: (16,),
    AMEX: (15,),
    DISCOVER: (16, 17, 18, 19),
    JCB: (16, 17, 18, 19),
    UNIONPAY: (16, 17, 18, 19),
    MAESTRO: _ANY_LENGTH,
    DINERS: (14, 15, 16, 17, 18, 19),
}


def brand_of(pan, private_prefixes=()):
    """Brand name for `pan`; a configured private (closed-loop) prefix beats the table."""
    if not is_digits(pan):
        return UNKNOWN
    if isinstance(private_prefixes, str):  # a lone prefix, not its characters
        private_prefixes = (private_prefixes,)
    for prefix in private_prefixes:
        if prefix and pan.startswith(prefix):
            return CLOSED_LOOP
    best, best_len = UNKNOWN, 0
    for brand, low, high in BIN_TABLE:
        n = len(low)
        if n > best_len and len(pan) >= n and low <= pan[:n] <= high:
            best, best_len = brand, n
    return best


def pan_length_ok(brand, length):
    """True if a PAN of `length` digits is allowed for `brand` (others: 12-19)."""
    return length in PAN_LENGTHS.get(brand, _ANY_LENGTH)
