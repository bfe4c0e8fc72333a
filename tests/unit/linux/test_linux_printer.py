"""ESC/POS printers: the bytes python-escpos sends for a receipt (init, code page, bold,
cut), and DLE EOT status answers from a fake serial port turned into 'paper-out' /
'offline' *before* any receipt byte is sent; a printer that never answers is 'unknown'
and prints; status() on the loop never waits; writes paced by byte_rate."""

import asyncio

import pytest
from escpos.printer import Dummy, Serial
from PIL import Image

from kapos.app.receipts import Line, Receipt
from kapos.errors import ConfigError, HardwareError
from kapos.ports.linux.printer import SerialEscposPrinter, UsbEscposPrinter

ESC_INIT, BOLD_ON, BOLD_OFF = b"\x1b@", b"\x1bE\x01", b"\x1bE\x00"
FULL_CUT = b"\x1dV\x00"  # GS V 0
DLE_EOT_ONLINE, DLE_EOT_PAPER = b"\x10\x04\x01", b"\x10\x04\x04"
RECEIPT = Receipt([Line("KAPOS SHOP", "center", bold=True), Line("Amount          12.34"),
                   Line("APPROVED", "center", bold=True, double=True)])


def print_(printer, receipt=RECEIPT):
    asyncio.run(printer.print_receipt(receipt))


def test_receipt_bytes_on_a_printer_with_a_cutter():
    dummy = Dummy(profile="TM-T20II")
    printer = SerialEscposPrinter(printer=dummy, profile="TM-T20II", status_query=False)
    print_(printer)
    out = dummy.output
    assert out.startswith(ESC_INIT + b"\x1bt\x00")  # init, then code page CP437 = table 0 on this profile
    title = out.index(b"KAPOS SHOP")
    assert out.rfind(BOLD_ON, 0, title) > out.rfind(BOLD_OFF, 0, title)  # bold title
    amount = out.index(b"Amount          12.34\n")
    assert out.rfind(BOLD_OFF, title, amount) > 0  # bold switched off again
    assert out.endswith(FULL_CUT)


def test_58mm_profile_without_cutter_feeds_instead_and_uses_its_code_page_number():
    dummy = Dummy(profile="POS-5890")
    print_(SerialEscposPrinter(printer=dummy, status_query=False))
    assert dummy.output.startswith(ESC_INIT + b"\x1bt\x34")  # CP437 is table 52 in this profile
    assert dummy.output.endswith(b"\x1bd\x06") and FULL_CUT not in dummy.output


def test_every_job_resends_the_code_page_after_init():
    dummy = Dummy(profile="POS-5890")
    printer = SerialEscposPrinter(printer=dummy, codepage="CP858", status_query=False)
    print_(printer)
    print_(printer)
    assert dummy.output.count(ESC_INIT + b"\x1bt\x35") == 2


def test_logo_is_printed_as_a_raster_image_before_the_text(tmp_path):
    logo = tmp_path / "logo.png"
    Image.new("1", (64, 16), 0).save(logo)
    dummy = Dummy(profile="POS-5890")
    print_(SerialEscposPrinter(printer=dummy, logo=str(logo), status_query=False))
    raster = dummy.output.index(b"\x1dv0")  # GS v 0
    assert raster < dummy.output.index(b"KAPOS SHOP")


class FakePort:
    """A serial port whose printer answers DLE EOT n with a status byte."""

    def __init__(self, online=0x16, paper=0x12, silent=False):
        self.answers = {DLE_EOT_ONLINE: bytes([online]), DLE_EOT_PAPER: bytes([paper])}
        self.silent = silent
        self.written = bytearray()
        self.pending = bytearray(b"\x00")  # a stale byte that must be flushed, not read as status
        self.is_open = True

    def write(self, data):
        self.written += data
        if not self.silent and bytes(data) in self.answers:
            self.pending += self.answers[bytes(data)]

    def read(self, size=1):
        out, self.pending = bytes(self.pending[:size]), self.pending[size:]
        return out

    def reset_input_buffer(self):
        self.pending = bytearray()

    def flush(self):
        pass

    def close(self):
        self.is_open = False


def serial_printer(port):
    escpos_serial = Serial(devfile="/dev/fake", profile="POS-5890")
    escpos_serial.device = port
    return SerialEscposPrinter(printer=escpos_serial)


