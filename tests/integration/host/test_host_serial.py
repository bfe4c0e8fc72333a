"""The serial host link over a pty pair (os.openpty): the reference host on the master
end (FdPort), the terminal on the slave device through pyserial (PySerialPort), with
the STX LEN .. ETX LRC framing, ACK/NAK and the line-idle rule of kapos.host.framing."""

import asyncio
import os
import tty

import pytest

from hostkit import MERCHANT, TERMINAL, TESTCARDS, agree, new_ledger, record_of, request, run, swipe
from kapos.errors import HostUnavailable
from kapos.io import journal as J
from kapos.io.host_link import HostAuthorizer
from kapos.io.journal import Journal
from kapos.io.transport import FdPort, SerialTransport
from kapos_tools.host import HostServer


class SerialRig:
    def __init__(self, directory, timeout=2.0):
        self.directory = str(directory)
        self.timeout = timeout

    async def __aenter__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.ledger = new_ledger()
        self.server = HostServer(self.ledger)
        self.host_endpoint = await self.server.start_serial(FdPort(self.master))
        self.journal = Journal(os.path.join(self.directory, "journal"))
        self.transport = SerialTransport(url=os.ttyname(self.slave))
        self.auth = HostAuthorizer(self.transport, self.journal, TERMINAL, MERCHANT,
                                   timeout=self.timeout, retry_base=0.05, retry_max=0.3)
        await self.auth.start()
        return self

    async def __aexit__(self, *exc):
        await self.auth.aclose()
        await self.server.close()
        os.close(self.slave)
        os.close(self.master)

    def balance(self, card_id):
        return self.ledger.balance(TESTCARDS[card_id].account_key())


def test_transactions_and_settlement_over_a_pty(tmp_path):
    async def go():
        async with SerialRig(tmp_path) as rig:
            assert rig.auth.signed_on
            sale_req = request(1, "sale", 1500, swipe("visa-debit"), pin="1234")
            sale = await rig.auth.authorize(sale_req)
            assert sale["approved"] and rig.balance("visa-debit") == 98500
            refund = await rig.auth.authorize(request(2, "refund", 200, swipe("amex")))
            assert refund["approved"]
            void = await rig.auth.authorize(request(3, "void", 1500, None,
                                                    original=record_of(sale_req, sale)))
            assert void["approved"] and rig.balance("visa-debit") == 100000
            balance = await rig.auth.authorize(request(4, "balance", 0, swipe("visa-debit"),
                                                       pin="1234"))
            assert balance["balance"] == 100000
            transfer = await rig.auth.authorize(request(5, "transfer", 1000,
                                                        swipe("visa-debit"), pin="1234",
                                                        target=TESTCARDS["amex"].pan))
            assert transfer["approved"] and rig.balance("amex") == 51200
            cash = await rig.auth.authorize(request(6, "cash", 2000, swipe("visa-debit"),
                                                    pin="1234"))
            assert cash["approved"] and cash["balance"] == 97000
            assert (await rig.auth.echo())["ok"]
            settle = await rig.auth.settle()
            assert settle["agreed"], settle
            assert rig.host_endpoint.frame_errors == 0
            assert agree(rig.journal, rig.ledger) == []

    run(go())


def test_late_reply_on_the_serial_line_is_noted_and_reversed(tmp_path):
    async def go():
        async with SerialRig(tmp_path, timeout=0.3) as rig:
            late = {"left": 1}

            def delay(message):
                if message["mti"] == "0200" and late["left"]:
                    late["left"] -= 1
                    return 0.6
                return 0

            rig.server.response_delay = delay
            with pytest.raises(HostUnavailable):
                await rig.auth.authorize(request(1, "sale", 4200, swipe("visa-debit")))
            await rig.auth.wait_idle(5)
            row = rig.journal.find_by_ref(1)
            assert row["status"] == J.REVERSED
            assert row["late_code"] == "00"  # the late approval arrived and was refused
            assert rig.auth.late_replies == 1
            assert rig.balance("visa-debit") == 100000
            ok = await rig.auth.authorize(request(2, "sale", 100, swipe("visa-debit")))
            assert ok["approved"]
            assert agree(rig.journal, rig.ledger) == []

    run(go())


def test_a_corrupted_frame_is_nakked_and_retransmitted(tmp_path):
    async def go():
        async with SerialRig(tmp_path) as rig:
            port = rig.host_endpoint.port
            write = port.write
            state = {"corrupt": 1}

            def corrupting_write(data):
                if state["corrupt"] and data[:1] == b"\x02" and len(data) > 20:
                    state["corrupt"] = 0
                    data = data[:10] + bytes([data[10] ^ 0x01]) + data[11:]  # one bit
                write(data)

            port.write = corrupting_write
            reply = await rig.auth.authorize(request(1, "sale", 100, swipe("visa-debit")))
            assert reply["approved"]
            assert rig.transport.endpoint.frame_errors == 1  # the terminal NAKed it
            assert rig.host_endpoint.retransmissions == 1  # the host sent it again

    run(go())


def test_serial_port_that_does_not_open_is_not_delivered(tmp_path):
    async def go():
        journal = Journal(str(tmp_path / "journal"))
        auth = HostAuthorizer(SerialTransport(url=str(tmp_path / "no-such-tty")), journal,
                              TERMINAL, MERCHANT, timeout=0.2, sign_on=False)
        await auth.start()
        with pytest.raises(HostUnavailable, match="Host unavailable"):
            await auth.authorize(request(1, "sale", 100, swipe("visa-debit")))
        assert journal.find_by_ref(1)["status"] == J.UNSENT
        await auth.aclose()

    run(go())


class StreamPort:
    """An accepted TCP connection as a serial port (the host end of socket://)."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.task = None

    def open(self, on_bytes, on_error):
        async def pump():
            while True:
                data = await self.reader.read(4096)
                if not data:
                    on_error(EOFError("closed"))
                    return
                on_bytes(data)

        self.task = asyncio.ensure_future(pump())

    def write(self, data):
        self.writer.write(data)

    def close(self):
        if self.task is not None:
            self.task.cancel()
        self.writer.close()


def test_serial_framing_over_a_pyserial_socket_url(tmp_path):
    async def go():
        ledger = new_ledger()
        server = HostServer(ledger)
        connected = asyncio.Event()

        async def accept(reader, writer):
            await server.start_serial(StreamPort(reader, writer))
            connected.set()

        listener = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        journal = Journal(str(tmp_path / "journal"))
        auth = HostAuthorizer(SerialTransport(url="socket://127.0.0.1:%d" % port), journal,
                              TERMINAL, MERCHANT, timeout=2.0)
        await auth.start()
        reply = await auth.authorize(request(1, "sale", 700, swipe("visa-debit")))
        assert reply["approved"] and ledger.balance(TESTCARDS["visa-debit"].pan) == 99300
        await auth.aclose()
        await server.close()
        listener.close()

    run(go())
