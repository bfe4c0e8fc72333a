"""The reference host's I/O: asyncio TCP (+TLS) server and serial lines over one Ledger.

    server = HostServer(ledger, mac=HostDukptMac(bdk), registry=TerminalRegistry(ledger.db))
    host, port = await server.start_tcp("127.0.0.1", 0)        # 0: an ephemeral port
    await server.start_serial(PySerialPort("/dev/ttyUSB0"))    # or FdPort(pty_master)
    ...
    await server.close()

Each TCP connection is read with a TcpFramer; requests on one connection are answered
in order. A message that does not frame or decode is logged and the connection closed
(the stream cannot be trusted any more); a bug while handling one is logged and the
connection closed too. The server itself never stops on client input. On a serial line
a bad frame is NAKed by the link layer; a good frame that does not decode is logged
and dropped.

Group commit: messages that arrive together (on any connection or line) are handled one
after the other inside one ledger transaction - each in its own savepoint - and their
replies leave only after that transaction commits; at most `group_commit` messages per
transaction, waiting at most `group_wait` seconds for more (0: only those already in).
A transaction the database refuses as a conflict with another host process (PostgreSQL:
a serialization failure) is run again from the start, its replies discarded.

Per message: the MAC (a bad one is answered 63, unMACed), then the terminal registry
(registry.py: enrolment, the KSN's device and counter; refused 63, MACed; an exact
repeat gets its stored reply), then the ledger.

Under load and abuse (limits.py): a connection that sends nothing for `idle_timeout`, or
leaves a frame (or a TLS handshake) unfinished for `frame_timeout`, is closed; at most
`max_connections` in all and `max_per_peer` per address are open - a connection over a
limit takes the place of the oldest one that has not yet sent a good message, or is
refused. Running out of file descriptors (EMFILE) sheds the connection waiting, logs a
rate-limited line and keeps accepting.
"""

import asyncio
import errno
import logging
import os
import random
import socket
import ssl
import time

from kapos.errors import DecodeError, KaposError, RemoteProtocolError
from kapos.host import codec
from kapos.host import messages as m
from kapos.host import private48
from kapos.host.codec import MTI
from kapos.host.framing import TcpFramer
from kapos.host.client import bound_mac, encode_message, mac_ok
from kapos.io.transport import SendError, SerialEndpoint
from kapos_tools.host.limits import ConnectionTable, Limits, RateLimitedLog, fd_headroom

log = logging.getLogger("kapos_tools.host")

CHECKED_MTIS = m.REQUEST_MTIS + ("0401", "0421", "0221")
RESOURCE_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def tls_server_context(certfile, keyfile):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context