@pytest.mark.parametrize("online, paper, state", [
    (0x16, 0x12, "ok"),
    (0x16, 0x1E, "ok"),  # paper near end still prints
    (0x1E, 0x72, "paper-out"),  # paper end: the printer also reports itself offline
    (0x16, 0x72, "paper-out"),
    (0x1E, 0x12, "offline"),  # cover open / error
])
def test_dle_eot_answers_map_to_states(online, paper, state):
    assert serial_printer(FakePort(online, paper)).query_status() == state


def test_status_on_the_loop_never_queries_and_reports_the_last_answer():
    port = FakePort(0x1E, 0x72)
    printer = serial_printer(port)
    assert printer.query_status() == "paper-out"
    port.written.clear()
    with printer._lock:  # a job is printing in the worker thread
        assert printer.status() == "paper-out"
    assert bytes(port.written) == b""  # status() sent nothing itself


def test_a_printer_that_never_answers_is_unknown_and_prints():
    # TX not wired (or DLE EOT ignored): the job must still be sent
    port = FakePort(silent=True)
    printer = serial_printer(port)
    assert printer.query_status() == "unknown"
    port.written.clear()
    print_(printer)
    written = bytes(port.written)
    assert written.startswith(DLE_EOT_ONLINE + ESC_INIT)  # one query (no answer), then the job
    assert b"KAPOS SHOP" in written
    assert printer.selftest()[0] is True


@pytest.mark.parametrize("port, message", [
    (FakePort(0x1E, 0x72), "printer paper-out"),
    (FakePort(0x1E, 0x12), "printer offline"),
])
def test_print_refuses_before_sending_the_receipt(port, message):
    printer = serial_printer(port)
    with pytest.raises(HardwareError, match=message):
        print_(printer)
    assert bytes(port.written) == DLE_EOT_ONLINE + DLE_EOT_PAPER  # the queries, nothing else


def test_print_when_ok_sends_queries_then_the_job():
    port = FakePort()
    print_(serial_printer(port))
    written = bytes(port.written)
    assert written.startswith(DLE_EOT_ONLINE + DLE_EOT_PAPER + ESC_INIT)
    assert b"KAPOS SHOP" in written


def test_byte_rate_paces_the_writes_in_chunks():
    port = FakePort()
    writes = []
    original = port.write
    port.write = lambda data: (writes.append(len(data)), original(data))[1]
    escpos_serial = Serial(devfile="/dev/fake", profile="POS-5890")
    escpos_serial.device = port
    printer = SerialEscposPrinter(printer=escpos_serial, byte_rate=1000000)
    print_(printer, Receipt([Line("X" * 30)] * 10))
    assert writes and max(writes) <= 64  # every write is one paced chunk
    with pytest.raises(ConfigError, match="byte_rate"):
        SerialEscposPrinter(printer=Serial(devfile="/dev/fake", profile="POS-5890"), byte_rate=5)


def test_status_unknown_when_the_transport_cannot_read():
    dummy = Dummy(profile="POS-5890")
    printer = SerialEscposPrinter(printer=dummy)
    assert printer.status() == "unknown"
    print_(printer)  # unknown does not block printing
    assert b"KAPOS SHOP" in dummy.output


def test_write_failure_is_a_hardware_error():
    class Broken(FakePort):
        def write(self, data):
            if data.startswith(ESC_INIT):
                raise OSError(5, "Input/output error")
            FakePort.write(self, data)

    with pytest.raises(HardwareError, match="write failed"):
        print_(serial_printer(Broken()))


@pytest.mark.parametrize("kw, text", [
    (dict(codepage="KOI8"), "codepage 'KOI8' is not in profile POS-5890"),
    (dict(logo="/nonexistent/logo.png"), "no such file"),
    (dict(paper_width=58), "unknown key 'paper_width'"),
])
def test_bad_board_keys(kw, text):
    with pytest.raises(ConfigError, match=text):
        SerialEscposPrinter(printer=Dummy(profile="POS-5890"), **kw)


def test_usb_printer_needs_ids_and_opening_a_missing_port_fails_clearly():
    with pytest.raises(ConfigError, match="vendor_id and product_id"):
        UsbEscposPrinter()
    with pytest.raises(HardwareError, match="/dev/ttyNOPE"):
        SerialEscposPrinter(port="/dev/ttyNOPE")
