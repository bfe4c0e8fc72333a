"""Host link transports: one small interface over TCP (optionally TLS) and serial.

    transport = TcpTransport("127.0.0.1", 8583)            # or SerialTransport(url=...)
    await transport.connect()                              # optional: request() connects
    reply = await transport.request(payload, timeout=10.0, accept=None)
    transport.close()

`request` sends one ISO 8583 payload and returns the first payload received afterwards
that `accept(payload)` takes (True). A payload it refuses (False) is stale - e.g. a
duplicate or late reply to an earlier request - and goes to `transport.on_unsolicited`
(a callable, or None); an exception raised by `accept` propagates (the caller decided
the reply is garbled or mismatched). One request is outstanding at a time (requests
queue on a lock): ISO 8583 matching is by STAN, but a terminal never needs two in flight.

Errors (all are `kapos.errors.HostUnavailable`):
    NotDelivered   the payload certainly never left (no connection, port will not open)
    NoReply        it may have been delivered: no reply in time, connection reset or
                   closed, garbled framing, serial send failed after retries.
The difference matters: after NoReply the terminal must reverse; after NotDelivered
there is nothing to reverse.

TCP: `kapos.host.framing.TcpFramer` (2-byte big-endian length). After a NoReply the
connection is dropped (a late or partial reply can never be mistaken for the next one);
the next request reconnects. TLS: pass an `ssl.SSLContext` from `tls_client_context(ca)`
- the CA file is the only trust anchor (a pinned private CA), and the host name is
checked (`server_hostname`, default the address host).

Serial: `kapos.host.framing.SerialLink` (STX LEN payload ETX LRC, ACK/NAK, stop-and-wait,
retransmission) driven by `SerialEndpoint`: the receiver decides about a frame when the
line has been quiet for `gap` seconds (`line_idle()`), the sender retransmits when no
ACK came within the ACK timeout (frame time at the baud rate + 3 gaps + 0.25 s). Ports:
`PySerialPort(url)` - a device path or any pyserial URL (`socket://host:port`,
`loop://`, `rfc2217://`) read by a small thread - or `FdPort(fd)` for a raw file
descriptor (a pty master in tests).
"""

import asyncio
import logging
import os
import ssl
import threading

from kapos.errors import HostUnavailable
from kapos.errors import RemoteProtocolError
from kapos.host.framing import (DEFAULT_MAX_PAYLOAD, DEFAULT_RETRIES, Acked, FrameError,
                                MessageReceived, Retransmit, SendFailed, SerialLink,
                                TcpFramer)

log = logging.getLogger("kapos.io.transport")


class LinkError(HostUnavailable):
    """The host link failed."""


class NotDelivered(LinkError):
    """The payload never left the terminal."""


class NoReply(LinkError):
    """The payload may have been delivered, and no (acceptable) reply came."""


def parse_address(text, default_port=8583):
    """'host:port' / 'host' / '[::1]:8583' -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not host:
        raise ValueError("address %r has no host" % text)
    if port:
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("address %r: bad port" % text)
        return host, int(port)
    return host, default_port


def tls_client_context(cafile, certfile=None, keyfile=None):
    """A client SSLContext trusting only `cafile` (pinned CA), host name checked,
    TLS 1.2 minimum; optional client certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    return context


class Transport:
    """The interface: connect(), request(payload, timeout, accept) -> payload, close()."""

    on_unsolicited = None

    async def connect(self):
        raise NotImplementedError

    async def request(self, payload, timeout, accept=None):
        raise NotImplementedError

    def close(self):
        pass

    def _unsolicited(self, payload):
        handler = self.on_unsolicited
        if handler is None:
            log.info("dropped an unsolicited message of %d bytes", len(payload))
            return
        try:
            handler(payload)
        except Exception:
            log.exception("unsolicited message handler failed")


# ---------------------------------------------------------------- in process

