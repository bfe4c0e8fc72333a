"""The host's DUKPT and MAC arithmetic at server speed, on `cryptography` (OpenSSL).

kapos.security is written on one AES block at a time so that the terminal, CPython and
MicroPython compute byte-for-byte the same thing; on the host that would cost a new
cipher object per block (~30 per message). Here, with the same results:

- the Initial Key of a terminal is derived from the BDK once and kept (per BDK, IK ID);
- the walk from the IK to a counter's transaction key keeps the keys of the previous
  counter's walk, per terminal: consecutive counters share all but their lowest bits,
  so the next counter costs one derivation instead of up to sixteen, and that one under
  a parent key whose encryptor the previous walk already set up;
- the working keys a message needs (MAC generation, MAC verification, data, PIN) come
  from the transaction key in one encrypt call, when the first of them is asked for;
- CMAC and CBC are single calls into OpenSSL.

A message from a terminal's next counter thus sets up four AES keys: its transaction
key (for its working keys, and the parent of the next counter's), its data key (CBC)
and its two MAC keys (CMAC); the block-at-a-time code sets up about thirty.

Why `cryptography` and not pycryptodome (the terminal's library): what a message costs
here is the setting up of a cipher per key, not the AES itself; measured on the 2-core
development machine, pycryptodome's AES.new is ~10-12 us and its CMAC of 96 bytes (as
fastkeys did it) ~24 us, OpenSSL's encryptor ~5 us and its CMAC ~2.5 us (docs/host.md).

tests/integration/host/test_host_fastkeys.py checks every function against
kapos.security on random keys and counters, and against published vectors.
"""

import hmac
import threading
from collections import OrderedDict

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from kapos.errors import SecurityError
from kapos.security import dukpt
from kapos.security.cbc import unpad

_MAX_TERMINALS = 4096  # cached walks and initial keys (least recently used dropped)
_BLOCK = 16
# `algorithms` is a module with deprecated names, whose every attribute access runs a
# Python __getattr__: the class is looked up once, here.
_AES = algorithms.AES
_ECB = modes.ECB()
_ZERO_IV = bytes(_BLOCK)
_CBC_ZERO_IV = modes.CBC(_ZERO_IV)

# The AES-128 working keys one message can need: one block of derivation data each, all
# enciphered under the transaction key at once.
MESSAGE_USAGES = (dukpt.MAC_GENERATION, dukpt.MAC_VERIFICATION, dukpt.DATA_ENCRYPT,
                  dukpt.PIN_ENCRYPTION)


def _ecb(key):
    """An AES-ECB encryptor of `key`. ECB chains nothing, so one encryptor enciphers any
    number of whole blocks over several update() calls (never finalized)."""
    return Cipher(_AES(key), _ECB).encryptor()


_heads = {}  # (usage, key type) -> (key length, the first 8 bytes of each derivation block)


