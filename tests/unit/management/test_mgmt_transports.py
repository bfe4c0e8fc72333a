"""The management channel's transports: TCP (asyncio server) and the serial console
(pyserial: a pty pair and a socket:// URL), plus the diag client over both."""

import asyncio
import json
import os
import socket
import threading
import tty

import pytest

from kapos.app.scenario import Player, parse
from kapos.app.management import MAX_CLIENTS, MAX_LINE, MAX_PENDING
from kapos.app.mgmt_auth import AuthThrottle
from kapos_tools.diag.client import ManagementClient, ManagementError, parse_address
from kapos_tools.hil.remote import RemoteTarget

TOKEN = "t0ken"
HARNESS_TOKEN = "harness-t0ken"  # conftest's, when no token is given


def no_backoff():
    return AuthThrottle(peer_base=0, global_base=0)


def run(coro):
    return asyncio.run(coro)


async def _tcp(address):
    host, port = address
    return await asyncio.open_connection(host, port, limit=1 << 22)


async def _ask(reader, writer, request):
    if isinstance(request, dict):
        request = json.dumps(request)
    if isinstance(request, str):
        request = request.encode()
    if not request.endswith(b"\n"):
        request += b"\n"
    writer.write(request)
    await writer.drain()
    return json.loads(await asyncio.wait_for(reader.readline(), 5))


# ------------------------------------------------------------------ TCP

def test_tcp_requests_garbage_and_auth_on_one_connection(mgmt):
    async def go():
        async with mgmt(token=TOKEN, test_mode=True) as h:
            address = await h.server.start_tcp("127.0.0.1", 0)
            assert address[0] == "127.0.0.1" and address[1] > 0
            reader, writer = await _tcp(address)
            assert (await _ask(reader, writer, {"id": 1, "cmd": "hello"}))["auth_required"] is True
            assert "bad JSON" in (await _ask(reader, writer, b"{garbage\n"))["error"]
            assert await asyncio.wait_for(reader.read(), 5) == b""  # not a JSON object: closed
            writer.close()
            reader, writer = await _tcp(address)
            assert "JSON object" in (await _ask(reader, writer, b"[]\r\n"))["error"]
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            reader, writer = await _tcp(address)
            assert "unknown command" in (await _ask(reader, writer, {"id": 2, "cmd": "x"}))["error"]
            assert "not authenticated" in (await _ask(reader, writer, {"id": 3, "cmd": "selftest"}))["error"]
            assert (await _ask(reader, writer, {"id": 4, "cmd": "auth", "token": TOKEN}))["ok"]
            reply = await _ask(reader, writer, {"id": 5, "cmd": "inject", "key": "1"})
            assert reply["id"] == 5 and reply["state"] == "AMOUNT"
            # blank lines are ignored, two requests in one packet get two replies in order
            writer.write(b'\n\n{"id": 6, "cmd": "status"}\n{"id": 7, "cmd": "counters"}\n')
            await writer.drain()
            first = json.loads(await reader.readline())
            second = json.loads(await reader.readline())
            assert (first["id"], second["id"]) == (6, 7) and first["state"] == "AMOUNT"
            writer.close()

    run(go())


def test_tcp_oversized_line_gets_a_reply_then_a_clean_close(mgmt):
    async def go():
        async with mgmt(test_mode=True) as h:
            address = await h.server.start_tcp("127.0.0.1", 0)
            reader, writer = await _tcp(address)
            assert (await _ask(reader, writer, {"id": 1, "cmd": "status"}))["ok"]
            writer.write(b'{"cmd": "status", "pad": "' + b"x" * (MAX_LINE * 4) + b'"}\n')
            writer.write(b'{"id": 2, "cmd": "status"}\n')  # after the oversized line: not answered
            await writer.drain()
            reply = json.loads(await asyncio.wait_for(reader.readline(), 5))
            assert reply["ok"] is False and "longer than 8192 bytes" in reply["error"] and "closing" in reply["error"]
            rest = await asyncio.wait_for(reader.read(), 5)  # a clean EOF, no reset
            assert rest == b""
            writer.close()
            # the terminal and the server carry on
            assert h.terminal.state == "IDLE"
            reader, writer = await _tcp(address)
            assert (await _ask(reader, writer, {"cmd": "status"}))["state"] == "IDLE"
            writer.close()

    run(go())


def test_tcp_line_exactly_at_the_limit_is_accepted(mgmt):
    async def go():
        async with mgmt() as h:
            address = await h.server.start_tcp("127.0.0.1", 0)
            reader, writer = await _tcp(address)
            head = b'{"id": 1, "cmd": "status", "pad": "'
            line = head + b"x" * (MAX_LINE - len(head) - 2) + b'"}'
            assert len(line) == MAX_LINE
            assert (await _ask(reader, writer, line + b"\n"))["ok"] is True
            writer.close()

    run(go())


