"""The terminal's ISO 8583 dialect, as data ("kapos-87").

Base standard: ISO 8583:1987 (MTI version digit 0). Where the 1987 standard gives a
field format, we use it; the three deliberate deviations are marked DEVIATION below.

Message layout
--------------
    MTI | primary bitmap | [secondary bitmap] | data elements in ascending field order

- MTI: 4 ASCII digits, version digit must be "0" (1987). Message class, function and
  origin digits are not checked by the codec (see `kapos.host.messages`).
- Bitmaps: binary, 8 bytes each, most significant bit of the first byte = field 1.
  Bit 1 set means a secondary bitmap follows; it is set if and only if at least one
  field 65-128 is present (a secondary bitmap with no field set is an error). Bit 65
  (tertiary bitmap in the standard) is not used by this dialect.
- Numeric (n), alphanumeric (an), alphanumeric-special (ans), track 2 (z) and
  signed-amount (x+n) elements: ASCII characters, one byte each.
- Binary (b) elements: raw bytes.
- LLVAR / LLLVAR length prefixes: 2 / 3 ASCII decimal digits counting the bytes of the
  value that follows (characters for text, bytes for binary).
- Fixed-length elements are never padded by the codec: a value must have exactly the
  field's length (builders format numbers with `"%012d" % amount` etc.). What you encode
  is what decodes, byte for byte.

Character classes
-----------------
    n    0-9
    an   0-9 A-Z a-z
    ans  printable ASCII 0x20-0x7E (space included)
    z    track 2 data without sentinels and LRC: 0-9 and the separators : < = >
    x+n  "C" (credit) or "D" (debit) followed by digits (field 97)
    b    any byte

MAC
---
Field 64 when the message has no secondary bitmap, field 128 when it has one; never
both. The MAC is always the last element, 8 bytes: AES-CMAC (NIST SP 800-38B) computed
over every byte of the message before the MAC value (MTI and bitmaps included, the MAC
bit already set), truncated to its leftmost 8 bytes. `codec.mac_input()` returns those
bytes; the key and the computation belong to `kapos.security`.

Fields
------
    no   name                                  format       notes
    2    Primary account number (PAN)          n..19 LLVAR  sensitive
    3    Processing code                       n6           type code from kapos.txn_types
    4    Amount, transaction                   n12          minor units
    7    Transmission date and time            n10          MMDDhhmmss, UTC
    11   Systems trace audit number (STAN)     n6           000001-999999
    12   Time, local transaction               n6           hhmmss
    13   Date, local transaction               n4           MMDD
    14   Date, expiration                      n4           YYMM
    22   POS entry mode                        n3           PAN entry (2) + PIN capability (1)
    23   Card sequence number                  n3           EMV PAN sequence number (5F34), chip only
    24   Network international identifier      n3
    25   POS condition code                    n2
    35   Track 2 data                          z..37 LLVAR  sensitive
    37   Retrieval reference number            an12
    38   Authorization identification response an6
    39   Response code                         an2
    41   Card acceptor terminal identification ans8
    42   Card acceptor identification code     ans15
    48   Additional data, private              ans..999 LLLVAR  kapos TLV, see messages
    49   Currency code, transaction            n3           ISO 4217 numeric
    50   Currency code, settlement             n3           (0500 only)
    50   Currency code, settlement             n3
    52   PIN data                              b16          sensitive; DEVIATION (1987: b64 = 8 bytes):
                                                            an ISO 9564 format 4 (AES) PIN block is 16 bytes
    53   Security related control information  b..16 LLVAR  DEVIATION (1987: n16): the DUKPT KSN,
                                                            12 bytes for AES DUKPT, 10 for TDES DUKPT
    54   Additional amounts                    an..120 LLLVAR  20-character blocks, see messages
    55   ICC data (EMV tags, BER-TLV)          b..255 LLLVAR  sensitive; DEVIATION (1987: reserved ISO,
                                                            ans..999): EMV practice
    64   Message authentication code           b8           see MAC
    70   Network management information code   n3           001 sign-on, 002 sign-off, 101 key change, 301 echo
    74   Credits, number                       n10
    75   Credits, reversal number              n10
    76   Debits, number                        n10
    77   Debits, reversal number               n10
    78   Transfer, number                      n10
    79   Transfer, reversal number             n10
    80   Inquiries, number                     n10
    81   Authorizations, number                n10
    86   Credits, amount                       n16
    87   Credits, reversal amount              n16
    88   Debits, amount                        n16
    89   Debits, reversal amount               n16
    90   Original data elements                n42          MTI n4, STAN n6, date/time n10,
                                                            acquirer id n11, forwarding id n11
    97   Amount, net settlement                x+n16        17 bytes on the wire
    128  Message authentication code           b8           see MAC

Sensitive fields (2, 35, 45, 52, 55): their values never appear in an error message,
a log line or a repr made by this package; errors name the field and the byte offset.
"""

