"""The machine's context: the transaction in progress plus what outlives it."""


class Transaction:
    """The transaction being built. Holds the Card (clear PAN inside it) only until the
    authorization is sent; the record kept afterwards is masked."""

    def __init__(self, txn_type, ref):
        self.type = txn_type
        self.ref = ref  # terminal-local reference; replies must echo it
        self.amount = 0
        self.digits = ""  # amount being typed
        self.target = ""  # transfer destination account
        self.card = None
        self.account = None  # 'debit' | 'credit' | 'prepaid'
        self.fee = 0
        self.pin = None  # bytearray while PIN entry runs; handed to SEAL_PIN then dropped
        self.pin_len = 0
        self.pin_block = None  # opaque sealed PIN block
        self.ksn = None
        self.original = None  # void: the masked record of the sale being voided
        self.token_data = None  # a closed-loop token's anti-clone block, read with its UID
        self.sent = False  # an AUTHORIZE went out: giving up now needs a cancellation
        self.merchant_pin = None  # bytearray while the merchant PIN is typed; wiped after the check
        self.merchant_pin_len = 0
        self.merchant_pin_tries = 0  # wrong merchant PINs in this transaction
        self.read_failures = 0  # malformed swipes/taps in this transaction (settings.card_read_tries)
        self.chip = False  # the card was read from the chip reader (removing it ends the transaction)
        self.chip_failed = False  # the chip could not be read: a swipe of it is accepted as fallback
        self.chip_complete = False  # the card wants the host's answer (second GENERATE AC)
        self.reply = None  # the host's reply, kept while the card checks it
        self.choices = ()  # application names offered to the cardholder (APP_CHOICE)
        self.tap_choice = False  # those names came from a tapped card (its TAP follows the pick)

    def total(self):
        return self.amount + self.fee


class Context:
    def __init__(self, settings):
        self.settings = settings
        self.txn = None
        self.next_ref = 1
        self.notice = None  # (kind, message) shown on the idle screen
        self.last_result = None  # 'approved' | 'declined' | 'cancelled' | 'error' | None
        self.last_record = None  # masked record of the last finished transaction
        self.last_sale = None  # masked record of the last approved, unvoided sale
        self.last_open = {}  # type -> record of its last approved one still open (a hold)
        self.daily_date = None
        self.daily_total = 0
        self.counters = {"approved": 0, "declined": 0, "cancelled": 0, "errors": 0,
                         "read_errors": 0, "pin_cancels": 0, "tech_pin_failures": 0,
                         "merchant_pin_failures": 0}
        self.monitor_times = {}  # anomaly rule -> recent event times (core/monitor.py)
        self.alarms = 0
        self.locked_reason = None
        self.card_inserted = False  # a card sits in the chip reader's slot (INSERT / REMOVE)
        # technician functions (core/tech.py)
        self.tech_pin = None
        self.tech_pin_len = 0
        self.tech_guard = None  # wrong PINs and the lock they made (core/tech_lock.py)
        self.tech_page = 0
        self.tech_function = None  # the DIAG being waited for
        self.tech_info = None  # (title, lines) shown in TECH_INFO
        self.tech_info_at = 0
        self.key_test_last = None
        self.key_test_count = 0

    def spent_today(self, date):
        if self.daily_date != date:
            return 0
        return self.daily_total

    def add_daily(self, date, amount):
        if self.daily_date != date:
            self.daily_date = date
            self.daily_total = 0
        self.daily_total = max(0, self.daily_total + amount)