class LoopbackTransport(Transport):
    """A host engine in this process: `engine(payload) -> reply payload or None` (the
    reference host's `HostServer.process`, loaded by the wiring from a `kapos.hosts`
    entry point). The same bytes as over TCP, without a socket: scripted runs, the
    console and the tests authorize through the reference host's rules. `delay`:
    seconds before each reply arrives - the host has decided by then, as a slow network
    delivers a request at once and the reply late (the screen shows 'processing')."""

    # only transactions wait for `delay` (sign-on, echo and settlement answer at once)
    DELAYED_MTIS = (b"0100", b"0200")

    def __init__(self, engine, delay=0.0, name="in-process host"):
        self.engine = engine
        self.delay = delay
        self.name = name

    def __repr__(self):
        return "LoopbackTransport(%s)" % self.name

    async def connect(self):
        return None

    async def request(self, payload, timeout, accept=None):
        try:
            reply = self.engine(bytes(payload))
        except Exception as exc:  # the host refused to decode it: as a host that hangs up
            raise NoReply("the in-process host refused the message: %s" % type(exc).__name__)
        if self.delay and bytes(payload[:4]) in self.DELAYED_MTIS:
            await asyncio.sleep(min(self.delay, timeout))
            if self.delay >= timeout:
                raise NoReply("no reply within %.1f s" % timeout)
        if reply is None:
            raise NoReply("the in-process host did not answer")
        if accept is not None and not accept(reply):
            self._unsolicited(reply)
            raise NoReply("no matching reply from the in-process host")
        return reply

    def close(self):
        close = getattr(self.engine, "close", None)
        if close is not None:
            close()


# ---------------------------------------------------------------- TCP

class TcpTransport(Transport):
    def __init__(self, host, port, tls=None, server_hostname=None, connect_timeout=3.0,
                 max_payload=DEFAULT_MAX_PAYLOAD):
        self.host = host
        self.port = port
        self.tls = tls
        self.server_hostname = server_hostname
        self.connect_timeout = connect_timeout
        self.max_payload = max_payload
        self._reader = None
        self._writer = None
        self._framer = None
        self._lock = None
        self.connects = 0

    def __repr__(self):
        return "TcpTransport(%s:%d%s)" % (self.host, self.port, " tls" if self.tls else "")

    def _alive(self):
        if self._writer is None:
            return False
        if self._writer.is_closing() or self._reader.at_eof() or self._reader.exception():
            return False
        return True

    async def connect(self):
        if self._alive():
            return
        self._drop()
        kwargs = {}
        if self.tls is not None:
            kwargs["ssl"] = self.tls
            kwargs["server_hostname"] = self.server_hostname or self.host
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, **kwargs), self.connect_timeout)
        except asyncio.TimeoutError:
            raise NotDelivered("no connection to %s:%d within %.1f s"
                               % (self.host, self.port, self.connect_timeout))
        except ssl.SSLError as exc:
            raise NotDelivered("TLS handshake with %s:%d failed: %s"
                               % (self.host, self.port, exc.reason or exc))
        except OSError as exc:
            raise NotDelivered("cannot connect to %s:%d: %s"
                               % (self.host, self.port, exc.strerror or exc))
        self._framer = TcpFramer(self.max_payload)
        self.connects += 1

    def _drop(self):
        writer = self._writer
        self._reader = self._writer = self._framer = None
        if writer is not None:
            try:
                writer.close()
            except Exception:  # closing a broken socket or a closed loop
                pass

    async def request(self, payload, timeout, accept=None):
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self.connect()
            framer = self._framer
            data = framer.frame(payload)
            self._flush_buffered(framer)
            try:
                self._writer.write(data)
                await self._writer.drain()
            except (OSError, RuntimeError) as exc:
                self._drop()
                raise NoReply("connection lost while sending: %s" % exc)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            try:
                while True:
                    try:
                        message = framer.next_message()
                    except RemoteProtocolError as exc:
                        raise NoReply("garbled reply: %s" % exc)
                    if message is not None:
                        if accept is None or accept(message):
                            return message
                        self._unsolicited(message)
                        continue
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise NoReply("no reply within %.1f s" % timeout)
                    try:
                        chunk = await asyncio.wait_for(self._reader.read(65536), remaining)
                    except asyncio.TimeoutError:
                        raise NoReply("no reply within %.1f s" % timeout)
                    except OSError as exc:
                        raise NoReply("connection lost: %s" % (exc.strerror or exc))
                    if not chunk:
                        if framer.pending:
                            raise NoReply("truncated reply (%d bytes)" % framer.pending)
                        raise NoReply("connection closed by the host")
                    framer.feed(chunk)
            except BaseException:
                self._drop()
                raise

    def _flush_buffered(self, framer):
        """Complete messages already buffered (duplicates, late replies) are stale."""
        while True:
            try:
                message = framer.next_message()
            except RemoteProtocolError:
                return
            if message is None:
                return
            self._unsolicited(message)

    def close(self):
        self._drop()


# ---------------------------------------------------------------- serial ports