class HostServer:
    def __init__(self, ledger, mac=None, max_payload=4096, registry=None, limits=None,
                 group_commit=64, group_wait=0.0):
        self.ledger = ledger
        self.group_commit = max(1, int(group_commit))
        self.group_wait = max(0.0, float(group_wait))
        self._queue = []  # (payload, connection, future) waiting for the next transaction
        self._flush_handle = None
        self.batches = {"transactions": 0, "messages": 0, "retries": 0}
        self.mac = mac
        self.registry = registry  # None: no enrolment or KSN checks (in-process tests)
        self.max_payload = max_payload
        self.limits = limits or Limits()
        self.stats = {"messages": 0, "responses": 0, "errors": 0, "connections": 0,
                      "refused_connections": 0, "evicted": 0, "timeouts": 0,
                      "refused_messages": 0}
        self.table = ConnectionTable()
        self.warn = RateLimitedLog(log)
        self._servers = []  # (listening socket, accept task)
        self._serial = []  # (endpoint, task)
        self._clients = set()
        self._reserve_fd = None
        # test hook: callable(request dict) -> seconds to wait before answering, or None
        self.response_delay = None

    # ------------------------------------------------------------ one message

    def process(self, data, connection=None):
        """The encoded response to one encoded request, or None. Raises DecodeError."""
        message = codec.decode(data)
        self.stats["messages"] += 1
        mti = message.get(MTI)
        checked = mti in CHECKED_MTIS
        if self.mac is not None and checked and not mac_ok(data, message, self.mac):
            self.warn.warning("bad-mac", "%s from %s stan %s: bad MAC", mti, message.get(41),
                              message.get(11))
            self.stats["refused_messages"] += 1
            # no MAC on this reply: its sender did not prove it holds the keys of that KSN
            return codec.encode(m.build_response(message, "63"))
        if connection is not None and checked:
            connection.trusted = True
        verdict = None
        if self.registry is not None and checked:
            verdict = self.registry.check(message, data, ksn_checked=self.mac is not None)
            if verdict.reply is not None:
                log.info("%s %s stan %s: a repeat, answered with its stored reply", mti,
                         message.get(41), message.get(11))
                self.stats["responses"] += 1
                return verdict.reply
            if verdict.refusal:
                self.stats["refused_messages"] += 1
                self.warn.warning("refused", "%s from %s stan %s refused (63): %s", mti,
                                  message.get(41), message.get(11), verdict.refusal)
                return encode_message(m.build_response(message, "63"),
                                      self._response_mac(message))
        if not self._decrypt(message) or not self._terminal_status(message):
            response = m.build_response(message, "30")
        else:
            response = self.ledger.handle(message, data)
        if response is None:
            if verdict is not None:
                self.registry.answered(verdict, None)  # its counter is used all the same
            self.warn.warning("not-request", "%s from %s is not a request: dropped", mti,
                              message.get(41))
            return None
        self.stats["responses"] += 1
        log.info("%s %s stan %s %s %s -> %s", mti, message.get(41),
                 message.get(11), message.get(3, message.get(70, "")),
                 message.get(4, ""), response.get(39))
        reply = encode_message(response, self._response_mac(message))
        if verdict is not None:
            self.registry.answered(verdict, reply)
        return reply

    # ------------------------------------------------------------ group commit

    async def submit(self, data, connection=None):
        """process(data) inside the next group commit; the reply once it is committed."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((data, connection, future))
        if len(self._queue) >= self.group_commit:
            self._cancel_flush()
            self._flush_handle = loop.call_soon(self._flush)
        elif self._flush_handle is None:
            if self.group_wait:
                self._flush_handle = loop.call_later(self.group_wait, self._flush)
            else:  # after the reads already due in this turn of the loop
                self._flush_handle = loop.call_soon(self._flush)
        return await future

    def _cancel_flush(self):
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    def _flush(self):
        self._flush_handle = None
        batch, self._queue = self._queue[:self.group_commit], self._queue[self.group_commit:]
        if self._queue:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)
        batch = [item for item in batch if not item[2].done()]  # its connection went away
        if not batch:
            return
        try:
            results = self._run_batch(batch)
        except Exception as exc:  # the commit itself failed (disk, server): nobody is answered
            log.error("ledger transaction of %d message(s) failed: %s", len(batch), exc)
            results = [(None, KaposError("the ledger transaction failed: not answered"))] * len(batch)
        for (_, _, future), (reply, error) in zip(batch, results):
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(reply)

    def _run_batch(self, batch, attempts=10):
        """[(reply, exception)] of each message, all committed in one transaction."""
        db = getattr(self.ledger, "db", None)
        if db is None or not hasattr(db, "transaction"):
            return [self._one(data, connection) for data, connection, _ in batch]
        for attempt in range(attempts):
            results = []
            # one message refused twice already: the third run goes alone (db.py)
            db.alone_next = len(batch) == 1 and attempt >= 2
            try:
                with db.transaction():
                    for data, connection, _ in batch:
                        try:
                            results.append((self.process(data, connection), None))
                        except Exception as exc:
                            if db.is_retryable(exc):
                                raise
                            results.append((None, exc))
                self.batches["transactions"] += 1
                self.batches["messages"] += len(batch)
                return results
            except Exception as exc:
                if not db.is_retryable(exc):
                    raise
                last = "%s: %s" % (type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc) else "")
                self.batches["retries"] += 1
                # both processes on the same rows or index pages: step aside at random,
                # doubling the bound each time (2, 4, 8 ... ms, at most 128 ms) so the
                # two stop colliding at once; 10 runs stay within ~0.5 s, under a
                # terminal's reply timeout
                time.sleep(random.uniform(0, min(0.128, 0.002 * 2 ** attempt)))
                log.info("group commit of %d message(s) conflicted with another host process "
                         "(%s): running it again", len(batch), type(exc).__name__)
        if len(batch) > 1:  # conflicts every time: one message per transaction
            return [r for item in batch for r in self._run_batch([item], attempts)]
        log.warning("the ledger database refused %s %d times as a conflict (%s): not answered",
                    _describe_message(batch[0][0]), attempts, last)
        return [(None, KaposError("the ledger database kept refusing this message as a "
                                  "conflict: not answered"))]

    def _one(self, data, connection):
        try:
            return self.process(data, connection), None
        except Exception as exc:
            return None, exc

    def _terminal_status(self, message):
        """An 0800's field 48 (SV version, ST self-test: private48) checked and kept in the
        registry; False (answered 30) when it does not parse or an item is bad."""
        if message.get(MTI) not in ("0800", "0801") or 48 not in message:
            return True
        try:
            items = private48.parse(message)
        except private48.BadPrivateData as exc:
            self.warn.warning("bad-48", "0800 from %s stan %s: %s: answered 30", message.get(41),
                              message.get(11), exc)
            return False
        version, selftest = items.get(private48.SOFTWARE_VERSION), items.get(private48.SELFTEST)
        if self.registry is not None and (version or selftest):
            self.registry.record_status(str(message.get(41, "")).rstrip(), version, selftest)
        return True

    def _decrypt(self, message):
        """Enciphered card data (48 EC) back into 35 / 2 + 14; False when it fails."""
        decrypt = getattr(self.mac, "decrypt_card_data", None)
        if decrypt is None:
            return True
        try:
            decrypt(message)
            return True
        except Exception as exc:
            self.warn.warning("decrypt", "%s from %s stan %s: %s", message.get(MTI),
                              message.get(41), message.get(11), exc)
            return False

    def _response_mac(self, request):
        """The reply is MACed with the keys of the request's KSN; a request without one
        (refused for it) gets an unMACed reply."""
        if self.mac is None:
            return None
        try:
            return bound_mac(self.mac, request)
        except Exception:
            return None

    async def _delay(self, payload):
        if self.response_delay is not None:
            seconds = self.response_delay(codec.decode(payload))
            if seconds:
                await asyncio.sleep(seconds)

    # ------------------------------------------------------------ TCP

    async def start_tcp(self, host="127.0.0.1", port=8583, tls=None):
        """Listen; returns the (host, port) bound (port 0 picks a free one)."""
        loop = asyncio.get_running_loop()
        headroom = fd_headroom()
        if headroom is not None and self.limits.max_connections > headroom:
            log.warning("at most %d connections: the open-file limit leaves room for no more "
                        "(--max-connections %d)", headroom, self.limits.max_connections)
            self.limits.max_connections = headroom
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._reserve()
        task = loop.create_task(self._accept_loop(sock, tls))
        self._servers.append((sock, task))
        sockname = sock.getsockname()
        return sockname[0], sockname[1]

    def _reserve(self):
        """One spare descriptor, given up to accept-and-close a connection at EMFILE."""
        if self._reserve_fd is None:
            try:
                self._reserve_fd = os.open(os.devnull, os.O_RDONLY)
            except OSError:
                self._reserve_fd = None

    async def _accept_loop(self, sock, tls):
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(sock)
            except asyncio.CancelledError:
                raise
            except OSError as exc:
                if exc.errno in RESOURCE_ERRNOS:
                    self._shed(sock, exc)
                    await asyncio.sleep(0.05)  # let connections finish and free descriptors
                    continue
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                    continue
                self.warn.error("accept", "accept failed: %s", exc.strerror or exc)
                await asyncio.sleep(0.05)
                continue
            self._admit(conn, peer, tls)

    def _shed(self, sock, exc):
        """Out of descriptors: free the spare one, accept and close the waiting connection
        (so it does not sit in the backlog forever), take the spare back."""
        self.stats["refused_connections"] += 1
        self.warn.error("emfile", "cannot accept a connection: %s (%d open): shedding it",
                        exc.strerror or exc, len(self.table))
        if self._reserve_fd is None:
            return
        os.close(self._reserve_fd)
        self._reserve_fd = None
        try:
            conn, _ = sock.accept()
            conn.close()
        except OSError:
            pass
        self._reserve()

    def _admit(self, conn, peer, tls):
        peer_host = peer[0] if isinstance(peer, tuple) else str(peer)
        victim, reason = self.table.make_room(peer_host, self.limits)
        if reason is not None and victim is None:
            self.stats["refused_connections"] += 1
            self.warn.warning("limit", "%s: connection refused: %s", peer_host, reason)
            conn.close()
            return
        if victim is not None:
            self.stats["evicted"] += 1
            self.warn.warning("limit", "%s: %s: closing the oldest connection that sent no "
                              "good message (%s)", peer_host, reason, victim.peer)
            victim.close()
        self.stats["connections"] += 1
        entry = self.table.add(peer_host)
        task = asyncio.get_running_loop().create_task(self._client(conn, peer, tls, entry))
        entry.task = task
        self._clients.add(task)

    async def _open_streams(self, conn, tls):
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2 ** 16)
        protocol = asyncio.StreamReaderProtocol(reader)
        kwargs = {}
        if tls is not None:
            kwargs = {"ssl": tls, "ssl_handshake_timeout": self.limits.frame_timeout}
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, conn, **kwargs)
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

    async def _client(self, conn, peer, tls, entry):
        task = asyncio.current_task()
        writer = None
        framer = TcpFramer(self.max_payload)
        try:
            try:
                reader, writer = await asyncio.wait_for(self._open_streams(conn, tls),
                                                        self.limits.frame_timeout)
            except (asyncio.TimeoutError, ssl.SSLError, OSError, ConnectionError) as exc:
                self.warn.info("handshake", "%s: TLS handshake failed: %s", peer, exc or
                               "timeout")
                conn.close()
                return
            entry.writer = writer
            while True:
                timeout = self.limits.frame_timeout if framer.pending else self.limits.idle_timeout
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), timeout)
                except asyncio.TimeoutError:
                    self.stats["timeouts"] += 1
                    if framer.pending:
                        self.warn.info("timeout", "%s: frame unfinished after %g s (%d bytes):"
                                       " closing", peer, timeout, framer.pending)
                    else:
                        self.warn.info("timeout", "%s: idle for %g s: closing", peer, timeout)
                    break
                if not chunk:
                    if framer.pending:
                        self.warn.warning("mid-message", "%s: closed mid-message (%d bytes)",
                                          peer, framer.pending)
                    break
                for payload in framer.receive(chunk):
                    reply = await self.submit(payload, entry)
                    if reply is not None:
                        await self._delay(payload)
                        writer.write(framer.frame(reply))
                await writer.drain()
        except (DecodeError, RemoteProtocolError) as exc:
            self.stats["errors"] += 1
            self.warn.error("malformed", "%s: malformed input (%s): closing the connection",
                            peer, exc)
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            log.info("%s: connection lost: %s", peer, exc)
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug must cost one connection, never the host
            self.stats["errors"] += 1
            log.exception("%s: error while handling a message: closing the connection", peer)
        finally:
            self._clients.discard(task)
            self.table.remove(entry)
            try:
                if writer is not None:
                    writer.close()
                else:
                    conn.close()
            except Exception:
                pass

    # ------------------------------------------------------------ serial

    async def start_serial(self, port, baudrate=115200, gap=0.02):
        endpoint = SerialEndpoint(port, baudrate=baudrate, gap=gap, name="host serial")
        await endpoint.open()
        task = asyncio.get_running_loop().create_task(self._serial_loop(endpoint))
        self._serial.append((endpoint, task))
        return endpoint

    async def _serial_loop(self, endpoint):
        while True:
            payload = await endpoint.received.get()
            try:
                reply = await self.submit(payload)
            except DecodeError as exc:
                self.stats["errors"] += 1
                self.warn.error("serial", "serial: undecodable message (%s): dropped", exc)
                continue
            except KaposError as exc:
                self.stats["errors"] += 1
                self.warn.error("serial", "serial: %s", exc)
                continue
            except Exception:
                self.stats["errors"] += 1
                log.exception("serial: error while handling a message")
                continue
            if reply is not None:
                await self._delay(payload)
                try:
                    await endpoint.send(reply)
                except SendError as exc:
                    log.warning("serial: response not acknowledged: %s", exc)

    # ------------------------------------------------------------ shutdown

    async def close(self):
        self._cancel_flush()
        for _, _, future in self._queue:
            future.cancel()
        self._queue = []
        for sock, task in self._servers:
            task.cancel()
        for task in list(self._clients):
            task.cancel()
        for endpoint, task in self._serial:
            task.cancel()
        await asyncio.gather(*[t for _, t in self._servers], *[t for _, t in self._serial],
                             *self._clients, return_exceptions=True)
        for sock, _ in self._servers:
            sock.close()
        for endpoint, _ in self._serial:
            endpoint.close()
        if self._reserve_fd is not None:
            os.close(self._reserve_fd)
            self._reserve_fd = None
        self._servers = []
        self._serial = []


def _describe_message(data):
    """'0200 from T stan S' for a log line (no card data); the raw length if it does not decode."""
    try:
        message = codec.decode(data)
        return "%s from %s stan %s" % (message.get(MTI), str(message.get(41, "?")).rstrip(),
                                       message.get(11, "?"))
    except Exception:
        return "a message of %d bytes" % len(data)
