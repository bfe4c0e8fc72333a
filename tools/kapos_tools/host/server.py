"""The reference host's I/O: asyncio TCP (+TLS) server and serial lines over one Ledger.

    server = HostServer(ledger, mac=HostDukptMac(bdk), registry=TerminalRegistry(ledger.db))
    host, port = await server.start_tcp("127.0.0.1", 0)        # 0: an ephemeral port
    await server.start_serial(PySerialPort("/dev/ttyUSB0"))    # or FdPort(pty_master)
    ...
    await server.close()

Each TCP connection is an asyncio.BufferedProtocol (TcpClient, at the end of this file): its bytes
go through a TcpFramer into the group commit, and the replies go out in request order as
soon as their transaction commits - no task, stream or timeout object per message. At
most `max_in_flight` messages of one connection are in the group commit at once, and a
connection whose replies are not read (its write buffer full) is not read either. A
message that does not frame or decode is logged and the connection closed (the stream
cannot be trusted any more; what it sent after that is not applied); a bug while
handling one is logged and the connection closed too. The server itself never stops on client input. On a serial line
a bad frame is NAKed by the link layer; a good frame that does not decode is logged
and dropped.

Group commit: messages that arrive together (on any connection or line) are handled one
after the other inside one ledger transaction - each in its own savepoint - and their
replies leave only after that transaction commits; at most `group_commit` messages per
transaction, waiting at most `group_wait` seconds for more (0: only those already in)
when the last transaction had more than one message: a terminal alone never waits.
A transaction the database refuses as a conflict with another host process (PostgreSQL:
a serialization failure) is run again from the start, its replies discarded.

Per message: the MAC (a bad one is answered 63, unMACed), then the terminal registry
(registry.py: enrolment, the KSN's device and counter; refused 63, MACed; an exact
repeat gets its stored reply), then the ledger.

Under load and abuse (limits.py): a connection that sends nothing for `idle_timeout`, or
leaves a frame (or a TLS handshake) unfinished for `frame_timeout` from its first byte,
is closed (one timer per connection, moved only when a deadline comes earlier); at most
`max_connections` in all and `max_per_peer` per address are open - a connection over a
limit takes the place of the oldest one that has not yet sent a good message, or is
refused. Running out of file descriptors (EMFILE) sheds the connection waiting, logs a
rate-limited line and keeps accepting.
"""

import asyncio
import collections
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
from kapos_tools.host.db import RunAgainWithSavepoints
from kapos_tools.host.limits import (DEFAULT_MAX_IN_FLIGHT, ConnectionTable, Limits, RateLimitedLog,
                                     fd_headroom)

log = logging.getLogger("kapos_tools.host")

# every MTI the ledger acts on - each request and its repeat (0201, 0101, 0801 ...: the
# ledger takes a repeat for its request) - needs a good MAC and passes the registry
CHECKED_MTIS = frozenset(m.REQUEST_MTIS + tuple(mti[:3] + "1" for mti in m.REQUEST_MTIS))
RESOURCE_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
MAX_IN_FLIGHT = DEFAULT_MAX_IN_FLIGHT  # (limits.py; kapos host --max-in-flight)
NOT_PROCESSED = KaposError("an earlier message on this connection failed: not processed")
GROUP_ATTEMPTS = 10  # runs of a group transaction the database refuses as a conflict


class _Seal:
    """The reply to one request, encoded and MACed once: the ledger stores (Ledger._store)
    the very bytes the terminal then gets, instead of a second, unMACed encoding."""

    __slots__ = ("mac", "response", "data")

    def __init__(self, mac):
        self.mac, self.response, self.data = mac, None, None

    def __call__(self, response):
        self.response, self.data = response, encode_message(response, self.mac)
        return self.data


def _backoff(attempt):
    """Seconds to step aside after conflict number `attempt` (0 first) with another host
    process on the same rows or index pages: at random, the bound doubling each time
    (2, 4, 8 ... ms, at most 128 ms) so the two stop colliding at once; ten runs stay
    within ~0.5 s, under a terminal's reply timeout."""
    return random.uniform(0, min(0.128, 0.002 * 2 ** attempt))


def tls_server_context(certfile, keyfile):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context


