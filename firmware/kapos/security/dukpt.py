"""AES DUKPT per ANSI X9.24-3-2017 (L1): host derivation and the terminal's key state.

Vocabulary (X9.24-3-2017 section 6):
- BDK: Base Derivation Key, host only. Initial Key ID (IK ID): 8 bytes, the
  left half of the KSN. KSN: 12 bytes = IK ID (8) + transaction counter (4).
- Initial Key (IK): derived from BDK + IK ID, loaded once into the terminal.
- Intermediate derivation keys: one per counter value, derived from the IK by
  walking the counter's one-bits from the most significant down.
- Working keys: derived from the transaction's intermediate key, one per usage
  (PIN encryption, MAC generation/verification, data encrypt/decrypt, ...).

Every derivation encrypts 16-byte "derivation data" blocks under the parent key
with the one-block AES primitive (`kapos.security.aes`):
  version 01 | block counter | key usage (2) | algorithm (2) | length in bits (2)
  | IK ID (8)                     for the initial key, or
  | IK ID right 4 bytes + counter (4)   for intermediate and working keys.

Counter rule. AES DUKPT uses a 32-bit counter (NUM_REG = 32 intermediate
derivation key registers) and a counter value is valid only if it has at most
MAX_WORK = 16 one-bits; that gives about 2.4e9 transactions per IK. (The
"at most 10 one-bits" rule, with a 21-bit counter and 21 future-key registers,
belongs to TDES DUKPT in ANSI X9.24-1:2009, not to AES DUKPT.)

Terminal side: `DukptTerminal` holds only the intermediate derivation key
registers (never the IK after loading, never the BDK). `next_transaction()`
advances the counter FIRST and returns the new state as bytes together with the
keys of the transaction; the caller persists the state before using the keys,
so a power cut can skip a counter but never reuse one. Storing the state is the
caller's I/O; the bytes contain key material and must be kept like a key.

Key material never appears in exception messages or reprs.
"""

from kapos.compat import wipe
from kapos.errors import SecurityError
from kapos.security.aes import aes_encrypt_block

# Key usage indicators (derivation data bytes 2-3), X9.24-3-2017.
KEY_ENCRYPTION_KEY = 0x0002
PIN_ENCRYPTION = 0x1000
MAC_GENERATION = 0x2000  # terminal MACs its requests with this key
MAC_VERIFICATION = 0x2001  # terminal verifies the host's response MACs
MAC_BOTH_WAYS = 0x2002
DATA_ENCRYPT = 0x3000  # terminal encrypts request data
DATA_DECRYPT = 0x3001  # terminal decrypts response data
DATA_BOTH_WAYS = 0x3002
KEY_DERIVATION = 0x8000
KEY_DERIVATION_INITIAL_KEY = 0x8001

WORKING_USAGES = (
    KEY_ENCRYPTION_KEY,
    PIN_ENCRYPTION,
    MAC_GENERATION,
    MAC_VERIFICATION,
    MAC_BOTH_WAYS,
    DATA_ENCRYPT,
    DATA_DECRYPT,
    DATA_BOTH_WAYS,
)

# Key types = algorithm indicators (derivation data bytes 4-5).
AES128 = 0x0002
AES256 = 0x0004
_KEY_BITS = {AES128: 128, AES256: 256}
_KEY_NAMES = {AES128: "AES-128", AES256: "AES-256"}

NUM_REG = 32
MAX_WORK = 16
MAX_COUNTER = 0xFFFFFFFF
IK_ID_LEN = 8
KSN_LEN = 12


def _popcount(n):
    return bin(n).count("1")


def _lowest_set_bit(n):
    r = 0
    while not (n >> r) & 1:
        r += 1
    return r


def _u32(n):
    return n.to_bytes(4, "big")


def key_length(key_type):
    """Length in bytes of a key of `key_type` (AES128 or AES256)."""
    if key_type not in _KEY_BITS:
        raise SecurityError("unsupported DUKPT key type %r" % (key_type,))
    return _KEY_BITS[key_type] // 8


def key_type_of(key):
    """AES128 or AES256 from a key's length."""
    if len(key) == 16:
        return AES128
    if len(key) == 32:
        return AES256
    raise SecurityError("DUKPT keys must be 16 or 32 bytes, got %d" % len(key))


def counter_is_valid(counter):
    """True for 1 <= counter < 2**32 with at most MAX_WORK (16) one-bits."""
    return 0 < counter <= MAX_COUNTER and _popcount(counter) <= MAX_WORK


def make_ksn(ik_id, counter):
    """The 12-byte KSN for an 8-byte IK ID and a 32-bit counter."""
    if len(ik_id) != IK_ID_LEN:
        raise SecurityError("Initial Key ID must be 8 bytes, got %d" % len(ik_id))
    if not 0 <= counter <= MAX_COUNTER:
        raise SecurityError("DUKPT counter out of range")
    return bytes(ik_id) + _u32(counter)


