"""The reference host's side of the DUKPT MACs: from the BDK and a message's KSN
(field 53) it derives the key the terminal MACed the request with (MAC generation) and
the key it MACs its reply with (MAC verification, on the terminal's side). The keys and
the AES-CMAC / CBC are fastkeys.py's, on `cryptography` (OpenSSL)."""

import binascii
import threading

from kapos.errors import SecurityError
from kapos.host.messages import pack_private, unpack_private
from kapos.security import dukpt
from kapos_tools.host.fastkeys import HostKeys, cbc_decrypt, cmac, cmac_verify

MAC_LEN = 8


_keys = {}  # BDK -> fastkeys.HostKeys (one per host, in practice)
_keys_lock = threading.Lock()


def host_keys(bdk):
    bdk = bytes(bdk)
    with _keys_lock:
        keys = _keys.get(bdk)
        if keys is None:
            keys = _keys[bdk] = HostKeys(bdk)
        return keys


def host_working_key(bdk, ksn, usage):
    """BDK + a message's KSN -> the working key of `usage`: the transaction key once per
    KSN (the request MAC, the card data, the PIN block and the reply MAC share it), the
    walk to it shared with the terminal's previous counter (fastkeys.py)."""
    return host_keys(bdk).working_key(ksn, usage)


class HostDukptMac:
    def __init__(self, bdk):
        self._bdk = bytes(bdk)
        self._keys = host_keys(self._bdk)

    def bind(self, message):
        ksn = message.get(53)
        if not ksn:
            raise SecurityError("no KSN (field 53): the MAC cannot be checked")
        return _Bound(self._keys, ksn)

    def decrypt_card_data(self, message):
        """Field 48 EC back into 35 (or 2 + 14), with the data key of the message's KSN."""
        if 48 not in message:
            return
        private = message[48]
        items = unpack_private(private)
        cipher = items.get("EC")
        if cipher is None:
            return
        if not message.get(53):
            raise SecurityError("enciphered card data without a KSN")
        key = self._keys.working_key(message[53], dukpt.DATA_ENCRYPT)
        try:
            text = cbc_decrypt(key, binascii.unhexlify(cipher)).decode("ascii")
        except (ValueError, UnicodeDecodeError):
            raise SecurityError("enciphered card data does not decipher")
        for part in text.split(";"):
            name, _, value = part.partition("=")
            field = _CARD_FIELDS.get(name)
            if field is None or not value:
                raise SecurityError("enciphered card data is malformed")
            message[field] = value
        message[48] = _without_item(private, items, "EC")
        if not message[48]:
            del message[48]


def _without_item(text, items, tag):
    """pack_private(sorted(items less `tag`)): field 48 `text` (unpacked into `items`)
    without that item. When the other items are in sorted order already (a kapos
    terminal packs them so), that is the text with the item cut out, not a new packing."""
    rest = [other for other in items if other != tag]
    if rest != sorted(rest):
        return pack_private(sorted((other, items[other]) for other in rest))
    start = 0
    for other, value in items.items():
        if other == tag:
            return text[:start] + text[start + 5 + len(value):]
        start += 5 + len(value)  # TAG LLL VALUE
    return text


_CARD_FIELDS = {"T2": 35, "PN": 2, "EX": 14}  # what an EC deciphers to (secmodule.py)


class _Bound:
    """The MAC keys of one KSN: the host binds a request once, checks its MAC and MACs
    the reply with the same binding (server.py)."""

    __slots__ = ("_keys", "_ksn")

    def __init__(self, keys, ksn):
        self._keys, self._ksn = keys, bytes(ksn)

    def verify(self, data, mac):
        """Constant-time compare of the 8-byte tag (fastkeys.cmac_verify)."""
        key = self._keys.working_key(self._ksn, dukpt.MAC_GENERATION)
        return cmac_verify(key, data, mac, MAC_LEN)

    def sign(self, data):
        key = self._keys.working_key(self._ksn, dukpt.MAC_VERIFICATION)
        return cmac(key, data)[:MAC_LEN]
