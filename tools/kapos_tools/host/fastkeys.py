"""The host's DUKPT and MAC arithmetic at server speed (CPython + pycryptodome only).

kapos.security is written on one AES block at a time so that the terminal, CPython and
MicroPython compute byte-for-byte the same thing; on the host that costs a new cipher
object per block (~30 per message). Here, with the same results:

- the Initial Key of a terminal is derived from the BDK once and kept (per BDK, IK ID);
- the walk from the IK to a counter's transaction key keeps the keys of the previous
  counter's walk, per terminal: consecutive counters share all but their lowest bits,
  so a message costs one or two derivations instead of up to sixteen;
- the working keys of a message (MAC, data, PIN) come from one cipher object;
- CMAC and CBC run as single calls into pycryptodome.

tests/integration/host/test_host_fastkeys.py checks every function against
kapos.security on random keys and counters.
"""

import hmac
import threading
from collections import OrderedDict

from Crypto.Cipher import AES

from kapos.errors import SecurityError
from kapos.security import dukpt
from kapos.security.cbc import unpad

_MAX_TERMINALS = 4096  # cached walks and initial keys (least recently used dropped)


def _derive(cipher, usage, key_type, tail):
    """dukpt.derive_key with an AES-ECB cipher object of the derivation key."""
    length = dukpt.key_length(key_type)
    blocks = b"".join(dukpt.derivation_data(usage, key_type, n, tail)
                      for n in range(1, (length + 15) // 16 + 1))
    return cipher.encrypt(blocks)[:length]


class _Lru(OrderedDict):
    def get_or(self, key, make):
        value = self.get(key)
        if value is None:
            value = self[key] = make()
            if len(self) > _MAX_TERMINALS:
                self.popitem(last=False)
        else:
            self.move_to_end(key)
        return value


class HostKeys:
    """Transaction and working keys of received KSNs, from one BDK."""

    def __init__(self, bdk):
        self.bdk = bytes(bdk)
        self._key_type = dukpt.key_type_of(self.bdk)
        self._bdk_cipher = AES.new(self.bdk, AES.MODE_ECB)
        self._initial = _Lru()  # ik_id -> initial key
        self._walks = _Lru()  # ik_id -> [(working counter bits, key), ...] of the last walk
        self._current = None  # (ksn, ECB cipher of its transaction key)
        self._lock = threading.Lock()
        self.derivations = 0  # AES derivations of intermediate keys (for tests)

    def _initial_key(self, ik_id):
        return self._initial.get_or(ik_id, lambda: _derive(
            self._bdk_cipher, dukpt.KEY_DERIVATION_INITIAL_KEY, self._key_type, ik_id))

    def transaction_key(self, ksn):
        """dukpt.derive_transaction_key(derive_initial_key(bdk, ik_id), ksn)."""
        ik_id, counter = dukpt.split_ksn(bytes(ksn))
        device = ik_id[4:]
        previous = self._walks.get(ik_id) or []
        key = self._initial_key(ik_id)
        path = []
        working = 0
        mask = 1 << (dukpt.NUM_REG - 1)
        while mask:
            if counter & mask:
                working |= mask
                step = len(path)
                if step < len(previous) and previous[step][0] == working:
                    key = previous[step][1]  # the same bits so far: the same key
                else:
                    previous = ()  # diverged: the rest is new
                    key = _derive(AES.new(key, AES.MODE_ECB), dukpt.KEY_DERIVATION,
                                  self._key_type, device + working.to_bytes(4, "big"))
                    self.derivations += 1
                path.append((working, key))
            mask >>= 1
        self._walks[ik_id] = path
        self._walks.move_to_end(ik_id)
        if len(self._walks) > _MAX_TERMINALS:
            self._walks.popitem(last=False)
        return key

    def working_key(self, ksn, usage, key_type=dukpt.AES128):
        """dukpt.host_derive_working_key(bdk, ksn, usage): the transaction key once per KSN."""
        if usage not in dukpt.WORKING_USAGES:
            raise SecurityError("%r is not a DUKPT working key usage" % (usage,))
        ksn = bytes(ksn)
        with self._lock:
            current = self._current
            if current is None or current[0] != ksn:
                # the request MAC, the card data, the PIN and the reply MAC of one message
                # share this KSN: its transaction key's cipher and working keys are kept
                current = self._current = (ksn, AES.new(self.transaction_key(ksn), AES.MODE_ECB), {})
            key = current[2].get((usage, key_type))
            if key is None:
                ik_id, counter = dukpt.split_ksn(ksn)
                key = current[2][(usage, key_type)] = _derive(
                    current[1], usage, key_type, ik_id[4:] + counter.to_bytes(4, "big"))
            return key


_ZERO = bytes(16)
_RB = 0x87  # the CMAC constant for 128-bit blocks (NIST SP 800-38B)


def _double(block):
    value = int.from_bytes(block, "big") << 1
    if value >> 128:
        value = (value & ((1 << 128) - 1)) ^ _RB
    return value


def cmac(key, data):
    """AES-CMAC (NIST SP 800-38B) with one CBC cipher object: pycryptodome's CMAC costs
    several objects and Python-level XORs a message, which the host pays twice per message.

    The CBC chain's first block enciphers zeros, giving L = E_K(0) (the subkeys' source);
    the data follows with its first block XORed with L, which cancels that chaining."""
    data = bytes(data)
    chain = AES.new(bytes(key), AES.MODE_CBC, iv=_ZERO)
    seed = chain.encrypt(_ZERO)
    subkey = _double(seed)
    tail = len(data) % 16
    if data and not tail:
        body, last = data[:-16], data[-16:]
    else:  # padded: 0x80 then zeros, and the second subkey
        subkey = _double(subkey.to_bytes(16, "big"))
        body, last = data[:len(data) - tail], data[len(data) - tail:] + b"\x80" + bytes(15 - tail)
    blocks = body + (int.from_bytes(last, "big") ^ subkey).to_bytes(16, "big")
    first = (int.from_bytes(blocks[:16], "big") ^ int.from_bytes(seed, "big")).to_bytes(16, "big")
    return chain.encrypt(first + blocks[16:])[-16:]


def cmac_verify(key, data, tag, tag_len):
    if len(tag) != tag_len:
        return False
    return hmac.compare_digest(cmac(key, data)[:tag_len], bytes(tag))


def cbc_decrypt(key, ciphertext, iv=bytes(16)):
    """kapos.security.cbc.decrypt (ISO/IEC 9797-1 padding method 2) in one call."""
    if not ciphertext or len(ciphertext) % 16:
        raise SecurityError("ciphertext must be a whole number of 16-byte blocks")
    return unpad(AES.new(bytes(key), AES.MODE_CBC, iv=bytes(iv)).decrypt(bytes(ciphertext)))
