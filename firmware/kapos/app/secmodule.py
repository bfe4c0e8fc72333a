"""The terminal's security module: one DUKPT transaction's keys per authorization.

    ksn = sm.begin(ref)                     # counter advanced and saved first
    block, ksn = sm.seal(pin, n, card, ref)  # ISO 9564 format 4 under the PIN key
    mac = sm.mac_request(ref, message)       # AES-CMAC, request MAC key
    ok = sm.verify_response(ref, reply, mac) # response MAC key
    sm.end(ref)                              # keys wiped

Keys never leave this object; PIN digits are copied only into the PIN field, which the
PIN-block code wipes. After zeroize() every call raises until new keys are loaded.
"""

import binascii
import os

from kapos.app.pinseal import PinSealer, pan_for_pin_block
from kapos.compat import wipe
from kapos.errors import SecurityError
from kapos.host import private48
from kapos.host.messages import pack_private, unpack_private
from kapos.security import cbc, pinblock
from kapos.security.cmac import aes_cmac, aes_cmac_verify

MAC_LEN = 8


class SecurityModule(PinSealer):
    KEEP = 32  # transactions whose keys are kept (replies may come late)

    def __init__(self, keystore, random_bytes=os.urandom):
        self.keystore = keystore
        self._random = random_bytes
        self._open = {}  # ref -> (ksn, TransactionKeys)
        self._by_ksn = {}  # ksn -> TransactionKeys, oldest first

    def _new(self):
        ksn, keys = self.keystore.next_transaction()
        self._by_ksn[ksn] = keys
        while len(self._by_ksn) > self.KEEP:
            old = next(iter(self._by_ksn))
            self._by_ksn.pop(old).wipe()
            for ref in [r for r, (k, _) in self._open.items() if k == old]:
                del self._open[ref]
        return ksn, keys

    def begin(self, ref):
        if ref not in self._open:
            self._open[ref] = self._new()
        return self._open[ref][0]

    def begin_message(self):
        """A fresh KSN for a message without a PIN (MAC only); returns the KSN."""
        return self._new()[0]

    def keys_for_ksn(self, ksn):
        keys = self._by_ksn.get(bytes(ksn))
        if keys is None:
            raise SecurityError("no keys for that KSN")
        return keys

    def _keys(self, ref):
        if ref not in self._open:
            self.begin(ref)
        return self._open[ref][1]

    def seal(self, buffer, length, card, ref=None):
        keys = self._keys(ref)
        digits = bytearray(length)
        try:
            for i in range(length):
                digits[i] = buffer[i]
            block = pinblock.encipher_iso4(keys.pin_key(), digits, pan_for_pin_block(card), self._random)
        finally:
            wipe(digits)
        return block, self._open[ref][0]

    def mac_request(self, ref, data):
        return aes_cmac(self._keys(ref).mac_request_key(), data)[:MAC_LEN]

    def verify_response(self, ref, data, mac):
        if ref not in self._open:
            return False
        return aes_cmac_verify(self._open[ref][1].mac_response_key(), data, mac, tag_len=MAC_LEN)

    def ksn(self, ref):
        entry = self._open.get(ref)
        return entry[0] if entry else None

    def end(self, ref):
        entry = self._open.pop(ref, None)
        if entry is not None:
            self._by_ksn.pop(entry[0], None)
            entry[1].wipe()

    def zeroize(self):
        for keys in self._by_ksn.values():
            keys.wipe()
        self._by_ksn.clear()
        self._open.clear()
        self.keystore.zeroize()

    def status(self):
        return self.keystore.status()

    def key_status(self):
        """(ok, text) for the self-test: never a key value."""
        s = self.keystore.status()
        if s.get("tampered"):
            return False, "keys erased after tamper: re-key the terminal"
        if not s.get("loaded"):
            return False, "no keys loaded (kapos keys load)"
        return True, "DUKPT loaded, KSN %s" % s["ksn"]


ENCRYPTED_CARD_TAG = private48.ENCIPHERED_CARD  # field 48 EC (docs/protocol.md)


def card_data_plaintext(message):
    """What field 48 EC enciphers: 'T2=<track 2>' or 'PN=<PAN>;EX=<YYMM>'."""
    if 35 in message:
        return "T2=" + message[35]
    parts = ["PN=" + message[2]]
    if 14 in message:
        parts.append("EX=" + message[14])
    return ";".join(parts)


class DukptMac:
    """The host client's MAC and data-encryption hook with DUKPT keys: each message gets
    the keys of its KSN (field 53): the PIN transaction's KSN when it has one, else a
    fresh one."""

    def __init__(self, security_module):
        self.sm = security_module

    def _ksn(self, message):
        ksn = message.get(53)
        if ksn is None:
            ksn = self.sm.begin_message()
            message[53] = ksn
        return ksn

    def bind(self, message):
        return _TerminalMac(self.sm.keys_for_ksn(self._ksn(message)))

    def encrypt_card_data(self, message):
        """Move track 2 (35) or PAN + expiry (2, 14) into field 48 EC, AES-CBC under the
        KSN's data-encryption key, so no clear card data crosses the link."""
        if 35 not in message and 2 not in message:
            return
        keys = self.sm.keys_for_ksn(self._ksn(message))
        text = card_data_plaintext(message).encode()
        cipher = binascii.hexlify(cbc.encrypt(keys.data_request_key(), text)).decode().upper()
        items = unpack_private(message[48]) if 48 in message else {}
        items[ENCRYPTED_CARD_TAG] = cipher
        message[48] = pack_private(sorted(items.items()))
        for field in (35, 2, 14):
            message.pop(field, None)


class _TerminalMac:
    def __init__(self, keys):
        self._keys = keys

    def sign(self, data):
        return aes_cmac(self._keys.mac_request_key(), data)[:MAC_LEN]

    def verify(self, data, mac):
        return aes_cmac_verify(self._keys.mac_response_key(), data, mac, tag_len=MAC_LEN)
