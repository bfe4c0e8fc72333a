"""The reference host's side of the DUKPT MACs: from the BDK and a message's KSN
(field 53) it derives the key the terminal MACed the request with (MAC generation) and
the key it MACs its reply with (MAC verification, on the terminal's side)."""

from kapos.errors import SecurityError
from kapos.security import dukpt
from kapos.security.cmac import aes_cmac, aes_cmac_verify

MAC_LEN = 8


class HostDukptMac:
    def __init__(self, bdk):
        self._bdk = bytes(bdk)

    def bind(self, message):
        ksn = message.get(53)
        if not ksn:
            raise SecurityError("no KSN (field 53): the MAC cannot be checked")
        return _Bound(self._bdk, ksn)


class _Bound:
    def __init__(self, bdk, ksn):
        self._bdk, self._ksn = bdk, bytes(ksn)

    def verify(self, data, mac):
        key = dukpt.host_derive_working_key(self._bdk, self._ksn, dukpt.MAC_GENERATION)
        return aes_cmac_verify(key, data, mac, tag_len=MAC_LEN)

    def sign(self, data):
        key = dukpt.host_derive_working_key(self._bdk, self._ksn, dukpt.MAC_VERIFICATION)
        return aes_cmac(key, data)[:MAC_LEN]
