"""TCP framing alone (2-byte big-endian length prefix), so a small board that talks TCP
only (the Pico W) loads this and not the serial link; `kapos.host.framing` re-exports
it, and documents both."""

from kapos.errors import LocalProtocolError, RemoteProtocolError

DEFAULT_MAX_PAYLOAD = 4096


def _check_payload(payload, max_payload):
    if not isinstance(payload, (bytes, bytearray)):
        raise LocalProtocolError("a payload is bytes")
    if not 0 < len(payload) <= max_payload:
        raise LocalProtocolError("payload of %d bytes (1..%d allowed)"
                                 % (len(payload), max_payload))


def _length_bytes(n):
    return bytes(((n >> 8) & 0xFF, n & 0xFF))


class TcpFramer:
    """2-byte big-endian length-prefixed messages over a byte stream."""

    def __init__(self, max_payload=DEFAULT_MAX_PAYLOAD):
        if not 0 < max_payload <= 0xFFFF:
            raise ValueError("max_payload must be 1..65535")
        self.max_payload = max_payload
        self._buf = b""
        self._pos = 0
        self._broken = False

    def frame(self, payload):
        """The bytes to write for `payload`."""
        _check_payload(payload, self.max_payload)
        return _length_bytes(len(payload)) + bytes(payload)

    def feed(self, data):
        """Add received bytes; then call next_message() until it returns None."""
        self._check()
        if data:
            if self._pos:
                self._buf = self._buf[self._pos:]
                self._pos = 0
            self._buf += bytes(data)

    def next_message(self):
        """The next complete payload, or None if more bytes are needed."""
        self._check()
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < 2:
            return None
        size = (buf[pos] << 8) | buf[pos + 1]
        if size == 0 or size > self.max_payload:
            self._broken = True
            raise RemoteProtocolError("TCP frame length %d (1..%d allowed): drop the connection"
                                      % (size, self.max_payload))
        end = pos + 2 + size
        if len(buf) < end:
            return None
        self._pos = end
        return buf[pos + 2:end]

    def receive(self, data):
        """feed(data) and return every complete payload, as a list."""
        self.feed(data)
        out = []
        while True:
            payload = self.next_message()
            if payload is None:
                return out
            out.append(payload)

    @property
    def pending(self):
        """Bytes buffered and not yet returned as a message."""
        return len(self._buf) - self._pos

    def _check(self):
        if self._broken:
            raise RemoteProtocolError("the TCP framer failed earlier: drop the connection")