def split_ksn(ksn):
    """(IK ID, counter) from a 12-byte KSN; rejects counters the standard forbids."""
    if len(ksn) != KSN_LEN:
        raise SecurityError("AES DUKPT KSN must be 12 bytes, got %d" % len(ksn))
    counter = int.from_bytes(bytes(ksn[IK_ID_LEN:]), "big")
    if not counter_is_valid(counter):
        raise SecurityError("KSN counter 0x%08X is not a valid AES DUKPT counter" % counter)
    return bytes(ksn[:IK_ID_LEN]), counter


def derivation_data(usage, key_type, block_counter, tail):
    """One 16-byte derivation data block (`tail` is the last 8 bytes)."""
    bits = _KEY_BITS[key_type]
    head = bytes((
        0x01, block_counter,
        usage >> 8, usage & 0xFF,
        key_type >> 8, key_type & 0xFF,
        bits >> 8, bits & 0xFF,
    ))
    return head + bytes(tail)


def derive_key(derivation_key, usage, key_type, tail):
    """Derive a `key_type` key from `derivation_key` (X9.24-3-2017 Derive_Key)."""
    length = key_length(key_type)
    if length > len(derivation_key):
        raise SecurityError("a derived key cannot be stronger than its derivation key")
    out = bytearray()
    block = 1
    while len(out) < length:
        out += aes_encrypt_block(derivation_key, derivation_data(usage, key_type, block, tail))
        block += 1
    key = bytes(out[:length])
    wipe(out)
    return key


def derive_initial_key(bdk, ik_id):
    """Host side: the terminal's Initial Key from the BDK and its 8-byte IK ID.

    The IK has the BDK's type (AES-128 BDK -> AES-128 IK).
    """
    if len(ik_id) != IK_ID_LEN:
        raise SecurityError("Initial Key ID must be 8 bytes, got %d" % len(ik_id))
    return derive_key(bdk, KEY_DERIVATION_INITIAL_KEY, key_type_of(bdk), ik_id)


def derive_transaction_key(initial_key, ksn):
    """The intermediate derivation key for the KSN's counter, from the IK."""
    ik_id, counter = split_ksn(ksn)
    key_type = key_type_of(initial_key)
    device = ik_id[4:]
    key = bytes(initial_key)
    working = 0
    mask = 1 << (NUM_REG - 1)
    while mask:
        if counter & mask:
            working |= mask
            key = derive_key(key, KEY_DERIVATION, key_type, device + _u32(working))
        mask >>= 1
    return key


def derive_working_key(transaction_key, ksn, usage, key_type=AES128):
    """A working key of `usage` from a transaction's intermediate derivation key."""
    if usage not in WORKING_USAGES:
        raise SecurityError("%r is not a DUKPT working key usage" % (usage,))
    ik_id, counter = split_ksn(ksn)
    return derive_key(transaction_key, usage, key_type, ik_id[4:] + _u32(counter))


def host_derive_working_key(bdk, ksn, usage, key_type=AES128):
    """Host side: BDK + received KSN -> the working key the terminal used."""
    initial_key = derive_initial_key(bdk, split_ksn(ksn)[0])
    transaction_key = derive_transaction_key(initial_key, ksn)
    return derive_working_key(transaction_key, ksn, usage, key_type)


class TransactionKeys(object):
    """The keys of one transaction: derive working keys by usage.

    Holds the transaction's intermediate derivation key; call `wipe()` when the
    transaction is over.
    """

    def __init__(self, ksn, transaction_key):
        self.ksn = bytes(ksn)
        self.counter = int.from_bytes(self.ksn[IK_ID_LEN:], "big")
        self._key = bytearray(transaction_key)
        self._wiped = False

    def working_key(self, usage, key_type=AES128):
        if self._wiped:
            raise SecurityError("transaction keys were wiped")
        return derive_working_key(self._key, self.ksn, usage, key_type)

    def pin_key(self, key_type=AES128):
        return self.working_key(PIN_ENCRYPTION, key_type)

    def mac_request_key(self, key_type=AES128):
        """Key the terminal MACs its request with (MAC generation)."""
        return self.working_key(MAC_GENERATION, key_type)

    def mac_response_key(self, key_type=AES128):
        """Key the terminal verifies the response MAC with (MAC verification)."""
        return self.working_key(MAC_VERIFICATION, key_type)

    def data_request_key(self, key_type=AES128):
        """Key the terminal encrypts request data with (data encrypt)."""
        return self.working_key(DATA_ENCRYPT, key_type)

    def data_response_key(self, key_type=AES128):
        """Key the terminal decrypts response data with (data decrypt)."""
        return self.working_key(DATA_DECRYPT, key_type)

    def wipe(self):
        wipe(self._key)
        self._wiped = True

    def __repr__(self):
        return "TransactionKeys(counter=0x%08X)" % self.counter


_MAGIC = b"KDK"
_VERSION = 1
_HEADER_LEN = 3 + 1 + 1 + IK_ID_LEN + 4 + 4


