"""The host's TCP connections (server.TcpClient): pipelined requests, flow control and the
one timer per connection.

A client may send many requests without waiting for replies; the host answers them in
order but takes at most `max_in_flight` of one connection into the group commit at once,
and reads nothing more from a connection whose replies are not being read - one client
cannot queue unbounded work. A frame must be finished within `frame_timeout` of its
start, however slowly its bytes trickle in."""

import asyncio
import logging
import time

from hostkit import TESTCARDS, new_ledger, run
from kapos.host import codec
from kapos.host import messages as m
from kapos.host.framing import TcpFramer
from kapos_tools.host import HostServer
from kapos_tools.host.limits import Limits
from kapos_tools.host.server import TcpClient

UTC = time.gmtime(time.mktime((2026, 11, 25, 10, 0, 0, 0, 0, -1)))
TID, MID = "KAPOS001", "KAPOS-MERCHANT1"


def sale(stan, amount=100):
    return codec.encode(m.build_financial_request(
        "sale", amount, stan, UTC, UTC, TID, MID, "978",
        track2=TESTCARDS["visa-debit"].track2_equivalent(), private="BN006000001"))


async def read_replies(reader, count, framer):
    replies = []
    while len(replies) < count:
        data = await reader.read(65536)
        if not data:
            break
        replies += framer.receive(data)
    return replies


def test_pipelined_requests_are_answered_in_order_with_at_most_max_in_flight_queued():
    async def go():
        server = HostServer(new_ledger(), max_in_flight=4)
        deepest = []
        enqueue = server._enqueue

        def watched(data, connection, sink):  # how many of this client's are in flight
            enqueue(data, connection, sink)
            deepest.append(max(len(c.waiting) for c in server._clients))
        server._enqueue = watched
        _, port = await server.start_tcp("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        framer = TcpFramer()
        writer.write(b"".join(framer.frame(sale(stan)) for stan in range(1, 201)))  # one burst
        replies = await read_replies(reader, 200, framer)
        writer.close()
        await server.close()
        assert [codec.decode(r)[11] for r in replies] == ["%06d" % n for n in range(1, 201)]
        assert all(codec.decode(r)[39] == "00" for r in replies)
        assert len(deepest) == 200 and max(deepest) == 4

    run(go())


def test_connections_sharing_the_receive_buffer_each_get_their_own_frames():
    """Every connection's reads land in one shared buffer (server.py); each is copied out
    before the next. Frames cut at odd places and interleaved across three connections,
    and one burst larger than the buffer, each come back whole, in order."""
    async def go():
        server = HostServer(new_ledger())
        _, port = await server.start_tcp("127.0.0.1", 0)
        framer = TcpFramer()
        streams = {n: b"".join(framer.frame(sale(100 * n + stan, amount=n)) for stan in range(1, 31))
                   for n in (1, 2, 3)}
        peers = {n: await asyncio.open_connection("127.0.0.1", port) for n in streams}
        pieces = {n: [data[i:i + 37] for i in range(0, len(data), 37)] for n, data in streams.items()}
        for step in range(max(len(p) for p in pieces.values())):
            # a piece on each connection at once: the host reads them in one turn of its
            # loop, one after another into the same buffer
            for n, (_, writer) in peers.items():
                if step < len(pieces[n]):
                    writer.write(pieces[n][step])
            for _, writer in peers.values():
                await writer.drain()
            await asyncio.sleep(0.001)
        replies = {n: await read_replies(reader, 30, TcpFramer()) for n, (reader, _) in peers.items()}
        burst = b"".join(framer.frame(sale(stan)) for stan in range(1, 801))
        assert len(burst) > 64 * 1024
        reader, writer = peers[1]
        writer.write(burst)
        burst_replies = await read_replies(reader, 800, TcpFramer())
        for _, writer in peers.values():
            writer.close()
        await server.close()
        for n in streams:
            decoded = [codec.decode(r) for r in replies[n]]
            assert [d[11] for d in decoded] == ["%06d" % (100 * n + s) for s in range(1, 31)]
            assert {d[4] for d in decoded} == {"%012d" % n} and {d[39] for d in decoded} == {"00"}
        assert [codec.decode(r)[11] for r in burst_replies] == ["%06d" % s for s in range(1, 801)]

    run(go())


def test_two_hosts_on_two_threads_read_into_buffers_of_their_own(tmp_path):
    """Each server reads into its own buffer: two hosts in one process (each on its own
    thread and loop) under bursts at once each answer their own frames, whole."""
    import socket
    import threading

    from hostkit import HostThread

    hosts = [HostThread(str(tmp_path / ("h%d.db" % n))) for n in (1, 2)]
    ports = [host.start() for host in hosts]
    framer = TcpFramer()
    results, errors = {}, []

    def client(n, port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                replies, reader = [], TcpFramer()
                for burst in range(5):
                    stans = range(1000 * n + 100 * burst + 1, 1000 * n + 100 * burst + 81)
                    sock.sendall(b"".join(framer.frame(sale(stan, amount=n)) for stan in stans))
                    while len(replies) < 80 * (burst + 1):
                        data = sock.recv(65536)
                        assert data, "the host closed the connection"
                        replies += reader.receive(data)
                results[n] = [codec.decode(r) for r in replies]
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n, port)) for n, port in zip((1, 2), ports)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for host in hosts:
            host.stop()
    assert not errors, errors
    for n in (1, 2):
        expected = ["%06d" % (1000 * n + 100 * burst + s) for burst in range(5) for s in range(1, 81)]
        assert [d[11] for d in results[n]] == expected
        assert {d[4] for d in results[n]} == {"%012d" % n} and {d[39] for d in results[n]} == {"00"}


