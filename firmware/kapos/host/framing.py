"""Sans-I/O framers for the host link: bytes in, messages and events out.

No sockets, no clock, no threads (the h11 style): the caller reads bytes from its
transport and feeds them in, writes the bytes it is handed, and tells the link when a
timer it owns has expired. The ISO 8583 message is the payload; framing adds nothing
to it.

TCP: TcpFramer
--------------
    +-----------+------------------+
    | LEN (2)   | payload (LEN)    |     LEN: big-endian payload length, 1..max_payload
    +-----------+------------------+

A length of 0 or over `max_payload` (default 4096) raises RemoteProtocolError: the
stream cannot be resynchronised, drop the connection. After that the framer refuses all
further use. `pending` says how many bytes are buffered (non-zero at EOF = truncated).

Serial: SerialFramer (one direction of bytes) and SerialLink (the whole link)
-------------------------------------------------------------------------------
    +-----+---------+------------------+-----+-----+
    | STX | LEN (2) | payload (LEN)    | ETX | LRC |
    +-----+---------+------------------+-----+-----+
    STX 0x02, ETX 0x03, LEN big-endian payload length 1..max_payload,
    LRC = XOR of every byte from the first LEN byte to ETX inclusive.

Stop-and-wait; the caller owns two timers. The receiver decides about a frame when the
line has gone quiet after it (the caller calls `line_idle()` once no byte has arrived for
the inter-byte gap, e.g. 20 ms): a good frame that nothing but ACK/NAK bytes followed
is delivered (MessageReceived, write ACK 0x06); anything else (bad length, missing ETX,
LRC mismatch, bytes after the frame, an incomplete frame, stray bytes between frames)
is discarded up to the quiet point and answered with NAK 0x15 (FrameError). No byte of
a bad frame is ever re-read as the start of another frame, so a frame hidden inside a
payload cannot be delivered. Between frames, ACK and NAK are control bytes for the
sender; inside a frame no byte is interpreted.

Guarantee (tested): any single substituted byte in a frame, STX and LEN included, is
detected - a corrupted LEN either leaves the frame incomplete or leaves bytes after a
shorter frame, and LRC catches the rest. Not promised: detection of every multi-byte
error (two flips of the same bit cancel in the XOR); a lost ACK makes the sender
retransmit, so a payload can arrive twice; noise turning a NAK into an ACK loses a
frame. End to end, the ISO 8583 layer covers these: the MAC (integrity), STAN matching
and duplicate detection (response 94), and a reversal when no response comes.

The sender keeps one frame outstanding. On NAK, or when the caller's ACK timer expires
(`timeout()`), it retransmits, up to `retries` (default 3) times; the next NAK/timeout
reports SendFailed. The ACK timeout must exceed the time to send the longest frame plus
the peer's inter-byte gap (it ACKs when its line goes quiet).

Events (each has `write`: the bytes the caller must write now, b"" if none)
    MessageReceived(payload)   a good frame (from line_idle); write = ACK
    FrameError(reason, skipped)  a bad frame / stray bytes (from line_idle); write = NAK
    BytesSkipped(count)        ACK or NAK bytes received with no frame outstanding
    Acked()                    the outstanding frame was acknowledged
    Retransmit(data)           write = the outstanding frame again
    SendFailed(reason)         retries exhausted; the frame is dropped
    AckReceived() / NakReceived()   (SerialFramer.feed only: raw control bytes)
"""

from kapos.errors import LocalProtocolError, RemoteProtocolError
# the TCP framer is its own module: the Pico W loads only that one
from kapos.host.tcp_framing import DEFAULT_MAX_PAYLOAD, TcpFramer, _check_payload, _length_bytes  # noqa: F401

STX = 0x02
ETX = 0x03
ACK = 0x06
NAK = 0x15
ACK_BYTES = b"\x06"
NAK_BYTES = b"\x15"

DEFAULT_RETRIES = 3


def lrc(data):
    """XOR of all bytes of `data`."""
    value = 0
    for byte in data:
        value ^= byte
    return value


# ---------------------------------------------------------------- serial events

class Event:
    write = b""

    def __eq__(self, other):
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join(
            "%s=%r" % (k, self.__dict__[k]) for k in sorted(self.__dict__)))


class MessageReceived(Event):
    write = ACK_BYTES

    def __init__(self, payload):
        self.payload = payload

    def __repr__(self):  # payloads carry card data: never print them
        return "MessageReceived(<%d bytes>)" % len(self.payload)


class FrameError(Event):
    write = NAK_BYTES

    def __init__(self, reason, skipped=0):
        self.reason = reason
        self.skipped = skipped


class BytesSkipped(Event):
    def __init__(self, count):
        self.count = count


class AckReceived(Event):
    pass


class NakReceived(Event):
    pass


class Acked(Event):
    pass


class Retransmit(Event):
    def __init__(self, data):
        self.data = data
        self.write = data

    def __repr__(self):
        return "Retransmit(<%d bytes>)" % len(self.data)


class SendFailed(Event):
    def __init__(self, reason):
        self.reason = reason


# ---------------------------------------------------------------- serial framer

IDLE = "idle"  # between frames
HEADER = "header"  # STX seen, reading LEN
BODY = "body"  # reading payload, ETX, LRC
COMPLETE = "complete"  # a good frame, delivered once the line goes quiet
DISCARD = "discard"  # after a bad frame or stray bytes, until line_idle()