def test_tcp_last_request_without_newline_is_answered_at_eof(mgmt):
    async def go():
        async with mgmt() as h:
            address = await h.server.start_tcp("127.0.0.1", 0)
            reader, writer = await _tcp(address)
            writer.write(b'{"id": 1, "cmd": "status"}')
            writer.write_eof()
            reply = json.loads(await asyncio.wait_for(reader.readline(), 5))
            assert reply["id"] == 1 and reply["ok"]
            writer.close()

    run(go())


def test_tcp_client_limit_and_close_drops_connections(mgmt):
    async def go():
        async with mgmt() as h:
            address = await h.server.start_tcp("127.0.0.1", 0)
            clients = [await _tcp(address) for _ in range(MAX_CLIENTS)]
            for reader, writer in clients:
                assert (await _ask(reader, writer, {"cmd": "auth", "token": HARNESS_TOKEN}))["ok"]
            reader, writer = await _tcp(address)
            assert (await _ask(reader, writer, {"cmd": "status"}))["ok"]  # open commands still answered
            reply = await _ask(reader, writer, {"cmd": "auth", "token": HARNESS_TOKEN})
            assert "too many management clients" in reply["error"]
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            await h.server.close()
            for reader, _ in clients:
                assert await asyncio.wait_for(reader.read(), 5) == b""
            with pytest.raises(OSError):
                await _tcp(address)

    run(go())


def test_unauthenticated_connections_time_out_and_make_room(mgmt):
    async def go():
        async with mgmt(auth_window=0.3) as h:
            address = await h.server.start_tcp("127.0.0.1", 0)
            reader, writer = await _tcp(address)
            reply = json.loads(await asyncio.wait_for(reader.readline(), 5))  # sent nothing: dropped
            assert "not authenticated within" in reply["error"]
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
        async with mgmt() as h:
            address = await h.server.start_tcp("127.0.0.1", 0)
            idle = [await _tcp(address) for _ in range(MAX_PENDING)]
            for reader, writer in idle:  # each one is being served
                assert (await _ask(reader, writer, {"cmd": "hello"}))["ok"]
            newcomer = await _tcp(address)
            assert (await _ask(*newcomer, {"cmd": "auth", "token": HARNESS_TOKEN}))["ok"]
            assert await asyncio.wait_for(idle[0][0].read(), 5) == b""  # the oldest made room
            for _, writer in idle + [newcomer]:
                writer.close()

    run(go())


def test_an_idle_authenticated_connection_is_closed(mgmt):
    async def go():
        async with mgmt(idle_timeout=0.2) as h:
            address = await h.server.start_tcp("127.0.0.1", 0)
            reader, writer = await _tcp(address)
            assert (await _ask(reader, writer, {"cmd": "auth", "token": HARNESS_TOKEN}))["ok"]
            reply = json.loads(await asyncio.wait_for(reader.readline(), 5))
            assert "idle for" in reply["error"]
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()

    run(go())


def test_client_over_tcp_raises_on_refusals(mgmt):
    async def go():
        async with mgmt(token=TOKEN, test_mode=True, throttle=no_backoff()) as h:
            host, port = await h.server.start_tcp("127.0.0.1", 0)
            with pytest.raises(ManagementError, match="wrong token"):
                await ManagementClient.open("%s:%d" % (host, port), token="nope")
            client = await ManagementClient.open("tcp://%s:%d" % (host, port), token=TOKEN)
            assert client.hello["board"] == "sim"
            assert (await client.call("selftest"))["passed"] is True
            with pytest.raises(ManagementError, match="not a keypad key") as info:
                await client.call("inject", key="Z")
            assert info.value.reply["ok"] is False
            await client.close()
            with pytest.raises(ManagementError, match="cannot connect"):
                await ManagementClient.open("127.0.0.1:1", timeout=2)

    run(go())


def test_parse_address():
    assert parse_address("10.0.0.7:7700") == ("tcp", ("10.0.0.7", 7700))
    assert parse_address("tcp://pi.local:7700") == ("tcp", ("pi.local", 7700))
    assert parse_address("serial:/dev/ttyUSB0") == ("serial", "/dev/ttyUSB0")
    assert parse_address("serial:socket://lab:4001") == ("serial", "socket://lab:4001")
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address("pi.local")


# ------------------------------------------------------------------ serial: a pty pair

def _read_line(fd, timeout=5.0):
    import select

    data = b""
    while not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise AssertionError("no reply on the pty, got %r" % data)
        data += os.read(fd, 65536)
    return data


