"""Command APDUs and the exchange rules every EMV reader needs: GET RESPONSE on 61xx and a
resend with the card's Le on 6Cxx (ISO/IEC 7816-4 5.1.3; EMV Book 1 9.3). Values from the
card never go into an error message: status words and command names only."""

from kapos.compat import const
from kapos.errors import RemoteProtocolError

SW_OK = const(0x9000)
SW_SELECTED_FILE_INVALIDATED = const(0x6283)  # application blocked
SW_FUNCTION_NOT_SUPPORTED = const(0x6A81)
SW_FILE_NOT_FOUND = const(0x6A82)
SW_RECORD_NOT_FOUND = const(0x6A83)
SW_CONDITIONS_NOT_SATISFIED = const(0x6985)
MAX_GET_RESPONSE = const(16)
MAX_RESPONSE = const(4096)

NAMES = {0xA4: "SELECT", 0xA8: "GET PROCESSING OPTIONS", 0xB2: "READ RECORD",
         0xAE: "GENERATE AC", 0x2A: "COMPUTE CRYPTOGRAPHIC CHECKSUM", 0xC0: "GET RESPONSE",
         0xCA: "GET DATA", 0x20: "VERIFY", 0x82: "EXTERNAL AUTHENTICATE"}


def command(cla, ins, p1, p2, data=None, le=0):
    """A short command APDU: case 1/2 without data, case 3/4 with; le None = no Le byte."""
    out = bytes((cla, ins, p1, p2))
    if data is not None:
        if len(data) > 255:
            raise RemoteProtocolError("APDU data longer than 255 bytes")
        out += bytes((len(data),)) + bytes(data)
    if le is not None:
        out += bytes((le & 0xFF,))
    return out


def name_of(ins):
    return NAMES.get(ins, "INS %02X" % ins)


def _split(resp):
    if resp is None or len(resp) < 2:
        raise RemoteProtocolError("response APDU shorter than its status word")
    return bytes(resp[:-2]), (resp[-2] << 8) | resp[-1]


class Channel:
    """APDUs over one `transceive(apdu) -> response bytes` (ISO-DEP exchange, PC/SC
    transmit, a transcript...). `trace`, when a list, gets (command, response) pairs."""

    def __init__(self, transceive, trace=None):
        self._transceive = transceive
        self.trace = trace
        self.count = 0

    def _raw(self, apdu):
        resp = self._transceive(apdu)
        self.count += 1
        if self.trace is not None:
            self.trace.append((bytes(apdu), bytes(resp or b"")))
        return _split(resp)

    def send(self, cla, ins, p1, p2, data=None, le=0):
        """(data, sw) of one command, after 6Cxx / 61xx handling."""
        apdu = command(cla, ins, p1, p2, data, le)
        body, sw = self._raw(apdu)
        if sw >> 8 == 0x6C:  # wrong Le: the card says the right one; send once more
            body, sw = self._raw(apdu[:-1] + bytes((sw & 0xFF,)) if le is not None
                                 else apdu + bytes((sw & 0xFF,)))
        rounds = 0
        while sw >> 8 == 0x61:  # more bytes waiting: GET RESPONSE (bounded)
            rounds += 1
            if rounds > MAX_GET_RESPONSE or len(body) > MAX_RESPONSE:
                raise RemoteProtocolError("%s: too many GET RESPONSE rounds" % name_of(ins))
            more, sw = self._raw(command(0x00, 0xC0, 0x00, 0x00, None, sw & 0xFF))
            body += more
        return body, sw