class FakeTransport:
    def __init__(self):
        self.reading, self.written, self.closed = True, [], False

    def pause_reading(self):
        self.reading = False

    def resume_reading(self):
        self.reading = True

    def write(self, data):
        self.written.append(data)

    def close(self):
        self.closed = True

    def get_write_buffer_size(self):
        return 0

    def get_extra_info(self, name, default=None):
        return default


def test_a_connection_whose_replies_are_not_read_is_not_read_either():
    async def go():
        server = HostServer(new_ledger())
        queued = []
        server._enqueue = lambda data, connection, sink: queued.append(sink)
        client = TcpClient(server, ("127.0.0.1", 1), server.table.add("127.0.0.1"))
        transport = FakeTransport()
        client.connection_made(transport)
        framer = TcpFramer()
        client.pause_writing()  # the replies so far fill the socket: the peer reads nothing
        assert not transport.reading
        data = b"".join(framer.frame(sale(stan)) for stan in (1, 2, 3))
        buffer = client.get_buffer(len(data))  # as asyncio hands a read over
        buffer[:len(data)] = data
        client.buffer_updated(len(data))
        assert queued == [], "nothing taken in while its replies cannot go out"
        client.resume_writing()
        assert len(queued) == 3 and transport.reading
        for sink in queued:
            sink.set_result(b"reply")
        assert transport.written == [framer.frame(b"reply")] * 3
        client.close()
        client.connection_lost(None)

    run(go())


