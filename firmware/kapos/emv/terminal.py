"""Terminal configuration and the per-transaction terminal data a kernel sends to cards.

Nothing is zero by accident: the unpredictable number 9F37 comes from an injected CSPRNG
(os.urandom on CPython), the date 9A and type 9C from the transaction, amounts 9F02/9F03,
currency 5F2A and country 9F1A from the configuration. `TerminalConfig` refuses to make
terminal data without a random source."""

from kapos.errors import ConfigError

# 9C transaction types (ISO 8583:1987 processing code, first two digits)
TXN_TYPES = {"sale": 0x00, "purchase": 0x00, "cash": 0x01, "withdrawal": 0x01,
             "refund": 0x20, "balance": 0x31, "transfer": 0x40}

VISA = "visa"
MCHIP = "mchip"
# Terminal AID list: (AID prefix, kernel, label). Partial match: a card AID that starts
# with the prefix (EMV Book 1 12.3.1, partial name selection allowed for these).
DEFAULT_AIDS = (
    (bytes.fromhex("A0000000031010"), VISA, "Visa"),
    (bytes.fromhex("A0000000032010"), VISA, "Visa Electron"),
    (bytes.fromhex("A0000000033010"), VISA, "Visa Interlink"),
    (bytes.fromhex("A0000000041010"), MCHIP, "Mastercard"),
    (bytes.fromhex("A0000000043060"), MCHIP, "Maestro"),
    (bytes.fromhex("A0000003591010028001"), MCHIP, "girocard"),
    (bytes.fromhex("A0000000651010"), MCHIP, "JCB"),
)


def bcd(number, nbytes):
    text = str(int(number))
    text = "0" * (nbytes * 2 - len(text)) + text
    if len(text) > nbytes * 2:
        raise ConfigError("value does not fit %d BCD bytes" % nbytes)
    return bytes.fromhex(text)


class TerminalConfig:
    """What a terminal tells cards about itself, and its limits (minor units).

    country, currency: ISO 3166 / ISO 4217 numeric. terminal_type 9F35 (0x22: attended,
    merchant, online only). capabilities 9F33: manual + magstripe + IC / enciphered online
    PIN + signature + no CVM / no ODA (we do none). ttq 9F66: qVSDC + EMV contact chip +
    online PIN + signature, online cryptogram required, CVM required added per amount.
    Limits: contactless_limit (above it: no contactless), cvm_limit (above it a CVM is
    required), floor_limit (above it TVR says so; kapos is online-only anyway)."""

    def __init__(self, country=826, currency=826, terminal_type=0x22,
                 capabilities=b"\xe0\x40\x08", additional=b"\x60\x00\xf0\xa0\x01",
                 ttq=b"\x36\x80\x40\x00", contactless_limit=10000000, cvm_limit=10000,
                 floor_limit=0, aids=DEFAULT_AIDS, random_bytes=None, ifd_serial=b"KAPOS001",
                 merchant_category=b"\x59\x99", terminal_id=b"KAPOS001", online_pin=True):
        self.country = int(country)
        self.currency = int(currency)
        self.terminal_type = terminal_type
        self.capabilities = bytes(capabilities)
        self.additional = bytes(additional)
        self.ttq = bytes(ttq)
        self.contactless_limit = int(contactless_limit)
        self.cvm_limit = int(cvm_limit)
        self.floor_limit = int(floor_limit)
        self.aids = tuple(aids)
        self.random_bytes = random_bytes
        self.ifd_serial = bytes(ifd_serial)
        self.merchant_category = bytes(merchant_category)
        self.terminal_id = bytes(terminal_id)
        self.online_pin = online_pin

    def kernel_for(self, aid):
        """(kernel, label) of the first terminal AID that `aid` starts with, else None."""
        for prefix, kernel, label in self.aids:
            if bytes(aid[:len(prefix)]) == prefix:
                return kernel, label
        return None

    def unpredictable_number(self):
        if self.random_bytes is None:
            raise ConfigError("EMV: the terminal has no random source for 9F37")
        un = bytes(self.random_bytes(4))
        if len(un) != 4:
            raise ConfigError("EMV: the random source gave no 4 bytes")
        return un


class Transaction:
    """One transaction as the kernel sees it: type (TXN_TYPES key), amount and other
    amount (minor units), date 'YYMMDD' and time 'hhmmss' (the terminal's clock)."""

    def __init__(self, txn_type, amount, date, time="000000", other=0):
        if txn_type not in TXN_TYPES:
            raise ConfigError("EMV: unknown transaction type %s" % txn_type)
        if len(date) != 6 or not date.isdigit() or len(time) != 6 or not time.isdigit():
            raise ConfigError("EMV: the date is YYMMDD and the time hhmmss")
        if type(amount) is not int or amount < 0 or type(other) is not int or other < 0:
            raise ConfigError("EMV: amounts are non-negative ints (minor units)")
        self.type = txn_type
        self.amount = amount
        self.other = other
        self.date = date
        self.time = time


def terminal_data(config, txn, contactless=True):
    """{tag: bytes} of the data a terminal supplies for this transaction (a fresh 9F37)."""
    ttq = bytearray(config.ttq)
    if txn.amount > config.cvm_limit:
        ttq[1] |= 0x40  # CVM required
    return {
        0x9F02: bcd(txn.amount, 6), 0x9F03: bcd(txn.other, 6),
        0x9F1A: bcd(config.country, 2), 0x5F2A: bcd(config.currency, 2),
        0x9A: bytes.fromhex(txn.date), 0x9F21: bytes.fromhex(txn.time),
        0x9C: bytes((TXN_TYPES[txn.type],)), 0x9F37: config.unpredictable_number(),
        0x9F35: bytes((config.terminal_type,)), 0x9F33: config.capabilities,
        0x9F40: config.additional, 0x9F66: bytes(ttq) if contactless else None,
        0x9F1E: config.ifd_serial, 0x9F15: config.merchant_category,
        0x9F1C: config.terminal_id, 0x95: bytes(5), 0x9B: bytes(2),
        0x9F34: b"\x3f\x00\x00", 0x9F4E: b"", 0x8A: None, 0x91: None,
    }