def _expected_registers(counter):
    """Bitmap of the registers that hold keys while `counter` is the next one.

    Register r = lowest set bit of the counter holds the counter's own key; a
    register i > r holds the key of (counter's bits above i) | 2**i when bit i
    of the counter is 0; all others are empty. 0 means exhausted.
    """
    if counter == 0:
        return 0
    r = _lowest_set_bit(counter)
    above = ~((1 << (r + 1)) - 1) & MAX_COUNTER
    return (1 << r) | (~counter & above & MAX_COUNTER)


class DukptTerminal(object):
    """Terminal-side AES DUKPT state (transaction-originating device).

    Build it once with `load_initial_key()`, later with `from_state()`. Per
    transaction:

        state, ksn, keys = terminal.next_transaction()
        save(state)            # persist BEFORE using any key
        block = encipher(keys.pin_key(), ...)
        keys.wipe()
    """

    def __init__(self, key_type, ik_id, counter, registers):
        # Internal: use load_initial_key() or from_state().
        self._key_type = key_type
        self._ik_id = bytes(ik_id)
        self._counter = counter
        self._regs = registers

    @classmethod
    def load_initial_key(cls, initial_key, ik_id):
        """Start from an injected Initial Key; the IK is not kept afterwards."""
        key_type = key_type_of(initial_key)
        if len(ik_id) != IK_ID_LEN:
            raise SecurityError("Initial Key ID must be 8 bytes, got %d" % len(ik_id))
        device = bytes(ik_id[4:])
        regs = []
        for i in range(NUM_REG):
            key = derive_key(initial_key, KEY_DERIVATION, key_type, device + _u32(1 << i))
            regs.append(bytearray(key))
        return cls(key_type, ik_id, 1, regs)

    @property
    def key_type(self):
        return self._key_type

    @property
    def counter(self):
        """Counter the next transaction will use (0 once exhausted)."""
        return self._counter

    @property
    def exhausted(self):
        return self._counter == 0

    def next_transaction(self):
        """Advance to the next counter; return (state, ksn, keys).

        `state` is this terminal's new state as bytes: persist it before using
        `keys`. Raises SecurityError once all counters are used up.
        """
        c = self._counter
        if c == 0:
            raise SecurityError("DUKPT keys exhausted: load a new initial key")
        r = _lowest_set_bit(c)
        key = self._regs[r]
        if key is None:
            raise SecurityError("DUKPT state is inconsistent")
        if _popcount(c) < MAX_WORK:
            device = self._ik_id[4:]
            for i in range(r - 1, -1, -1):
                child = derive_key(key, KEY_DERIVATION, self._key_type, device + _u32(c | (1 << i)))
                self._regs[i] = bytearray(child)
            nxt = c + 1
        else:  # children would exceed 16 one-bits: skip to the next valid counter
            nxt = c + (1 << r)
        keys = TransactionKeys(make_ksn(self._ik_id, c), key)
        wipe(key)
        self._regs[r] = None
        if nxt > MAX_COUNTER:
            nxt = 0
            self._wipe_registers()
        self._counter = nxt
        return self.export_state(), keys.ksn, keys

    def export_state(self):
        """The state as bytes (contains key material: store it like a key)."""
        bitmap = 0
        body = bytearray()
        for i in range(NUM_REG):
            if self._regs[i] is not None:
                bitmap |= 1 << i
                body += self._regs[i]
        out = bytearray(_MAGIC)
        out.append(_VERSION)
        out.append(self._key_type)
        out += self._ik_id
        out += _u32(self._counter)
        out += _u32(bitmap)
        out += body
        wipe(body)
        return bytes(out)

    @classmethod
    def from_state(cls, state):
        """Rebuild a terminal from `export_state()` bytes; rejects corrupt state."""
        if len(state) < _HEADER_LEN or bytes(state[:3]) != _MAGIC or state[3] != _VERSION:
            raise SecurityError("not a DUKPT state record")
        key_type = state[4]
        if key_type not in _KEY_BITS:
            raise SecurityError("DUKPT state has an unknown key type")
        size = key_length(key_type)
        ik_id = bytes(state[5:13])
        counter = int.from_bytes(bytes(state[13:17]), "big")
        bitmap = int.from_bytes(bytes(state[17:21]), "big")
        if counter != 0 and not counter_is_valid(counter):
            raise SecurityError("DUKPT state has an invalid counter")
        if bitmap != _expected_registers(counter):
            raise SecurityError("DUKPT state registers do not match its counter")
        if len(state) != _HEADER_LEN + _popcount(bitmap) * size:
            raise SecurityError("DUKPT state has the wrong length")
        regs = []
        pos = _HEADER_LEN
        for i in range(NUM_REG):
            if bitmap & (1 << i):
                regs.append(bytearray(state[pos:pos + size]))
                pos += size
            else:
                regs.append(None)
        return cls(key_type, ik_id, counter, regs)

    def _wipe_registers(self):
        for i in range(NUM_REG):
            if self._regs[i] is not None:
                wipe(self._regs[i])
                self._regs[i] = None

    def wipe(self):
        """Erase every key register (e.g. on tamper or decommissioning)."""
        self._wipe_registers()
        self._counter = 0

    def __repr__(self):
        return "DukptTerminal(%s, counter=0x%08X)" % (_KEY_NAMES[self._key_type], self._counter)