from kapos.compat import MICROPYTHON

# ---- field types (character classes) ----
N = "n"
AN = "an"
ANS = "ans"
Z = "z"
XN = "x+n"
B = "b"

# ---- length types: the value is the number of ASCII digits in the length prefix ----
FIXED = 0
LLVAR = 2
LLLVAR = 3

# ---- encodings of the value on the wire ----
ASCII = "ascii"
BINARY = "binary"

SENSITIVE_FIELDS = (2, 35, 45, 52, 55)

DIGITS = b"0123456789"
ALPHANUMERIC = DIGITS + b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PRINTABLE = bytes(range(0x20, 0x7F))
TRACK2 = DIGITS + b":<=>"

# Bytes allowed in each text type; `value.strip(allowed)` is empty when all are allowed.
# For x+n the first byte must be C or D and the rest digits (checked by the codec).
ALLOWED = {N: DIGITS, AN: ALPHANUMERIC, ANS: PRINTABLE, Z: TRACK2, XN: DIGITS}

# The dialect. One row per field:
#   (number, name, type, length type, max length in bytes, encoding)
# For FIXED fields the max length is the exact length.
FIELDS = (
    (2, "Primary account number", N, LLVAR, 19, ASCII),
    (3, "Processing code", N, FIXED, 6, ASCII),
    (4, "Amount, transaction", N, FIXED, 12, ASCII),
    (7, "Transmission date and time", N, FIXED, 10, ASCII),
    (11, "Systems trace audit number", N, FIXED, 6, ASCII),
    (12, "Time, local transaction", N, FIXED, 6, ASCII),
    (13, "Date, local transaction", N, FIXED, 4, ASCII),
    (14, "Date, expiration", N, FIXED, 4, ASCII),
    (22, "POS entry mode", N, FIXED, 3, ASCII),
    (23, "Card sequence number", N, FIXED, 3, ASCII),
    (24, "Network international identifier", N, FIXED, 3, ASCII),
    (25, "POS condition code", N, FIXED, 2, ASCII),
    (35, "Track 2 data", Z, LLVAR, 37, ASCII),
    (37, "Retrieval reference number", AN, FIXED, 12, ASCII),
    (38, "Authorization identification response", AN, FIXED, 6, ASCII),
    (39, "Response code", AN, FIXED, 2, ASCII),
    (41, "Card acceptor terminal identification", ANS, FIXED, 8, ASCII),
    (42, "Card acceptor identification code", ANS, FIXED, 15, ASCII),
    (48, "Additional data, private", ANS, LLLVAR, 999, ASCII),
    (49, "Currency code, transaction", N, FIXED, 3, ASCII),
    (50, "Currency code, settlement", N, FIXED, 3, ASCII),
    (52, "PIN data", B, FIXED, 16, BINARY),
    (53, "Security related control information", B, LLVAR, 16, BINARY),
    (54, "Additional amounts", AN, LLLVAR, 120, ASCII),
    (55, "ICC data", B, LLLVAR, 255, BINARY),
    (64, "Message authentication code", B, FIXED, 8, BINARY),
    (70, "Network management information code", N, FIXED, 3, ASCII),
    (74, "Credits, number", N, FIXED, 10, ASCII),
    (75, "Credits, reversal number", N, FIXED, 10, ASCII),
    (76, "Debits, number", N, FIXED, 10, ASCII),
    (77, "Debits, reversal number", N, FIXED, 10, ASCII),
    (78, "Transfer, number", N, FIXED, 10, ASCII),
    (79, "Transfer, reversal number", N, FIXED, 10, ASCII),
    (80, "Inquiries, number", N, FIXED, 10, ASCII),
    (81, "Authorizations, number", N, FIXED, 10, ASCII),
    (86, "Credits, amount", N, FIXED, 16, ASCII),
    (87, "Credits, reversal amount", N, FIXED, 16, ASCII),
    (88, "Debits, amount", N, FIXED, 16, ASCII),
    (89, "Debits, reversal amount", N, FIXED, 16, ASCII),
    (90, "Original data elements", N, FIXED, 42, ASCII),
    (97, "Amount, net settlement", XN, FIXED, 17, ASCII),
    (128, "Message authentication code", B, FIXED, 8, BINARY),
)