def test_serial_console_over_a_pty_pair(mgmt):
    async def go():
        master, slave = os.openpty()
        tty.setraw(master)
        try:
            async with mgmt(token=TOKEN, test_mode=True) as h:
                await h.server.start_serial(os.ttyname(slave))
                loop = asyncio.get_running_loop()

                async def ask(data):
                    os.write(master, data)
                    lines = (await loop.run_in_executor(None, _read_line, master)).splitlines()
                    return [json.loads(line) for line in lines]

                assert (await ask(b'{"id": 1, "cmd": "hello"}\r\n'))[0]["board"] == "sim"
                assert "bad JSON" in (await ask(b"login: root\n"))[0]["error"]
                assert "not authenticated" in (await ask(b'{"id": 2, "cmd": "counters"}\n'))[0]["error"]
                assert (await ask(b'{"id": 3, "cmd": "auth", "token": "t0ken"}\n'))[0]["ok"]
                assert (await ask(b'{"id": 4, "cmd": "inject", "key": "1"}\n'))[0]["state"] == "AMOUNT"
                # an oversized line: an error, the rest of it skipped, the console still usable
                os.write(master, b"x" * (MAX_LINE + 100))
                reply = json.loads(await loop.run_in_executor(None, _read_line, master))
                assert "longer than 8192 bytes" in reply["error"]
                os.write(master, b"y" * 100 + b"\n")
                assert (await ask(b'{"id": 5, "cmd": "status"}\n'))[0]["id"] == 5
                await h.server.close()
        finally:
            os.close(master)
            os.close(slave)

    run(go())


def test_serial_console_refuses_a_port_it_cannot_open(mgmt):
    async def go():
        from kapos.errors import KaposError

        async with mgmt() as h:
            with pytest.raises(KaposError, match="cannot open management console /dev/nonexistent-tty"):
                await h.server.start_serial("/dev/nonexistent-tty")

    run(go())


# ------------------------------------------------------------------ serial: socket:// URLs

class Bridge:
    """Two listening sockets joined byte for byte: the terminal's console connects to
    one (socket://), the client to the other - a serial cable between them."""

    def __init__(self):
        self.a = socket.create_server(("127.0.0.1", 0))
        self.b = socket.create_server(("127.0.0.1", 0))
        self.url_a = "socket://127.0.0.1:%d" % self.a.getsockname()[1]
        self.url_b = "socket://127.0.0.1:%d" % self.b.getsockname()[1]
        self.threads = []
        self.conns = []
        threading.Thread(target=self._join, daemon=True).start()

    def _join(self):
        ca, _ = self.a.accept()
        cb, _ = self.b.accept()
        self.conns = [ca, cb]
        for src, dst in ((ca, cb), (cb, ca)):
            t = threading.Thread(target=self._pump, args=(src, dst), daemon=True)
            t.start()
            self.threads.append(t)

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        for s in self.conns + [self.a, self.b]:
            try:
                s.close()
            except OSError:
                pass


def test_serial_console_over_socket_url(mgmt):
    async def go():
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(5)
        try:
            async with mgmt(test_mode=True) as h:
                loop = asyncio.get_running_loop()
                accepted = loop.run_in_executor(None, listener.accept)
                await h.server.start_serial("socket://127.0.0.1:%d" % listener.getsockname()[1])
                conn, _ = await accepted
                conn.settimeout(5)
                conn.sendall(b'{"id": 1, "cmd": "status"}\n')
                data = b""
                while not data.endswith(b"\n"):
                    data += await loop.run_in_executor(None, conn.recv, 65536)
                assert json.loads(data)["state"] == "IDLE"
                await h.server.close()
                conn.close()
        finally:
            listener.close()

    run(go())


def test_client_and_remote_target_over_a_serial_line(mgmt):
    """The diag client and the HIL RemoteTarget, both over a serial link (socket://),
    playing a scenario fragment; console noise on the line is skipped."""

    async def go():
        bridge = Bridge()
        try:
            async with mgmt(token=TOKEN, test_mode=True) as h:
                await h.server.start_serial(bridge.url_a)
                target = await RemoteTarget.connect("serial:" + bridge.url_b, token=TOKEN)
                try:
                    assert target.board == "sim" and target.test_mode
                    await Player(target, default_timeout=3).play(parse(
                        'key 1\nkeys 250\nkey ENTER\nexpect screen "Swipe or tap card"\n'
                        "swipe visa-debit\nexpect state ACCOUNT\nkey CANCEL\nexpect result cancelled\n"))
                finally:
                    await target.close()
        finally:
            bridge.close()

    run(go())