class SerialFramer:
    """STX | LEN | payload | ETX | LRC frames: build them, and parse a received stream.

    feed() reports control bytes at once; frames are reported by line_idle(), once the
    line has gone quiet right after them (see the module docstring).
    """

    def __init__(self, max_payload=DEFAULT_MAX_PAYLOAD):
        if not 0 < max_payload <= 0xFFFF:
            raise ValueError("max_payload must be 1..65535")
        self.max_payload = max_payload
        self.state = IDLE
        self._frame = bytearray()
        self._need = 0
        self._reason = None
        self._skipped = 0

    def frame(self, payload):
        """The bytes to write for `payload`."""
        _check_payload(payload, self.max_payload)
        body = _length_bytes(len(payload)) + bytes(payload) + bytes((ETX,))
        return bytes((STX,)) + body + bytes((lrc(body),))

    def feed(self, data):
        """Parse received bytes; returns the control bytes seen, as AckReceived /
        NakReceived events (frames come out of line_idle())."""
        events = []
        i = 0
        n = len(data)
        while i < n:
            state = self.state
            if state == DISCARD:
                self._skipped += n - i
                break
            if state == IDLE or state == COMPLETE:
                byte = data[i]
                i += 1
                if byte == ACK:
                    events.append(AckReceived())
                elif byte == NAK:
                    events.append(NakReceived())
                elif state == IDLE and byte == STX:
                    self.state = HEADER
                    self._frame = bytearray()
                    self._need = 2
                elif state == IDLE:
                    self._fail("stray bytes", 1)
                else:
                    self._fail("bytes after the frame", len(self._frame) + 1)
                continue
            frame = self._frame
            take = min(self._need - len(frame), n - i)
            frame.extend(data[i:i + take])
            i += take
            if len(frame) < self._need:
                continue
            if state == HEADER:
                size = (frame[0] << 8) | frame[1]
                if size == 0 or size > self.max_payload:
                    self._fail("bad length %d" % size, len(frame) + 1)
                else:
                    self.state = BODY
                    self._need = 2 + size + 2
            elif frame[-2] != ETX:
                self._fail("no ETX", len(frame) + 1)
            elif lrc(frame[:-1]) != frame[-1]:
                self._fail("bad LRC", len(frame) + 1)
            else:
                self.state = COMPLETE
        return events

    def line_idle(self):
        """The line has been quiet for the inter-byte gap. Returns [MessageReceived] for
        a good frame (write = ACK), [FrameError] for a bad or incomplete frame or stray
        bytes (write = NAK), [] when nothing was pending."""
        state = self.state
        if state == IDLE:
            return []
        if state == COMPLETE:
            event = MessageReceived(bytes(self._frame[2:-2]))
        elif state == DISCARD:
            event = FrameError(self._reason, self._skipped)
        else:
            event = FrameError("incomplete frame", len(self._frame) + 1)
        self.state = IDLE
        self._frame = bytearray()
        self._reason = None
        self._skipped = 0
        return [event]

    def _fail(self, reason, skipped):
        self.state = DISCARD
        self._reason = reason
        self._skipped = skipped
        self._frame = bytearray()


class SerialLink:
    """Both directions of a serial host link: framer + stop-and-wait sender.

        write(link.send(payload))
        for event in link.receive(read_bytes()): write(event.write); handle(event)
        if link.awaiting_ack and the ACK timer expired: events = link.timeout()
        if link.receiving and the line was quiet for the gap: events = link.line_idle()
    """

    def __init__(self, max_payload=DEFAULT_MAX_PAYLOAD, retries=DEFAULT_RETRIES):
        self.framer = SerialFramer(max_payload)
        self.retries = retries
        self._outstanding = None
        self._retransmits = 0

    @property
    def awaiting_ack(self):
        """True while a sent frame is neither acknowledged nor failed."""
        return self._outstanding is not None

    @property
    def receiving(self):
        """True while a received frame is incomplete or being discarded."""
        return self.framer.state != IDLE

    def send(self, payload):
        """The bytes to write for `payload`; one frame at a time (stop-and-wait)."""
        if self._outstanding is not None:
            raise LocalProtocolError("a frame is still waiting for its ACK")
        data = self.framer.frame(payload)
        self._outstanding = data
        self._retransmits = 0
        return data

    def receive(self, data):
        """Received bytes -> list of events (Acked, Retransmit, SendFailed, BytesSkipped)."""
        return self._route(self.framer.feed(data))

    def _route(self, events):
        out = []
        for event in events:
            if type(event) is AckReceived:
                if self._outstanding is None:
                    out.append(BytesSkipped(1))
                else:
                    self._outstanding = None
                    out.append(Acked())
            elif type(event) is NakReceived:
                if self._outstanding is None:
                    out.append(BytesSkipped(1))
                else:
                    out.append(self._retry("NAK"))
            else:
                out.append(event)
        return out

    def timeout(self):
        """The ACK timer expired: [Retransmit] or [SendFailed]; [] if nothing is pending."""
        if self._outstanding is None:
            return []
        return [self._retry("no ACK")]

    def line_idle(self):
        """The line has been quiet for the inter-byte gap: [MessageReceived] (write the
        ACK), [FrameError] (write the NAK) or [] (see SerialFramer.line_idle)."""
        return self._route(self.framer.line_idle())

    def _retry(self, why):
        if self._retransmits >= self.retries:
            self._outstanding = None
            return SendFailed("%s after %d retransmissions" % (why, self.retries))
        self._retransmits += 1
        return Retransmit(self._outstanding)
