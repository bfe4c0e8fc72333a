"""kapos.io.transport: TCP with the 2-byte length framing, serial with STX LEN ..
ETX LRC + ACK/NAK (kapos.host.framing), the NotDelivered / NoReply distinction."""

import asyncio
import os
import socket
import tty

import pytest

from kapos.host.framing import TcpFramer
from kapos.io.transport import (FdPort, NoReply, NotDelivered, SendError, SerialEndpoint,
                                      SerialTransport, TcpTransport, parse_address)


def run(coro, timeout=20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.mark.parametrize("text,expected", [
    ("127.0.0.1:8583", ("127.0.0.1", 8583)), ("bank.example", ("bank.example", 8583)),
    ("[::1]:9000", ("::1", 9000)), ("localhost:0", ("localhost", 0)),
])
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", [":8583", "host:port", "host:70000"])
def test_parse_address_refuses(text):
    with pytest.raises(ValueError):
        parse_address(text)


async def tcp_server(handler):
    """A server answering each framed payload with handler(payload) -> [frames bytes]."""
    async def client(reader, writer):
        framer = TcpFramer()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for payload in framer.receive(data):
                    for out in handler(payload):
                        if out is None:
                            writer.close()
                            return
                        writer.write(out)
                await writer.drain()
        except ConnectionError:
            pass

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_tcp_request_reply_and_stale_replies_go_to_the_unsolicited_hook():
    framer = TcpFramer()

    async def go():
        server, port = await tcp_server(lambda p: [framer.frame(b"old:" + p),
                                                   framer.frame(b"re:" + p)])
        transport = TcpTransport("127.0.0.1", port)
        stale = []
        transport.on_unsolicited = stale.append
        reply = await transport.request(b"hello", 2, accept=lambda p: p.startswith(b"re:"))
        assert reply == b"re:hello"
        assert stale == [b"old:hello"]
        assert await transport.request(b"again", 2, accept=lambda p: p.startswith(b"re:")) \
            == b"re:again"
        assert transport.connects == 1  # one connection for both
        transport.close()
        server.close()

    run(go())


def test_tcp_connection_refused_is_not_delivered():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()

    async def go():
        with pytest.raises(NotDelivered):
            await TcpTransport("127.0.0.1", port).request(b"x", 1)

    run(go())


def test_tcp_timeout_truncation_and_close_are_no_reply_and_reconnect():
    framer = TcpFramer()
    plan = []

    def handler(payload):
        step = plan.pop(0)
        if step == "silent":
            return []
        if step == "truncate":
            return [framer.frame(b"0123456789")[:5], None]
        if step == "close":
            return [None]
        return [framer.frame(payload)]

    async def go():
        server, port = await tcp_server(handler)
        transport = TcpTransport("127.0.0.1", port)
        plan.extend(["silent", "truncate", "close", "echo"])
        with pytest.raises(NoReply, match="no reply within"):
            await transport.request(b"a", 0.2)
        with pytest.raises(NoReply, match="truncated"):
            await transport.request(b"b", 2)
        with pytest.raises(NoReply, match="closed"):
            await transport.request(b"c", 2)
        assert await transport.request(b"d", 2) == b"d"
        assert transport.connects == 4  # a fresh connection after each failure
        transport.close()
        server.close()

    run(go())


def test_tcp_accept_may_refuse_a_reply_outright():
    framer = TcpFramer()

    class Garbled(NoReply):
        pass

    def accept(payload):
        raise Garbled("not for us")

    async def go():
        server, port = await tcp_server(lambda p: [framer.frame(p)])
        transport = TcpTransport("127.0.0.1", port)
        with pytest.raises(Garbled):
            await transport.request(b"x", 2, accept=accept)
        transport.close()
        server.close()

    run(go())


# ---------------------------------------------------------------- serial

def pty_pair():
    master, slave = os.openpty()
    tty.setraw(slave)
    return master, slave


def test_serial_endpoints_exchange_frames_over_a_pty():
    async def go():
        master, slave = pty_pair()
        a = SerialEndpoint(FdPort(master), name="a")
        b = SerialEndpoint(FdPort(slave), name="b")
        await a.open()
        await b.open()
        await a.send(b"ping" * 100)
        assert await asyncio.wait_for(b.received.get(), 2) == b"ping" * 100
        await b.send(b"pong")
        assert await asyncio.wait_for(a.received.get(), 2) == b"pong"
        assert a.frame_errors == b.frame_errors == 0
        a.close()
        b.close()
        os.close(master)
        os.close(slave)

    run(go())


def test_a_lost_ack_makes_the_sender_retransmit():
    async def go():
        master, slave = pty_pair()
        a = SerialEndpoint(FdPort(master), ack_timeout=0.15, name="a")
        b = SerialEndpoint(FdPort(slave), name="b")
        await a.open()
        await b.open()
        write = b.port.write
        lost = {"acks": 1}

        def lossy(data):
            if data == b"\x06" and lost["acks"]:
                lost["acks"] -= 1
                return
            write(data)

        b.port.write = lossy
        await a.send(b"payload")
        assert a.retransmissions == 1
        # the receiver got it twice: ISO 8583 duplicate detection is the next layer's job
        assert [await b.received.get(), await b.received.get()] == [b"payload", b"payload"]
        for end in (a, b):
            end.close()
        os.close(master)
        os.close(slave)

    run(go())


def test_no_peer_means_send_failed_after_the_retries():
    async def go():
        master, slave = pty_pair()
        a = SerialEndpoint(FdPort(master), ack_timeout=0.05, retries=2, name="a")
        await a.open()
        with pytest.raises(SendError, match="after 2 retransmissions"):
            await a.send(b"anyone?")
        assert a.retransmissions == 2
        await asyncio.sleep(0)
        a.close()
        os.close(master)
        os.close(slave)

    run(go())


def test_serial_transport_accepts_pyserial_urls():
    async def go():
        # loop:// echoes what is written: the link ACKs its own frame and "answers" itself
        transport = SerialTransport(url="loop://", baudrate=115200)
        assert await transport.request(b"echo me", 2) == b"echo me"
        transport.close()

    run(go())


def test_serial_transport_on_a_missing_device_is_not_delivered(tmp_path):
    async def go():
        with pytest.raises(NotDelivered):
            await SerialTransport(url=str(tmp_path / "ttyNOPE")).request(b"x", 1)

    run(go())