def test_after_a_bad_message_nothing_more_on_that_connection_is_applied():
    async def go():
        ledger = new_ledger()
        server = HostServer(ledger)
        _, port = await server.start_tcp("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        framer = TcpFramer()
        # three in one burst, so they share one transaction
        writer.write(framer.frame(sale(1)) + framer.frame(b"0200garbage-not-iso")
                     + framer.frame(sale(3)))
        replies = await read_replies(reader, 3, framer)
        writer.close()
        await server.close()
        assert [codec.decode(r)[11] for r in replies] == ["000001"]  # then it was closed
        assert [t["stan"] for t in ledger.transactions()] == ["000001"]
        assert server.stats["errors"] == 1

    run(go())


def test_a_frame_trickled_byte_by_byte_is_closed_a_frame_timeout_after_it_began(caplog):
    caplog.set_level(logging.INFO, logger="kapos_tools.host")

    async def go():
        server = HostServer(new_ledger(), limits=Limits(frame_timeout=0.5, idle_timeout=30))
        _, port = await server.start_tcp("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        frame = TcpFramer().frame(sale(1))
        sent = 0
        try:
            for byte in frame:  # one byte every 0.1 s: each read comes well within 0.5 s
                writer.write(bytes([byte]))
                await writer.drain()
                sent += 1
                try:
                    if await asyncio.wait_for(reader.read(1), 0.1) == b"":
                        break  # the host closed it
                except asyncio.TimeoutError:
                    pass
        except ConnectionError:
            pass
        writer.close()
        await server.close()
        return sent, len(frame)

    sent, size = run(go())
    assert sent < size, "closed before the frame was finished"
    assert "frame unfinished after 0.5 s" in caplog.text


def test_a_group_doomed_by_a_failing_message_runs_again_at_once(monkeypatch, caplog):
    """Not a conflict with another host process: no back-off sleep, no such log line."""
    from kapos_tools.host import book, server as server_module

    post = book.post

    def post_then_fail(db, entries, **kw):  # fails after the message's first writes
        post(db, entries, **kw)
        if any(amount == -777 for _, amount in entries):
            raise RuntimeError("a bug after the message's first writes")

    monkeypatch.setattr(book, "post", post_then_fail)
    slept = []
    monkeypatch.setattr(server_module.time, "sleep", slept.append)
    caplog.set_level(logging.INFO, logger="kapos_tools.host")
    server = HostServer(new_ledger())
    results = server._run_batch([(sale(stan, amount), None, None)
                                 for stan, amount in ((1, 100), (2, 777), (3, 300))])
    assert [codec.decode(reply)[39] for reply, _ in results] == ["00", "96", "00"]
    assert slept == [] and server.batches["retries"] == 0
    assert "conflicted with another host process" not in caplog.text


def test_group_wait_holds_a_transaction_open_only_under_load():
    """--group-wait: a message alone (the last transaction had one message) is committed
    at once, whatever the wait; once a transaction had company, the next waits for more,
    so two messages a loop turn apart share one transaction."""
    async def go():
        server = HostServer(new_ledger(), group_wait=3600.0)  # an hour: a wait would show
        alone = await asyncio.wait_for(server.submit(sale(1)), 10)
        assert codec.decode(alone)[39] == "00" and server.batches["transactions"] == 1
        # two at once: one transaction with company (no wait before it: the last was alone)
        await asyncio.wait_for(asyncio.gather(server.submit(sale(2)), server.submit(sale(3))), 10)
        assert server.batches == {"transactions": 2, "messages": 3, "retries": 0}
        server.group_wait = 0.2  # under load now: the next transaction waits up to 0.2 s
        first = asyncio.ensure_future(server.submit(sale(4)))
        await asyncio.sleep(0)  # a turn of the loop later, before the wait is over
        second = asyncio.ensure_future(server.submit(sale(5)))
        await asyncio.wait_for(asyncio.gather(first, second), 10)
        assert server.batches == {"transactions": 3, "messages": 5, "retries": 0}
        # that one had company too, yet a message alone after it waits at most group_wait
        assert codec.decode(await asyncio.wait_for(server.submit(sale(6)), 10))[39] == "00"
        assert server.batches["transactions"] == 4
        await server.close()

    run(go())


def test_a_conflicted_group_pauses_without_blocking_the_loop_and_keeps_message_order(monkeypatch):
    """A group the database refuses as a conflict with another host process runs again
    after a pause; meanwhile the event loop serves every connection (here: a ticker),
    and a message that came in during the pause is applied only after that group."""
    from kapos_tools.host import book, server as server_module

    class Conflict(Exception):
        pass

    ledger = new_ledger()
    monkeypatch.setattr(ledger.db, "is_retryable", lambda exc: isinstance(exc, Conflict))
    monkeypatch.setattr(server_module, "_backoff", lambda attempt: 0.05)
    conflicts = []
    post = book.post

    def post_or_conflict(db, entries, **kw):
        if any(amount == -111 for _, amount in entries) and len(conflicts) < 2:
            conflicts.append(time.monotonic())
            raise Conflict("could not serialize access")
        post(db, entries, **kw)

    monkeypatch.setattr(book, "post", post_or_conflict)
    server = HostServer(ledger)

    async def go():
        ticks = []

        async def ticker():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.002)

        ticking = asyncio.ensure_future(ticker())
        first = asyncio.ensure_future(server.submit(sale(1, 111)))
        for _ in range(1000):  # until the first run has conflicted
            if server._rerun is not None:
                break
            await asyncio.sleep(0)
        second = asyncio.ensure_future(server.submit(sale(2, 222)))
        replies = await asyncio.wait_for(asyncio.gather(first, second), 5)
        answered = time.monotonic()
        ticking.cancel()
        return replies, [t for t in ticks if conflicts[0] < t < answered]

    replies, ticks_in_pause = run(go())
    assert [codec.decode(r)[39] for r in replies] == ["00", "00"]
    assert len(conflicts) == 2 and server.batches["retries"] == 2
    assert len(ticks_in_pause) >= 10  # two 50 ms pauses: the loop was not blocked
    stans = [t["stan"] for t in sorted(ledger.transactions(), key=lambda t: t["id"])]
    assert stans == ["000001", "000002"]