class PySerialPort:
    """A pyserial port by device path or URL, read by a daemon thread that hands the
    bytes to the event loop. write() is called from the loop's thread."""

    def __init__(self, url, baudrate=115200, read_timeout=0.02):
        self.url = url
        self.baudrate = baudrate
        self.read_timeout = read_timeout
        self._serial = None
        self._thread = None
        self._stop = threading.Event()

    def __repr__(self):
        return "PySerialPort(%s)" % self.url

    def open(self, on_bytes, on_error):
        import serial  # pyserial: a port's dependency, imported where it is used

        loop = asyncio.get_running_loop()
        try:
            self._serial = serial.serial_for_url(self.url, baudrate=self.baudrate,
                                                 timeout=self.read_timeout, write_timeout=5)
        except (serial.SerialException, ValueError) as exc:
            raise OSError(str(exc))
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(loop, on_bytes, on_error),
                                        name="serial-reader %s" % self.url, daemon=True)
        self._thread.start()

    def _run(self, loop, on_bytes, on_error):
        port = self._serial
        while not self._stop.is_set():
            try:
                data = port.read(port.in_waiting or 1)
            except Exception as exc:  # port closed, device gone
                if not self._stop.is_set():
                    _call_soon(loop, on_error, exc)
                return
            if data:
                _call_soon(loop, on_bytes, data)

    def write(self, data):
        self._serial.write(data)

    def close(self):
        self._stop.set()
        port, self._serial = self._serial, None
        if port is not None:
            try:
                if hasattr(port, "cancel_read"):
                    port.cancel_read()
            except Exception:
                pass
            try:
                port.close()
            except Exception:
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(1.0)
        self._thread = None


def _call_soon(loop, func, *args):
    try:
        loop.call_soon_threadsafe(func, *args)
    except RuntimeError:  # the loop is closed: nobody is listening any more
        pass


class FdPort:
    """A raw, already open file descriptor (a pty master, a pipe pair) on the event
    loop, non-blocking. The fd is not closed by close() unless `owns` is True."""

    def __init__(self, fd, owns=False):
        self.fd = fd
        self.owns = owns
        self._loop = None
        self._out = b""
        self._on_error = None

    def open(self, on_bytes, on_error):
        self._loop = asyncio.get_running_loop()
        self._on_error = on_error
        os.set_blocking(self.fd, False)
        self._loop.add_reader(self.fd, self._readable, on_bytes)

    def _readable(self, on_bytes):
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(exc)
            return
        if not data:
            self._fail(EOFError("end of file"))
            return
        on_bytes(data)

    def _fail(self, exc):
        self._loop.remove_reader(self.fd)
        self._loop.remove_writer(self.fd)
        if self._on_error is not None:
            self._on_error(exc)

    def write(self, data):
        if self._out:
            self._out += data
            return
        try:
            n = os.write(self.fd, data)
        except BlockingIOError:
            n = 0
        if n < len(data):
            self._out = bytes(data[n:])
            self._loop.add_writer(self.fd, self._writable)

    def _writable(self):
        try:
            n = os.write(self.fd, self._out)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(exc)
            return
        self._out = self._out[n:]
        if not self._out:
            self._loop.remove_writer(self.fd)

    def close(self):
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self.fd)
            self._loop.remove_writer(self.fd)
        if self.owns:
            try:
                os.close(self.fd)
            except OSError:
                pass


# ---------------------------------------------------------------- serial link driver

class SendError(Exception):
    """A serial frame was not acknowledged after its retransmissions (or the port failed)."""


