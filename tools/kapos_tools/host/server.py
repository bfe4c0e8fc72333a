"""The reference host's I/O: asyncio TCP (+TLS) server and serial lines over one Ledger.

    server = HostServer(ledger)
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
"""

import asyncio
import logging
import ssl

from kapos.errors import DecodeError, KaposError, RemoteProtocolError
from kapos.host import codec
from kapos.host import messages as m
from kapos.host.codec import MTI
from kapos.host.framing import TcpFramer
from kapos.services.host_client import bound_mac, encode_message, mac_ok
from kapos.services.transport import SendError, SerialEndpoint

log = logging.getLogger("kapos_tools.host")


def tls_server_context(certfile, keyfile):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context


class HostServer:
    def __init__(self, ledger, mac=None, max_payload=4096):
        self.ledger = ledger
        self.mac = mac
        self.max_payload = max_payload
        self.stats = {"messages": 0, "responses": 0, "errors": 0, "connections": 0}
        self._servers = []
        self._serial = []  # (endpoint, task)
        self._clients = set()
        # test hook: callable(request dict) -> seconds to wait before answering, or None
        self.response_delay = None

    # ------------------------------------------------------------ one message

    def process(self, data):
        """The encoded response to one encoded request, or None. Raises DecodeError."""
        message = codec.decode(data)
        self.stats["messages"] += 1
        if self.mac is not None and message.get(MTI) in m.REQUEST_MTIS + ("0401", "0421", "0221") \
                and not mac_ok(data, message, self.mac):
            log.warning("%s from %s stan %s: bad MAC", message.get(MTI), message.get(41),
                        message.get(11))
            response = m.build_response(message, "63")
        elif not self._decrypt(message):
            response = m.build_response(message, "30")
        else:
            response = self.ledger.handle(message, data)
        if response is None:
            log.warning("%s from %s is not a request: dropped", message.get(MTI), message.get(41))
            return None
        self.stats["responses"] += 1
        log.info("%s %s stan %s %s %s -> %s", message.get(MTI), message.get(41),
                 message.get(11), message.get(3, message.get(70, "")),
                 message.get(4, ""), response.get(39))
        return encode_message(response, self._response_mac(message))

    def _decrypt(self, message):
        """Enciphered card data (48 EC) back into 35 / 2 + 14; False when it fails."""
        decrypt = getattr(self.mac, "decrypt_card_data", None)
        if decrypt is None:
            return True
        try:
            decrypt(message)
            return True
        except Exception as exc:
            log.warning("%s from %s stan %s: %s", message.get(MTI), message.get(41), message.get(11), exc)
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
        server = await asyncio.start_server(self._client, host, port, ssl=tls)
        self._servers.append(server)
        sockname = server.sockets[0].getsockname()
        return sockname[0], sockname[1]

    async def _client(self, reader, writer):
        peer = writer.get_extra_info("peername")
        self.stats["connections"] += 1
        task = asyncio.current_task()
        self._clients.add(task)
        framer = TcpFramer(self.max_payload)
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    if framer.pending:
                        log.warning("%s: closed mid-message (%d bytes)", peer, framer.pending)
                    break
                for payload in framer.receive(chunk):
                    reply = self.process(payload)
                    if reply is not None:
                        await self._delay(payload)
                        writer.write(framer.frame(reply))
                await writer.drain()
        except (DecodeError, RemoteProtocolError) as exc:
            self.stats["errors"] += 1
            log.error("%s: malformed input (%s): closing the connection", peer, exc)
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            log.info("%s: connection lost: %s", peer, exc)
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug must cost one connection, never the host
            self.stats["errors"] += 1
            log.exception("%s: error while handling a message: closing the connection", peer)
        finally:
            self._clients.discard(task)
            try:
                writer.close()
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
                reply = self.process(payload)
            except DecodeError as exc:
                self.stats["errors"] += 1
                log.error("serial: undecodable message (%s): dropped", exc)
                continue
            except KaposError as exc:
                self.stats["errors"] += 1
                log.error("serial: %s", exc)
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
        for server in self._servers:
            server.close()
        for task in list(self._clients):
            task.cancel()
        for endpoint, task in self._serial:
            task.cancel()
        await asyncio.gather(*[t for _, t in self._serial], *self._clients,
                             return_exceptions=True)
        for server in self._servers:
            try:
                await asyncio.wait_for(server.wait_closed(), 1.0)
            except asyncio.TimeoutError:
                pass
        for endpoint, _ in self._serial:
            endpoint.close()
        self._servers = []
        self._serial = []
