"""Terminal settings the core needs, as a plain object (built by app.config from TOML)."""

DEFAULT_TIMEOUTS = {"input": 30, "card": 30, "pin": 30, "host": 15, "notice": 4}


class Settings:
    def __init__(self, terminal_id="KAPOS001", merchant_id="KAPOS-MERCHANT1",
                 merchant_name="Kapos test shop", currency="EUR", currency_code="978",
                 exponent=2, per_transaction=50000, daily=200000, per_type=None,
                 fees=None, timeouts=None, max_amount_digits=9, pin_min=4, pin_max=12,
                 has_pin_pad=True, accept_unknown_brands=False, private_bins=(),
                 tech_pin="0000", monitor=None, merchant_pin_check=None, card_read_tries=3,
                 emv=None, tech_pin_check=None, has_chip_reader=False):
        self.terminal_id = terminal_id
        self.merchant_id = merchant_id
        self.merchant_name = merchant_name
        self.currency = currency
        self.currency_code = currency_code
        self.exponent = exponent
        self.per_transaction = per_transaction  # default per-transaction limit
        self.per_type = per_type or {}  # txn type -> per-transaction limit
        self.daily = daily  # daily limit over approved sale/cash/transfer
        # fees: account ('debit', 'credit', 'prepaid') -> {'fixed': minor, 'rate_bp': basis points}
        self.fees = fees if fees is not None else {
            "debit": {"fixed": 0, "rate_bp": 0},
            "credit": {"fixed": 0, "rate_bp": 150},
        }
        t = dict(DEFAULT_TIMEOUTS)
        if timeouts:
            t.update(timeouts)
        self.timeouts = t
        self.max_amount_digits = max_amount_digits
        self.pin_min = pin_min
        self.pin_max = pin_max
        self.has_pin_pad = has_pin_pad
        self.accept_unknown_brands = accept_unknown_brands
        self.monitor = monitor or {}  # rule -> {'count': n, 'window': seconds}
        self.tech_pin = tech_pin  # technician menu: the sim board's plain default, see tech_pin_check
        # A salted hash of the technician PIN (config or host parameter set
        # security.technician_pin_hash), checked like the merchant PIN: verify(buffer, length).
        # When set, the plain tech_pin above is never accepted.
        self.tech_pin_check = tech_pin_check
        self.private_bins = tuple(private_bins)  # PAN prefixes of the user's own closed-loop cards
        # The merchant PIN (refund, void) is checked by an object the composition injects:
        # verify(buffer, length) -> bool against a salted hash (app/merchantpin.py), so the
        # core holds no PIN and does no hashing. None: refunds and voids are refused.
        self.merchant_pin_check = merchant_pin_check
        # Reads (swipe or tap) a transaction allows before a malformed card ends it.
        self.card_read_tries = card_read_tries
        # EMV terminal data and limits (minor units): country_code (ISO 3166 numeric),
        # contactless_limit (above it: insert or swipe), cvm_limit (above it: online PIN)
        self.emv = dict(emv or {"country_code": "826", "contactless_limit": 5000, "cvm_limit": 5000})

        # A contact chip reader on this board: "insert, swipe or tap", a swipe of a chip card
        # (service code 2xx/6xx) asks for the chip, fallback to the stripe after a chip failure.
        self.has_chip_reader = has_chip_reader

    def limit_for(self, txn_type):
        return self.per_type.get(txn_type, self.per_transaction)