class HostServer:
    def __init__(self, ledger, mac=None, max_payload=4096, registry=None, limits=None,
                 group_commit=64, group_wait=0.0, max_in_flight=MAX_IN_FLIGHT):
        self.ledger = ledger
        self.max_in_flight = max(1, int(max_in_flight))
        self.group_commit = max(1, int(group_commit))
        self.group_wait = max(0.0, float(group_wait))
        self._queue = []  # (payload, connection, future) waiting for the next transaction
        self._flush_handle = None
        # (timer, batch) of a group waiting to run again after a conflict, or None
        self._rerun = None
        self._last_conflict = ""
        self.batches = {"transactions": 0, "messages": 0, "retries": 0}
        self._last_group = 0  # messages in the last transaction: > 1 means load, worth a wait
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
        self._clients = set()  # TcpClient
        self.receive_buffer = memoryview(bytearray(RECEIVE_BUFFER_SIZE))  # (TcpClient)
        self._opening = set()  # tasks: a connection's transport (TLS handshake) being made
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
        # one binding (DUKPT: the keys of the message's KSN) for the request's MAC and the
        # reply's; None when the message cannot be bound (no KSN: its MAC does not verify)
        bound = self._bind(message) if self.mac is not None and checked else None
        if self.mac is not None and checked and (bound is None or not mac_ok(data, message, bound)):
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
                                      self._response_mac(message, bound))
        seal = None
        if not self._decrypt(message) or not self._terminal_status(message):
            response = m.build_response(message, "30")
        else:  # the ledger stores the response as the reply's own bytes (_Seal)
            seal = _Seal(self._response_mac(message, bound))
            response = self.ledger.handle(message, encode=seal)
        if response is None:
            if verdict is not None:
                self.registry.answered(verdict, None)  # its counter is used all the same
            self.warn.warning("not-request", "%s from %s is not a request: dropped", mti,
                              message.get(41))
            return None
        self.stats["responses"] += 1
        if log.isEnabledFor(logging.INFO):  # (not its arguments per message under --quiet)
            log.info("%s %s stan %s %s %s -> %s", mti, message.get(41),
                     message.get(11), message.get(3, message.get(70, "")),
                     message.get(4, ""), response.get(39))
        if seal is not None and seal.response is response:
            reply = seal.data  # encoded and MACed once, when the ledger stored it
        else:
            reply = encode_message(response, self._response_mac(message, bound))
        if verdict is not None:
            self.registry.answered(verdict, reply)
        return reply

    # ------------------------------------------------------------ group commit

    async def submit(self, data, connection=None):
        """process(data) inside the next group commit; the reply once it is committed."""
        future = asyncio.get_running_loop().create_future()
        self._enqueue(data, connection, future)
        return await future

    def _enqueue(self, data, connection, sink):
        """Queue one message for the next transaction; `sink` is resolved like a future
        (done / set_result / set_exception / cancel) once that transaction commits."""
        queue = self._queue
        queue.append((data, connection, sink))
        if len(queue) >= self.group_commit:
            self._cancel_flush()
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)
        elif self._flush_handle is None:
            loop = asyncio.get_running_loop()
            if self.group_wait and self._last_group > 1:
                # under load (the last transaction had company): wait for more to share it
                self._flush_handle = loop.call_later(self.group_wait, self._flush)
            else:  # alone, or no wait: after the reads already due in this turn of the loop
                self._flush_handle = loop.call_soon(self._flush)

    def _cancel_flush(self):
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    def _flush(self):
        self._flush_handle = None
        if self._rerun is not None:  # a group waits to run again: nothing overtakes it
            return
        batch, self._queue = self._queue[:self.group_commit], self._queue[self.group_commit:]
        self._flush_soon()
        batch = [item for item in batch if not item[2].done()]  # its connection went away
        self._last_group = len(batch)
        if batch:
            self._run_group(batch, 0)

    def _flush_soon(self):
        if self._queue and self._flush_handle is None and self._rerun is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _run_group(self, batch, attempt):
        """One run of a group's transaction on the event loop. A conflict with another
        host process is run again after a random pause during which the loop goes on
        (reads, replies, timers of every connection); no later message is applied
        before it, so each connection's messages keep their order."""
        self._rerun = None
        try:
            results = self._attempt(batch, attempt)
            if results is None and attempt + 1 < GROUP_ATTEMPTS:
                self._rerun = (asyncio.get_running_loop().call_later(
                    _backoff(attempt), self._run_group, batch, attempt + 1), batch)
                return
            if results is None:
                # conflicts every time: one message per transaction, its pauses on this
                # thread (rare: GROUP_ATTEMPTS conflicts in a row; the third run of a
                # message alone cannot conflict)
                results = self._exhausted(batch)
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
        self._flush_soon()

    def _run_batch(self, batch, attempts=None):
        """[(reply, exception)] of each message, all committed in one transaction (in
        process: a conflict is run again after a pause on this thread)."""
        attempts = GROUP_ATTEMPTS if attempts is None else attempts
        for attempt in range(attempts):
            results = self._attempt(batch, attempt)
            if results is not None:
                return results
            if attempt + 1 < attempts:
                time.sleep(_backoff(attempt))
        return self._exhausted(batch, attempts)

    def _attempt(self, batch, attempt):
        """Run the group's transaction once: [(reply, exception)] of each message, or
        None when the database refused it as a conflict (its replies discarded)."""
        db = getattr(self.ledger, "db", None)
        if db is None or not hasattr(db, "transaction"):
            return self._process_all(batch, lambda exc: False)
        for _ in range(2):  # a doomed group runs once more at once, with savepoints
            # one message refused twice already: the third run goes alone (db.py)
            db.alone_next = len(batch) == 1 and attempt >= 2
            try:
                with db.transaction():
                    results = self._process_all(batch, db.is_retryable)
            except Exception as exc:
                if not db.is_retryable(exc):
                    raise
                if isinstance(exc, RunAgainWithSavepoints):
                    continue  # a message failed in a group without savepoints
                self._last_conflict = "%s: %s" % (type(exc).__name__, str(exc).strip().splitlines()[0]
                                                  if str(exc) else "")
                self.batches["retries"] += 1
                log.info("group commit of %d message(s) conflicted with another host process "
                         "(%s): running it again", len(batch), type(exc).__name__)
                return None
            self.batches["transactions"] += 1
            self.batches["messages"] += len(batch)
            return results
        raise KaposError("a group transaction was doomed twice")  # savepoints: cannot be

    def _exhausted(self, batch, attempts=GROUP_ATTEMPTS):
        """A group refused as a conflict `attempts` times: each message on its own (the
        third run of one goes alone: it cannot be refused again), or not answered."""
        if len(batch) > 1:
            return [r for item in batch for r in self._run_batch([item], attempts)]
        log.warning("the ledger database refused %s %d times as a conflict (%s): not answered",
                    _describe_message(batch[0][0]), attempts, self._last_conflict)
        return [(None, KaposError("the ledger database kept refusing this message as a "
                                  "conflict: not answered"))]

    def _process_all(self, batch, retryable):
        """[(reply, exception)] of each message in turn; an exception `retryable` says to
        run the whole transaction again is raised instead."""
        results = []
        failed = set()  # connections one of whose messages failed
        for data, connection, _ in batch:
            if connection in failed:
                # that connection is being closed: what it sent after the bad message is
                # not applied (as when it was read one by one)
                results.append((None, NOT_PROCESSED))
                continue
            try:
                results.append((self.process(data, connection), None))
            except Exception as exc:
                if retryable(exc):
                    raise
                results.append((None, exc))
                if connection is not None:
                    failed.add(connection)
        return results

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

    def _bind(self, message):
        try:
            return bound_mac(self.mac, message)
        except Exception:
            return None

    def _response_mac(self, request, bound=None):
        """The reply is MACed with the keys of the request's KSN (`bound`: the binding its
        MAC was checked with); a request without one (refused for it) gets an unMACed reply."""
        if self.mac is None:
            return None
        return bound if bound is not None else self._bind(request)

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
        task = asyncio.get_running_loop().create_task(self._open(conn, peer, tls, entry))
        entry.task = task  # evicted while it opens: the task is cancelled
        self._opening.add(task)
        task.add_done_callback(self._opening.discard)

    async def _open(self, conn, peer, tls, entry):
        """The connection's transport (after its TLS handshake) with a TcpClient on it."""
        loop = asyncio.get_running_loop()
        kwargs = {}
        if tls is not None:
            kwargs = {"ssl": tls, "ssl_handshake_timeout": self.limits.frame_timeout}
        try:
            await asyncio.wait_for(loop.connect_accepted_socket(
                lambda: TcpClient(self, peer, entry), conn, **kwargs), self.limits.frame_timeout)
        except asyncio.CancelledError:
            self.table.remove(entry)
            conn.close()
            raise
        except (asyncio.TimeoutError, ssl.SSLError, OSError, ConnectionError) as exc:
            self.warn.info("handshake", "%s: TLS handshake failed: %s", peer, exc or "timeout")
            self.table.remove(entry)
            conn.close()
        except Exception:  # a bug must cost one connection, never the host
            self.stats["errors"] += 1
            log.exception("%s: error while opening the connection: closing it", peer)
            self.table.remove(entry)
            conn.close()

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
        if self._rerun is not None:  # the group waiting to run again is not answered
            timer, batch = self._rerun
            self._rerun = None
            timer.cancel()
            for _, _, future in batch:
                future.cancel()
        for _, _, future in self._queue:
            future.cancel()
        self._queue = []
        for sock, task in self._servers:
            task.cancel()
        for task in list(self._opening):
            task.cancel()
        clients = list(self._clients)
        for client in clients:
            client.close()
        for endpoint, task in self._serial:
            task.cancel()
        await asyncio.gather(*[t for _, t in self._servers], *[t for _, t in self._serial],
                             *self._opening, return_exceptions=True)
        if clients:  # what they were sent goes out; a peer that reads nothing is cut off
            _, slow = await asyncio.wait([c.lost for c in clients], timeout=1.0)
            for client in clients:
                if not client.lost.done():
                    client.transport.abort()
            if slow:
                await asyncio.wait(slow, timeout=1.0)
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