class SerialEndpoint:
    """One end of a serial host link: SerialLink + the two timers it needs.

    `await open()`, then `await send(payload)` (returns once ACKed; SendError after the
    retries) and `await received.get()` for each good frame (already ACKed).
    """

    def __init__(self, port, baudrate=115200, gap=0.02, ack_timeout=None,
                 retries=DEFAULT_RETRIES, max_payload=DEFAULT_MAX_PAYLOAD, name="serial"):
        self.port = port
        self.baudrate = baudrate
        self.gap = gap
        self.ack_timeout = ack_timeout
        self.retries = retries
        self.max_payload = max_payload
        self.name = name
        self.link = SerialLink(max_payload, retries)
        self.received = None
        self.broken = None  # the exception that broke the port, or None
        self.frame_errors = 0
        self.retransmissions = 0
        self._loop = None
        self._idle_handle = None
        self._outcome = None
        self._last_write = 0.0
        self._send_lock = None

    async def open(self):
        self._loop = asyncio.get_running_loop()
        self.received = asyncio.Queue()
        self._send_lock = asyncio.Lock()
        self.broken = None
        self.port.open(self._on_bytes, self._on_error)

    def close(self):
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        self.port.close()

    def frame_time(self, size):
        """Seconds to send `size` bytes at the baud rate (10 bits a byte)."""
        return size * 10.0 / self.baudrate

    def _on_error(self, exc):
        log.error("%s: port failed: %s", self.name, exc)
        self.broken = exc
        self._settle(SendError("port failed: %s" % exc))

    def _on_bytes(self, data):
        for event in self.link.receive(data):
            self._handle(event)
        if self.link.receiving:
            if self._idle_handle is not None:
                self._idle_handle.cancel()
            self._idle_handle = self._loop.call_later(self.gap, self._line_idle)

    def _line_idle(self):
        self._idle_handle = None
        for event in self.link.line_idle():
            self._handle(event)

    def _handle(self, event):
        if event.write:
            self._write(event.write)
        kind = type(event)
        if kind is MessageReceived:
            self.received.put_nowait(event.payload)
        elif kind is FrameError:
            self.frame_errors += 1
            log.warning("%s: bad frame (%s, %d bytes skipped): NAK", self.name, event.reason,
                        event.skipped)
        elif kind is Acked:
            self._settle(None)
        elif kind is Retransmit:
            self.retransmissions += 1
            self._last_write = self._loop.time()
        elif kind is SendFailed:
            self._settle(SendError(event.reason))

    def _write(self, data):
        try:
            self.port.write(data)
        except Exception as exc:
            self._on_error(exc)

    def _settle(self, error):
        outcome = self._outcome
        if outcome is not None and not outcome.done():
            if error is None:
                outcome.set_result(None)
            else:
                outcome.set_exception(error)

    async def send(self, payload):
        async with self._send_lock:
            if self.broken is not None:
                raise SendError("port failed: %s" % self.broken)
            loop = self._loop
            self._outcome = outcome = loop.create_future()
            data = self.link.send(payload)
            ack_timeout = self.ack_timeout or (self.frame_time(len(data)) + 3 * self.gap + 0.25)
            self._write(data)
            self._last_write = loop.time()
            try:
                while not outcome.done():
                    wait = self._last_write + ack_timeout - loop.time()
                    if wait > 0:
                        await asyncio.wait([outcome], timeout=wait)
                        continue
                    for event in self.link.timeout():
                        self._handle(event)
                        if type(event) is Retransmit:
                            self._last_write = loop.time()
                outcome.result()
            finally:
                self._outcome = None
                if self.link.awaiting_ack:  # cancelled or port failed mid-send: start afresh
                    self.link = SerialLink(self.max_payload, self.retries)


class SerialTransport(Transport):
    """The terminal's serial host link (see the module docstring)."""

    def __init__(self, url=None, port=None, baudrate=115200, gap=0.02, ack_timeout=None,
                 retries=DEFAULT_RETRIES, max_payload=DEFAULT_MAX_PAYLOAD):
        if (url is None) == (port is None):
            raise ValueError("give a serial url or a port")
        self.url = url
        self.port = port
        self.baudrate = baudrate
        self.gap = gap
        self.ack_timeout = ack_timeout
        self.retries = retries
        self.max_payload = max_payload
        self.endpoint = None
        self._lock = None

    def __repr__(self):
        return "SerialTransport(%s)" % (self.url or self.port)

    async def connect(self):
        if self.endpoint is not None and self.endpoint.broken is None:
            return
        if self.endpoint is not None:
            self.endpoint.close()
            self.endpoint = None
        port = self.port if self.port is not None else PySerialPort(self.url, self.baudrate)
        endpoint = SerialEndpoint(port, self.baudrate, self.gap, self.ack_timeout, self.retries,
                                  self.max_payload, name="serial %s" % (self.url or "port"))
        try:
            await endpoint.open()
        except OSError as exc:
            raise NotDelivered("cannot open serial port %s: %s" % (self.url or port, exc))
        self.endpoint = endpoint

    async def request(self, payload, timeout, accept=None):
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self.connect()
            endpoint = self.endpoint
            while not endpoint.received.empty():
                self._unsolicited(endpoint.received.get_nowait())
            try:
                await endpoint.send(payload)
            except SendError as exc:
                raise NoReply("serial send failed: %s" % exc)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise NoReply("no reply within %.1f s" % timeout)
                try:
                    message = await asyncio.wait_for(endpoint.received.get(), remaining)
                except asyncio.TimeoutError:
                    if endpoint.broken is not None:
                        raise NoReply("serial port failed: %s" % endpoint.broken)
                    raise NoReply("no reply within %.1f s" % timeout)
                if accept is None or accept(message):
                    return message
                self._unsolicited(message)

    def close(self):
        if self.endpoint is not None:
            self.endpoint.close()
            self.endpoint = None
