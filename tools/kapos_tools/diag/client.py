"""A client of the terminal's management channel (kapos.app.management).

    client = await ManagementClient.open("127.0.0.1:7700", token="s3cret")
    status = await client.call("status")          # the reply dict; ManagementError if ok is false
    await client.call("inject", key="1")          # test mode only
    await client.close()

Addresses: `HOST:PORT` or `tcp://HOST:PORT` for TCP; `serial:URL` for a serial console,
where URL is a device (`serial:/dev/ttyUSB0`) or any pyserial URL
(`serial:socket://labhost:4001`, `serial:rfc2217://labhost:4002`). On a serial console,
lines that are not JSON replies (boot messages, a shell) are skipped.

The token: `find_token()` reads it the way every kapos tool does (a token file, the
environment, or the terminal's own data directory on this machine), so it never has to
be typed on a command line.
"""

import asyncio
import json
import logging
import os
import threading

from kapos.errors import KaposError
from kapos.app.mgmt_auth import TOKEN_ENV, TOKEN_FILE_ENV, check_token, read_token_file, token_path

log = logging.getLogger("kapos_tools.diag")

DEFAULT_TIMEOUT = 30.0  # a self-test waits for the host echo (timeouts.host, 15 s by default)
REPLY_LIMIT = 16 << 20  # replies (logs, records) may be much longer than a request


class ManagementError(Exception):
    """The terminal answered ok: false (`reply` holds the whole answer), or the channel failed."""

    def __init__(self, message, reply=None):
        Exception.__init__(self, message)
        self.reply = reply


def find_token(token=None, token_file=None, data_dir="var", environ=None):
    """The management token to send: `token` (from a command line: works, with a warning,
    because `ps` shows it), else the file `token_file`, else $KAPOS_MANAGE_TOKEN, else the
    file in $KAPOS_MANAGE_TOKEN_FILE, else DATA_DIR/manage-token when it exists (a terminal
    on this machine). None when there is none. ManagementError if a named file is unusable."""
    environ = os.environ if environ is None else environ
    try:
        if token:
            log.warning("a management token given on the command line shows in ps: "
                        "use --manage-token-file or $KAPOS_MANAGE_TOKEN")
            return check_token(token)
        if token_file:
            return read_token_file(token_file)
        if environ.get(TOKEN_ENV):
            return check_token(environ[TOKEN_ENV].strip())
        if environ.get(TOKEN_FILE_ENV):
            return read_token_file(environ[TOKEN_FILE_ENV])
        if data_dir and os.path.exists(token_path(data_dir)):
            return read_token_file(token_path(data_dir))
    except KaposError as exc:
        raise ManagementError(str(exc))
    return None


NO_TOKEN_HINT = ("give the terminal's token: --manage-token-file FILE or $KAPOS_MANAGE_TOKEN "
                 "(`kapos keys status --show-token` on the terminal shows it)")


def parse_address(where):
    """'HOST:PORT' | 'tcp://HOST:PORT' -> ('tcp', (host, port)); 'serial:URL' -> ('serial', URL)."""
    if where.startswith("serial:"):
        url = where[len("serial:"):]
        if url.startswith("//"):
            url = url[2:]
        if not url:
            raise ValueError("serial: needs a device or a pyserial URL, e.g. serial:/dev/ttyUSB0")
        return "serial", url
    if where.startswith("tcp://"):
        where = where[len("tcp://"):]
    host, sep, port = where.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError("expected HOST:PORT (e.g. 127.0.0.1:7700), got %r" % where)
    host = host.strip("[]") or "127.0.0.1"
    return "tcp", (host, int(port))


class _TcpLink:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host, port, timeout):
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=REPLY_LIMIT), timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise ManagementError("cannot connect to the management channel at %s:%d: %s"
                                  % (host, port, _why(exc)))
        return cls(reader, writer)

    async def send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    async def readline(self):
        line = await self.reader.readline()
        if not line:
            raise ManagementError("the terminal closed the management connection")
        return line

    async def close(self):
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


