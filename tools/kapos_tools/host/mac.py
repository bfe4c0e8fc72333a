"""The reference host's side of the DUKPT MACs: from the BDK and a message's KSN
(field 53) it derives the key the terminal MACed the request with (MAC generation) and
the key it MACs its reply with (MAC verification, on the terminal's side)."""

import binascii
import threading

from kapos.errors import SecurityError
from kapos.host.messages import pack_private, unpack_private
from kapos.security import cbc, dukpt
from kapos.security.cmac import aes_cmac, aes_cmac_verify

MAC_LEN = 8


class _TransactionKeyCache:
    """The transaction key of the message being handled: BDK -> IK -> transaction key is
    the costly part of DUKPT (up to 21 AES derivations), and one message needs it for
    the request MAC, the card data, the PIN block and the reply MAC. One entry only:
    the key of the previous KSN is dropped when the next arrives."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entry = None  # (bdk, ksn, transaction key)
        self.derivations = 0

    def working_key(self, bdk, ksn, usage):
        bdk, ksn = bytes(bdk), bytes(ksn)
        with self._lock:
            entry = self._entry
            if entry is None or entry[0] != bdk or entry[1] != ksn:
                initial_key = dukpt.derive_initial_key(bdk, dukpt.split_ksn(ksn)[0])
                entry = self._entry = (bdk, ksn, dukpt.derive_transaction_key(initial_key, ksn))
                self.derivations += 1
            transaction_key = entry[2]
        return dukpt.derive_working_key(transaction_key, ksn, usage)


_keys = _TransactionKeyCache()


def host_working_key(bdk, ksn, usage):
    """BDK + a message's KSN -> the working key of `usage` (derived once per KSN)."""
    return _keys.working_key(bdk, ksn, usage)


class HostDukptMac:
    def __init__(self, bdk):
        self._bdk = bytes(bdk)

    def bind(self, message):
        ksn = message.get(53)
        if not ksn:
            raise SecurityError("no KSN (field 53): the MAC cannot be checked")
        return _Bound(self._bdk, ksn)

    def decrypt_card_data(self, message):
        """Field 48 EC back into 35 (or 2 + 14), with the data key of the message's KSN."""
        if 48 not in message:
            return
        items = unpack_private(message[48])
        cipher = items.pop("EC", None)
        if cipher is None:
            return
        if not message.get(53):
            raise SecurityError("enciphered card data without a KSN")
        key = host_working_key(self._bdk, message[53], dukpt.DATA_ENCRYPT)
        try:
            text = cbc.decrypt(key, binascii.unhexlify(cipher)).decode("ascii")
        except (ValueError, UnicodeDecodeError):
            raise SecurityError("enciphered card data does not decipher")
        for part in text.split(";"):
            name, _, value = part.partition("=")
            field = {"T2": 35, "PN": 2, "EX": 14}.get(name)
            if field is None or not value:
                raise SecurityError("enciphered card data is malformed")
            message[field] = value
        if items:
            message[48] = pack_private(sorted(items.items()))
        else:
            del message[48]


class _Bound:
    def __init__(self, bdk, ksn):
        self._bdk, self._ksn = bdk, bytes(ksn)

    def verify(self, data, mac):
        key = host_working_key(self._bdk, self._ksn, dukpt.MAC_GENERATION)
        return aes_cmac_verify(key, data, mac, tag_len=MAC_LEN)

    def sign(self, data):
        key = host_working_key(self._bdk, self._ksn, dukpt.MAC_VERIFICATION)
        return aes_cmac(key, data)[:MAC_LEN]