def _heads_of(usage, key_type):
    found = _heads.get((usage, key_type))
    if found is None:
        length = dukpt.key_length(key_type)
        found = _heads[(usage, key_type)] = (length, tuple(
            dukpt.derivation_data(usage, key_type, n, b"") for n in range(1, (length + 15) // 16 + 1)))
    return found


# the derivation data heads of MESSAGE_USAGES (one block each), and their keys in a
# message's key set
_MESSAGE_HEADS = tuple(_heads_of(usage, dukpt.AES128)[1][0] for usage in MESSAGE_USAGES)
_MAC_GENERATION_KEY, _MAC_VERIFICATION_KEY, _DATA_KEY, _PIN_KEY = (
    (usage, dukpt.AES128) for usage in MESSAGE_USAGES)

_WORKING_USAGES = frozenset(dukpt.WORKING_USAGES)
_IK_ID_LEN, _KSN_LEN = dukpt.IK_ID_LEN, dukpt.KSN_LEN


class _Key:
    """A key of the derivation tree and, once it has derived one, its ECB encryptor
    (~1 KB): a terminal's next counter derives its key under a parent the previous walk
    already used (consecutive counters: always), so that costs no new cipher."""

    __slots__ = ("key", "_encryptor")

    def __init__(self, key):
        self.key = key
        self._encryptor = None

    def encipher(self, blocks):
        if self._encryptor is None:
            self._encryptor = _ecb(self.key)
        return self._encryptor.update(blocks)

    def derive(self, usage, key_type, tail):
        """dukpt.derive_key(self.key, usage, key_type, tail) in one encrypt call."""
        length, heads = _heads_of(usage, key_type)
        if length > len(self.key):
            raise SecurityError("a derived key cannot be stronger than its derivation key")
        return self.encipher(tail.join(heads) + tail)[:length]


class _Lru(OrderedDict):
    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    def get_fresh(self, key):
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key, value):
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.limit:
            self.popitem(last=False)
        return value


class HostKeys:
    """Transaction and working keys of received KSNs, from one BDK. Thread-safe: one lock
    around the caches and the kept encryptors (the work under it is microseconds)."""

    def __init__(self, bdk):
        self.bdk = bytes(bdk)
        self._key_type = dukpt.key_type_of(self.bdk)
        self._bdk = _Key(self.bdk)
        # the derivation data of the tree's intermediate keys (as strong as the BDK)
        self._tree_length, self._tree_heads = _heads_of(dukpt.KEY_DERIVATION, self._key_type)
        self._initial = _Lru(_MAX_TERMINALS)  # ik_id -> _Key of the initial key
        # ik_id -> [counter, [_Key after each one-bit, most significant first]] of the last
        # walk, updated in place under the lock
        self._walks = _Lru(_MAX_TERMINALS)
        # the request MAC, the card data, the PIN block and the reply MAC of one message
        # share its KSN: (ksn, _Key of its transaction key, {(usage, key type): key})
        self._current = None
        self._lock = threading.RLock()  # working_key holds it across transaction_key
        self.derivations = 0  # intermediate keys derived (for tests)
        self.working_derivations = 0  # encrypt calls that derived working keys (for tests)
        self.ciphers = 0  # AES key set-ups for derivations (for tests)

    def _initial_key(self, ik_id):
        initial = self._initial.get_fresh(ik_id)
        if initial is None:
            key = self._bdk.derive(dukpt.KEY_DERIVATION_INITIAL_KEY, self._key_type, ik_id)
            initial = self._initial.put(ik_id, _Key(key))
        return initial

    def _parent(self, node):
        if node._encryptor is None:
            self.ciphers += 1
        return node

    def transaction_key(self, ksn):
        """dukpt.derive_transaction_key(derive_initial_key(bdk, ik_id), ksn)."""
        ksn = bytes(ksn)
        with self._lock:
            return self._walk(ksn).key

    def _walk(self, ksn):
        """The _Key of the transaction key of `ksn` (bytes), under the lock held."""
        counter = int.from_bytes(ksn[_IK_ID_LEN:], "big")
        if len(ksn) != _KSN_LEN or not dukpt.counter_is_valid(counter):
            dukpt.split_ksn(ksn)  # raises its SecurityError, which says what is wrong
        ik_id = ksn[:_IK_ID_LEN]
        # The bits above the highest one that differs from the terminal's last counter
        # are the same in both, and so are their keys.
        walks = self._walks
        walk = walks.get(ik_id)
        if walk is None:
            walk = walks.put(ik_id, [0, []])
        else:
            walks.move_to_end(ik_id)
        last, path = walk
        top = (counter ^ last).bit_length()
        if not top:
            return path[-1]
        del path[(counter >> top).bit_count():]
        node = path[-1] if path else self._initial_key(ik_id)
        device = ksn[4:_IK_ID_LEN]
        length, heads = self._tree_length, self._tree_heads
        working = counter >> top << top
        rest = counter ^ working
        try:
            while rest:  # the counter's other one-bits, the most significant first
                bit = 1 << (rest.bit_length() - 1)
                rest ^= bit
                working |= bit
                # dukpt.derive_key(node.key, KEY_DERIVATION, key type, device + working)
                tail = device + working.to_bytes(4, "big")
                node = _Key(self._parent(node).encipher(tail.join(heads) + tail)[:length])
                self.derivations += 1
                path.append(node)
        except BaseException:
            walk[0], walk[1] = 0, []  # a walk cut short is no walk to start from
            raise
        walk[0] = counter
        return node

    def working_key(self, ksn, usage, key_type=dukpt.AES128):
        """dukpt.host_derive_working_key(bdk, ksn, usage, key_type): the transaction key
        once per KSN, and with it every key of MESSAGE_USAGES in one encrypt call."""
        # The keys of the last KSN asked for, without the lock: a KSN's keys never change
        # (one BDK per HostKeys), and the tuple is replaced whole.
        current = self._current
        if current is not None and current[0] == ksn:
            key = current[2].get((usage, key_type))
            if key is not None:
                return key
        if usage not in _WORKING_USAGES:
            raise SecurityError("%r is not a DUKPT working key usage" % (usage,))
        ksn = bytes(ksn)
        with self._lock:
            current = self._current
            if current is None or current[0] != ksn:
                current = self._current = self._message_keys(ksn)
            key = current[2].get((usage, key_type))
            if key is None:  # another usage or key type: on its own
                key = self._parent(current[1]).derive(usage, key_type, ksn[4:])
                # a new dict, not a change to the one readers outside the lock may hold
                keys = dict(current[2])
                keys[(usage, key_type)] = key
                self._current = (ksn, current[1], keys)
                self.working_derivations += 1
            return key

    def _message_keys(self, ksn):
        # through transaction_key (a hook tests count: once per message), then its node
        self.transaction_key(ksn)  # validates the KSN
        node = self._walks.get(ksn[:_IK_ID_LEN])[1][-1]
        tail = ksn[4:]  # IK ID right 4 bytes + counter
        out = self._parent(node).encipher(tail.join(_MESSAGE_HEADS) + tail)
        self.working_derivations += 1
        return ksn, node, {_MAC_GENERATION_KEY: out[:16], _MAC_VERIFICATION_KEY: out[16:32],
                           _DATA_KEY: out[32:48], _PIN_KEY: out[48:64]}


def cmac(key, data):
    """AES-CMAC (NIST SP 800-38B, RFC 4493), the full 16-byte tag."""
    mac = CMAC(_AES(key))
    mac.update(data)
    return mac.finalize()


def cmac_verify(key, data, tag, tag_len):
    """True when `tag` is the CMAC of `data` truncated to `tag_len` bytes (fixed by the
    protocol, never taken from the tag); compared in constant time."""
    if not 4 <= tag_len <= _BLOCK:
        raise SecurityError("CMAC tag length must be 4..16 bytes, got %d" % tag_len)
    if len(tag) != tag_len:
        return False
    return hmac.compare_digest(cmac(key, data)[:tag_len], bytes(tag))


def cbc_decrypt(key, ciphertext, iv=bytes(16)):
    """kapos.security.cbc.decrypt (ISO/IEC 9797-1 padding method 2) in one call."""
    if not ciphertext or len(ciphertext) % _BLOCK:
        raise SecurityError("ciphertext must be a whole number of 16-byte blocks")
    mode = _CBC_ZERO_IV if iv == _ZERO_IV else modes.CBC(bytes(iv))  # a mode keeps no state
    decryptor = Cipher(_AES(key), mode).decryptor()
    return unpad(decryptor.update(ciphertext))