class _SerialLink:
    """pyserial read by a thread; lines handed to the loop."""

    def __init__(self, port, loop):
        self.port = port
        self.loop = loop
        self.lines = asyncio.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="kapos-diag-serial", daemon=True)
        self._thread.start()

    @classmethod
    async def open(cls, url, timeout, baudrate=115200):
        import serial

        loop = asyncio.get_running_loop()
        try:
            port = await asyncio.wait_for(loop.run_in_executor(
                None, lambda: serial.serial_for_url(url, baudrate=baudrate, timeout=0.1, write_timeout=5)), timeout)
        except (serial.SerialException, ValueError, OSError, asyncio.TimeoutError) as exc:
            raise ManagementError("cannot open the management console %s: %s" % (url, _why(exc)))
        return cls(port, loop)

    def _read(self):
        buffer = b""
        while not self._stop.is_set():
            try:
                data = self.port.read(max(1, min(self.port.in_waiting, 65536)))
            except Exception:
                if not self._stop.is_set():
                    self.loop.call_soon_threadsafe(self.lines.put_nowait, None)
                return
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                self.loop.call_soon_threadsafe(self.lines.put_nowait, line + b"\n")

    async def send(self, data):
        await self.loop.run_in_executor(None, self._write, data)

    def _write(self, data):
        self.port.write(data)
        self.port.flush()

    async def readline(self):
        line = await self.lines.get()
        if line is None:
            raise ManagementError("the management console failed")
        return line

    async def close(self):
        self._stop.set()
        await self.loop.run_in_executor(None, self._thread.join, 2.0)
        try:
            self.port.close()
        except Exception:
            pass


class ManagementClient:
    def __init__(self, link, where):
        self.link = link
        self.where = where
        self.hello = None
        self.token_sent = False
        self._next_id = 0
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, where, token=None, timeout=10.0):
        kind, address = parse_address(where)
        if kind == "tcp":
            link = await _TcpLink.open(address[0], address[1], timeout)
        else:
            link = await _SerialLink.open(address, timeout)
        client = cls(link, where)
        try:
            client.hello = await client.call("hello", timeout=timeout)
            if token:
                client.token_sent = True
                await client.call("auth", token=token, timeout=timeout)
        except BaseException:
            await client.close()
            raise
        return client

    async def request(self, cmd, timeout=DEFAULT_TIMEOUT, **fields):
        """Send one request and return the reply dict, whatever its `ok`."""
        async with self._lock:
            self._next_id += 1
            request_id = self._next_id
            payload = dict(fields, id=request_id, cmd=cmd)
            await self.link.send((json.dumps(payload, separators=(",", ":")) + "\n").encode("utf-8"))
            try:
                return await asyncio.wait_for(self._reply_to(request_id), timeout)
            except asyncio.TimeoutError:
                raise ManagementError("no reply to %s from %s within %.0f s" % (cmd, self.where, timeout))

    async def _reply_to(self, request_id):
        while True:
            line = await self.link.readline()
            try:
                reply = json.loads(line.decode("utf-8", "replace"))
            except ValueError:
                continue  # console noise on a serial line
            if not isinstance(reply, dict) or "ok" not in reply:
                continue
            if reply.get("id") == request_id:
                return reply
            if reply.get("id") is None and not reply.get("ok"):
                return reply  # the server could not read our request at all

    async def call(self, cmd, timeout=DEFAULT_TIMEOUT, **fields):
        """Send one request; return the reply, or raise ManagementError with its error."""
        reply = await self.request(cmd, timeout=timeout, **fields)
        if not reply.get("ok"):
            error = reply.get("error") or "the terminal refused %s" % cmd
            if error.startswith("not authenticated") and not self.token_sent:
                error = "not authenticated: " + NO_TOKEN_HINT
            raise ManagementError(error, reply)
        return reply

    async def close(self):
        await self.link.close()


def _why(exc):
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