# states of a Pending
WAITING, ANSWERED, HELD, RELEASED, CANCELLED = range(5)


class Pending:
    """One message of a TCP connection on its way through the group commit: resolved by
    _flush like a future, it hands the reply to its connection at once (no task, no
    callback round through the loop)."""

    __slots__ = ("client", "payload", "reply", "error", "state")

    def __init__(self, client, payload):
        self.client, self.payload = client, payload
        self.reply = self.error = None
        self.state = WAITING

    def done(self):
        return self.state != WAITING

    def cancel(self):
        self.state = CANCELLED

    def set_result(self, reply):
        self.reply, self.state = reply, ANSWERED
        self.client.answered()

    def set_exception(self, error):
        self.error, self.state = error, ANSWERED
        self.client.answered()


# The bytes of one read: one buffer per server for all its connections (server.py runs
# one event loop; another server may run in another thread). asyncio fills it (recv_into)
# and hands it over in the same call (buffer_updated), which copies the bytes out before
# the loop reads again. A plain Protocol gets a new bytes object of asyncio's read size
# (256 KiB) per read: a fresh mmap, page faults on it, mremap and munmap, for each message
# of ~100 bytes.
RECEIVE_BUFFER_SIZE = 64 * 1024


class TcpClient(asyncio.BufferedProtocol):
    """One TCP (or TLS) connection: bytes -> TcpFramer -> the group commit -> replies in
    request order. At most `server.max_in_flight` of its messages are in the group commit
    at once, and none while its replies are not being read (the transport's write buffer
    is full): then the host stops reading it, so one client cannot queue unbounded work.
    One timer: closed after `idle_timeout` with nothing sent between messages, or
    `frame_timeout` with a frame left unfinished; not while the host owes it a reply."""

    def __init__(self, server, peer, entry):
        self.server, self.peer, self.entry = server, peer, entry
        self.framer = TcpFramer(server.max_payload)
        self.loop = asyncio.get_running_loop()
        self.transport = None
        self.waiting = collections.deque()  # Pending, in request order
        self.closed = False
        self.reading = True
        self.writable = True
        self.eof = False
        self.timer = None
        self.deadline = None
        self.frame_started = None
        self.lost = self.loop.create_future()

    # asyncio callbacks

    def connection_made(self, transport):
        self.transport = transport
        self.entry.task = self  # what eviction cancels from now on
        self.server._clients.add(self)
        self._rearm()

    def get_buffer(self, sizehint):
        return self.server.receive_buffer

    def buffer_updated(self, nbytes):
        if not self.closed:  # (the framer copies it)
            self._guarded(self._feed, self.server.receive_buffer[:nbytes])

    def _feed(self, data):
        self.framer.feed(data)
        self._take()

    def _guarded(self, step, *args):
        """step(*args); malformed input or a bug closes this connection, never the host."""
        try:
            step(*args)
        except (DecodeError, RemoteProtocolError) as exc:
            self._malformed(exc)
        except Exception:
            self._bug(None)

    def eof_received(self):
        self.eof = True
        if self.waiting and self.transport.get_extra_info("sslcontext") is None:
            return True  # half closed: its replies still go out, then it is closed
        self._finish()
        return False

    def _finish(self):
        """After its end of file, once nothing is owed: closed."""
        if self.framer.pending:
            self.server.warn.warning("mid-message", "%s: closed mid-message (%d bytes)",
                                     self.peer, self.framer.pending)
        self.close()

    def pause_writing(self):
        self.writable = False
        self._flow()

    def resume_writing(self):
        self.writable = True
        if not self.closed:
            self._guarded(self._take)

    def connection_lost(self, exc):
        self.closed = True
        if exc is not None and not isinstance(exc, asyncio.CancelledError):
            log.info("%s: connection lost: %s", self.peer, exc)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for pending in self.waiting:  # still queued: _flush skips them
            pending.cancel()
        self.waiting.clear()
        self.server._clients.discard(self)
        self.server.table.remove(self.entry)
        if not self.lost.done():
            self.lost.set_result(None)

    # the group commit's side

    def answered(self):
        """Some of its messages are committed: their replies out, in request order."""
        if not self.closed:
            self._guarded(self._answered)

    def _answered(self):
        self._write_ready()
        if self.closed:
            return
        if self.reading and not self.framer.pending:
            self._rearm()  # nothing held back to take in: only its clock
        else:
            self._take()
        if self.eof and not self.waiting and not self.closed:
            self._finish()

    def _write_ready(self):
        server, waiting = self.server, self.waiting
        while waiting and waiting[0].state in (ANSWERED, RELEASED):
            pending = waiting[0]
            if pending.error is not None:
                waiting.popleft()
                if isinstance(pending.error, (DecodeError, RemoteProtocolError)):
                    self._malformed(pending.error)
                else:
                    self._bug(pending.error)
                return
            if (pending.state == ANSWERED and pending.reply is not None
                    and server.response_delay is not None):
                seconds = server.response_delay(codec.decode(pending.payload))
                if seconds:  # the test hook: this reply (and those after it) wait
                    pending.state = HELD
                    self.loop.call_later(seconds, self._release, pending)
                    return
            waiting.popleft()
            if pending.reply is not None:
                self.transport.write(self.framer.frame(pending.reply))

    def _release(self, pending):
        if pending.state == HELD:
            pending.state = RELEASED
            self.answered()

    def _take(self):
        """Complete frames from the framer into the group commit, up to the cap."""
        server, framer, waiting = self.server, self.framer, self.waiting
        took = False
        while self.writable and len(waiting) < server.max_in_flight:
            payload = framer.next_message()
            if payload is None:
                break
            took = True
            pending = Pending(self, payload)
            waiting.append(pending)
            server._enqueue(payload, self.entry, pending)
        if took:
            self.frame_started = None
        self._flow()
        self._rearm()

    def _flow(self):
        """Read it only while it has room in flight and reads its replies."""
        want = self.writable and not self.eof and len(self.waiting) < self.server.max_in_flight
        if want != self.reading and not self.closed:
            self.reading = want
            if want:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()

    # the one timer

    def _rearm(self):
        if self.closed:
            return
        if self.waiting:  # the host owes it replies: no clock on the client
            self.deadline = self.frame_started = None
            return
        limits = self.server.limits
        now = self.loop.time()
        if self.framer.pending:
            if self.frame_started is None:
                self.frame_started = now
            deadline = self.frame_started + limits.frame_timeout
        else:
            self.frame_started = None
            deadline = now + limits.idle_timeout
        self.deadline = deadline
        # a later deadline leaves the timer as it is: it re-arms itself when it fires
        if self.timer is None or self.timer.when() > deadline:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_at(deadline, self._expire)

    def _expire(self):
        self.timer = None
        if self.closed or self.deadline is None:
            return
        if self.loop.time() < self.deadline:
            self.timer = self.loop.call_at(self.deadline, self._expire)
            return
        server = self.server
        server.stats["timeouts"] += 1
        if self.framer.pending:
            server.warn.info("timeout", "%s: frame unfinished after %g s (%d bytes): closing",
                             self.peer, server.limits.frame_timeout, self.framer.pending)
        else:
            server.warn.info("timeout", "%s: idle for %g s: closing", self.peer,
                             server.limits.idle_timeout)
        self.close()

    # closing

    def _malformed(self, exc):
        self.server.stats["errors"] += 1
        self.server.warn.error("malformed", "%s: malformed input (%s): closing the connection",
                               self.peer, exc)
        self.close()

    def _bug(self, exc):
        self.server.stats["errors"] += 1
        log.error("%s: error while handling a message: closing the connection", self.peer,
                  exc_info=exc if exc is not None else True)
        self.close()

    def close(self):
        """Close after what is written has gone; aborted if that takes a frame timeout
        (a peer that reads nothing must not hold its descriptor)."""
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for pending in self.waiting:
            pending.cancel()
        self.waiting.clear()
        transport = self.transport
        transport.close()
        if transport.get_write_buffer_size():
            self.loop.call_later(self.server.limits.frame_timeout, transport.abort)

    cancel = close  # ConnectionTable eviction calls entry.task.cancel()
