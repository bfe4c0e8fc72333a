"""The 3-digit magstripe service code (ISO/IEC 7813), decoded into rules.

Reserved digit values are refused (CardRejected): an unknown restriction must not
be read as "no restriction".
"""

from kapos import txn_types
from kapos.errors import CardReadError, CardRejected
from kapos.card.pan import is_digits

# Restriction categories of the transaction types (each type's row in kapos.txn_types
# names its category: goods and services, cash, inquiry).
ALL = ("goods", "cash", "inquiry")
_NO_CASH = ("goods", "inquiry")

# digit 1 -> (interchange, chip present)
_DIGIT1 = {
    "1": ("international", False),
    "2": ("international", True),
    "5": ("national", False),
    "6": ("national", True),
    "7": ("private", False),
    "9": ("test", False),
}
# digit 2 -> online authorization required (2: by issuer, 4: by issuer unless bilateral)
_DIGIT2 = {"0": False, "2": True, "4": True}
# digit 3 -> (allowed categories, PIN rule: 'always' | 'never' | 'pad')
_DIGIT3 = {
    "0": (ALL, "always"),
    "1": (ALL, "never"),
    "2": (_NO_CASH, "never"),  # goods and services only (no cash)
    "3": (("cash", "inquiry"), "always"),  # ATM only
    "4": (("cash",), "never"),  # cash only
    "5": (_NO_CASH, "always"),
    "6": (ALL, "pad"),  # PIN where a PIN pad exists
    "7": (_NO_CASH, "pad"),
}


def category_of(txn_type):
    """The restriction category of a registered transaction type (CardRejected if none)."""
    row = txn_types.get(txn_type)
    if row is None:
        raise CardRejected("unknown transaction type")
    return row["category"]


class ServiceCode:
    """Decoded service code. Attributes: code, interchange, international, national,
    private, test, chip_present, online_only, allowed_types."""

    def __init__(self, code):
        if not is_digits(code) or len(code) != 3:
            raise CardReadError("service code must be 3 digits")
        for pos, table in ((1, _DIGIT1), (2, _DIGIT2), (3, _DIGIT3)):
            if code[pos - 1] not in table:
                raise CardRejected("service code: reserved value in position %d" % pos)
        self.code = code
        self.interchange, self.chip_present = _DIGIT1[code[0]]
        self.international = self.interchange == "international"
        self.national = self.interchange == "national"
        self.private = self.interchange == "private"
        self.test = self.interchange == "test"
        self.online_only = _DIGIT2[code[1]]
        self.allowed_categories, self._pin = _DIGIT3[code[2]]

    def pin_required(self, has_pin_pad=True):
        if self._pin == "pad":
            return bool(has_pin_pad)
        return self._pin == "always"

    @property
    def allowed_types(self):
        """The registered transaction types this card may be used for."""
        return tuple(name for name in txn_types.names()
                     if txn_types.row(name)["category"] in self.allowed_categories)

    def allows(self, txn_type):
        return category_of(txn_type) in self.allowed_categories

    def __eq__(self, other):
        return isinstance(other, ServiceCode) and other.code == self.code

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(self.code)

    def __repr__(self):
        return "ServiceCode('%s')" % self.code
