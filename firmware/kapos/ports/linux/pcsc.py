"""Contact chip readers through PC/SC: pcscd + pyscard (any CCID reader, ACR38/ACR39 class,
or vsmartcard's virtual reader in the tests). Board file: `[chip] driver = "pcsc"`,
`reader = "ACS ACR39U"` (a part of the PC/SC reader name; the first reader if empty).

Insertion and removal are events (`wait_insert()`, `wait_removal()`, awaited in a worker
thread with a short timeout so a cancelled task ends promptly). An inserted card is a
ContactCard: `transceive(apdu)` for the EMV kernel (kapos.emv.apdu.Channel), T=0 or T=1
as the card and reader agree. On T=0 a case-4 command goes without its Le (ISO/IEC 7816-3
12.2: the card answers 61xx and the kernel sends GET RESPONSE)."""

import asyncio
import threading

from kapos.errors import CardReadError, ConfigError, HardwareError

WAIT_SLICE_S = 0.5


def _pyscard():
    try:
        from smartcard.CardConnection import CardConnection
        from smartcard.Exceptions import CardConnectionException, NoCardException
        from smartcard.System import readers
    except ImportError as exc:  # pyscard missing: pip install '.[pcsc]'
        raise HardwareError("PC/SC: pyscard is not installed (%s)" % exc)
    return readers, CardConnection, CardConnectionException, NoCardException


def t0_command(apdu):
    """A case-4 short APDU without its Le, as T=0 wants it; other cases unchanged."""
    apdu = bytes(apdu)
    if len(apdu) > 5 and len(apdu) == 6 + apdu[4]:
        return apdu[:-1]
    return apdu


class ContactCard:
    def __init__(self, connection, protocol):
        self.connection = connection
        self.protocol = protocol  # "T=0" or "T=1"
        self.atr = bytes(connection.getATR())
        self._lock = threading.Lock()  # the kernel's thread and the removal watch share the handle

    def transceive(self, apdu):
        if self.protocol == "T=0":
            apdu = t0_command(apdu)
        try:
            with self._lock:
                data, sw1, sw2 = self.connection.transmit(list(apdu))
        except Exception as exc:  # the card was pulled, the reader went away
            raise CardReadError("PC/SC: transmit failed (%s)" % type(exc).__name__)
        return bytes(data) + bytes((sw1, sw2))

    def present(self):
        """Still in the reader (SCardStatus on our own handle: no second connection that
        could reset or power the card down)."""
        try:
            with self._lock:
                self.connection.getATR()
            return True
        except Exception:
            return False

    def close(self):
        try:
            self.connection.disconnect()
        except Exception:
            pass


class PcscContactReader:
    name = "chip"

    def __init__(self, reader="", **options):
        self.reader_name = reader
        self._readers, self._cc, self._conn_error, self._no_card = _pyscard()

    def _reader(self):
        try:
            found = self._readers()
        except Exception as exc:
            raise HardwareError("PC/SC: no pcscd service (%s)" % type(exc).__name__)
        for r in found:
            if self.reader_name in str(r):
                return r
        raise ConfigError("PC/SC: no reader matching %r (readers: %s)"
                          % (self.reader_name, ", ".join(str(r) for r in found) or "none"))

    def _try_connect(self):
        reader = self._reader()
        connection = reader.createConnection()
        try:
            connection.connect(self._cc.T0_protocol | self._cc.T1_protocol)
        except (self._no_card, self._conn_error):
            return None
        protocol = "T=1" if connection.getProtocol() == self._cc.T1_protocol else "T=0"
        return ContactCard(connection, protocol)

    def card_present(self):
        card = self._try_connect()
        if card is None:
            return False
        card.close()
        return True

    async def wait_insert(self):
        """The inserted card (a ContactCard), once one is in the reader."""
        while True:
            card = await asyncio.to_thread(self._try_connect)
            if card is not None:
                return card
            await asyncio.sleep(WAIT_SLICE_S)

    async def wait_removal(self, card=None):
        """Once the card is out: `card` (the ContactCard from wait_insert) is watched on its
        own handle; without one, a probe connection is made each slice."""
        probe = card.present if card is not None else self.card_present
        while await asyncio.to_thread(probe):
            await asyncio.sleep(WAIT_SLICE_S)

    def selftest(self):
        self._reader()
        return True

    def close(self):
        pass