MAC_LENGTH = 8

# Bitmap layouts whose field rows the codec keeps per Spec (`Spec.plans`): a host decodes
# and encodes the same few layouts again and again. Emptied when full. None on MicroPython:
# a terminal codes a few messages per sale and has no heap to spare. (compat.MICROPYTHON:
# under pytest `import micropython` found tests/micropython/, and the suite ran without.)
PLAN_CACHE = 0 if MICROPYTHON else 64


class Field:
    """One data element of a dialect (plain data, built from a FIELDS row)."""

    def __init__(self, number, name, ftype, length_type, max_len, encoding):
        if not 2 <= number <= 128 or number == 65:
            raise ValueError("field number %d cannot be a data element" % number)
        if ftype not in (N, AN, ANS, Z, XN, B):
            raise ValueError("field %d: unknown type %s" % (number, ftype))
        if length_type not in (FIXED, LLVAR, LLLVAR):
            raise ValueError("field %d: unknown length type" % number)
        if (encoding == BINARY) != (ftype == B) or encoding not in (ASCII, BINARY):
            raise ValueError("field %d: type %s cannot use encoding %s" % (number, ftype, encoding))
        limit = {FIXED: 9999, LLVAR: 99, LLLVAR: 999}[length_type]
        if not 1 <= max_len <= limit:
            raise ValueError("field %d: max length %d out of range" % (number, max_len))
        if ftype == XN and (length_type != FIXED or max_len < 2):
            raise ValueError("field %d: x+n must be fixed, sign plus digits" % number)
        self.number = number
        self.name = name
        self.type = ftype
        self.length_type = length_type
        self.max_len = max_len
        self.encoding = encoding
        self.sensitive = number in SENSITIVE_FIELDS
        self.binary = ftype == B
        self.allowed = ALLOWED.get(ftype)
        self.prefix_format = {FIXED: "", LLVAR: "%02d", LLLVAR: "%03d"}[length_type]

    def __repr__(self):
        kind = {FIXED: "", LLVAR: "..", LLLVAR: "..."}[self.length_type]
        return "<Field %d %s %s%s%d>" % (self.number, self.name, self.type, kind, self.max_len)


class Spec:
    """A dialect: the Field of every data element it knows, plus lookup tables.

    `fields` maps field number -> Field. `numbers` is the sorted tuple of known field
    numbers. `known_bits` is the 16-byte bitmap mask of every bit a message may set
    (bit 1 included), used by the decoder to reject unknown fields at once. A Spec is
    not changed once built: the codec caches its per-layout rows in `plans`.
    """

    def __init__(self, rows, name="custom"):
        self.name = name
        self.fields = {}
        for row in rows:
            field = Field(*row)
            if field.number in self.fields:
                raise ValueError("field %d defined twice" % field.number)
            self.fields[field.number] = field
        self.numbers = tuple(sorted(self.fields))
        mask = bytearray(16)
        mask[0] = 0x80  # bit 1: secondary bitmap present
        for number in self.numbers:
            mask[(number - 1) >> 3] |= 0x80 >> ((number - 1) & 7)
        self.known_bits = bytes(mask)
        self.plans = {}  # the codec's cache: bitmap -> decode rows, fields -> encode rows

    def __contains__(self, number):
        return number in self.fields

    def field(self, number):
        """The Field for `number`; KeyError if the dialect does not know it."""
        return self.fields[number]

    def replace(self, rows, name=None):
        """A new Spec with `rows` added or replacing existing rows (for tests, hosts)."""
        merged = {}
        for number in self.numbers:
            f = self.fields[number]
            merged[number] = (f.number, f.name, f.type, f.length_type, f.max_len, f.encoding)
        for row in rows:
            merged[row[0]] = tuple(row)
        return Spec([merged[n] for n in sorted(merged)], name or self.name)


DEFAULT_SPEC = Spec(FIELDS, "kapos-87")
