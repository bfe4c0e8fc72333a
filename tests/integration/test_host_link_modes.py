"""The host link never downgrades silently, and a scripted run speaks one time.

- host.mac = false (no MACs, track 2 in clear) is refused at start-up on a board with a
  real card reader, and only warned about on the simulated board (docs/protocol.md 13);
- on the simulated clock every message's field 7 is the simulated time, like fields 12
  and 13 (it used to be the wall clock)."""

import asyncio
import calendar
import logging
import time

import pytest

from kapos import boards
from kapos.app import config as config_mod
from kapos.simdata.keys import TEST_BDK
from kapos.errors import ConfigError
from kapos.host import codec
from kapos.wiring import Assembly
from kapos_tools.host import HostServer, Ledger
from kapos_tools.host.mac import HostDukptMac

from terminalrig import Running

SIM_START = "2029-03-04T05:06:07"  # far from any wall clock this test will run on
ISO8583_NO_MAC = [("host.mode", '"iso8583"'), ("host.mac", "false")]


# ---------------------------------------------------------------- host.mac = false

@pytest.mark.parametrize("board", ["rpi4", "rpi5", "rpi-zero2w"])
def test_host_mac_false_is_refused_on_a_board_with_real_card_readers(board, tmp_path):
    with pytest.raises(ConfigError, match=r"host\.mac = false .* in clear"):
        Assembly(board, overrides=ISO8583_NO_MAC + [("storage.data_dir", '"%s"' % tmp_path)])


def test_one_real_reader_is_enough_to_refuse_it():
    config = config_mod.load(overrides=ISO8583_NO_MAC)
    board = boards.load_board("sim")
    board["magstripe"] = {"driver": "serial", "url": "/dev/ttyUSB0"}
    with pytest.raises(ConfigError, match="magstripe reader"):
        config_mod.card_data_in_clear(config, board, boards.DRIVERS)
    board = boards.load_board("sim-nfc")  # the real MFRC522 driver on an emulated chip
    assert config_mod.card_data_in_clear(config, board, boards.DRIVERS) is True


def test_the_default_link_is_not_in_clear_anywhere():
    for overrides in ([], [("host.mode", '"iso8583"')], [("host.mac", "false")]):
        config = config_mod.load(overrides=overrides)
        assert config_mod.card_data_in_clear(config, boards.load_board("rpi4"), boards.DRIVERS) is False


def test_host_mac_false_on_the_sim_board_starts_with_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="kapos.wiring"):
        assembly = Assembly("sim", overrides=ISO8583_NO_MAC + [("storage.data_dir", '"%s"' % tmp_path)])
    try:
        assert assembly.authorizer.mac is None
        assert any("IN CLEAR" in r.getMessage() for r in caplog.records)
    finally:
        assembly.close()


# ---------------------------------------------------------------- one clock

class RecordingServer(HostServer):
    """The reference host, keeping every request it decodes."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.requests = []

    def process(self, data, *args, **kw):
        self.requests.append(codec.decode(data))
        return super().process(data, *args, **kw)


def test_every_time_field_of_a_run_on_the_simulated_clock_is_simulated_time():
    start = calendar.timegm(time.strptime(SIM_START, "%Y-%m-%dT%H:%M:%S"))

    async def go():
        ledger = Ledger(":memory:")
        ledger.load_cards()
        server = RecordingServer(ledger, mac=HostDukptMac(TEST_BDK))
        _, port = await server.start_tcp("127.0.0.1", 0)
        try:
            async with Running(overrides=[("host.mode", '"iso8583"'),
                                          ("host.address", '"127.0.0.1:%d"' % port),
                                          ("host.timeout", "3.0")], clock=SIM_START) as r:
                await r.play("key 1\nkeys 500\nkey ENTER\nswipe visa-debit\nkey 1\nkeys 1234\n"
                             "key ENTER\nexpect result approved\nkey ENTER\n")
                settled = await r.assembly.authorizer.settle()
                assert settled["agreed"], settled
        finally:
            await server.close()
            ledger.close()
        return server.requests

    requests = asyncio.run(asyncio.wait_for(go(), 60))
    assert {"0800", "0200", "0500"} <= {q["mti"] for q in requests}  # sign-on (+ echo), sale, settle
    for request in requests:
        sent = calendar.timegm((2029,) + tuple(int(request[7][i:i + 2]) for i in range(0, 10, 2))
                               + (0, 0, 0))
        assert 0 <= sent - start < 60, "field 7 of %s is %s" % (request["mti"], request[7])
    sale = [q for q in requests if q["mti"] == "0200"][0]
    local = time.localtime(start)
    assert sale[13] == time.strftime("%m%d", local)
    assert sale[12][:2] == time.strftime("%H", local)
