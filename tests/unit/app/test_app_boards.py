"""Boards as data: the shipped board files load; bad ones are refused with clear messages."""

import os

import pytest

from kapos import boards
from kapos.errors import ConfigError


@pytest.mark.parametrize("name", ["sim", "sim-nfc", "rpi4", "rpi5", "rpi-zero2w"])
def test_shipped_boards_validate(name):
    board = boards.load_board(name)
    assert board["board"]["name"] == name
    for peripheral in ("display", "keypad", "magstripe", "nfc", "printer"):
        assert board[peripheral]["driver"] in boards.DRIVERS[peripheral]


def test_rpi5_uses_rpi_lgpio():
    assert boards.load_board("rpi5")["board"]["gpio_library"] == "rpi-lgpio"


def base():
    return {"board": {"name": "t"}, "display": {"driver": "sim"}}


def test_unknown_driver_is_refused_with_the_known_ones():
    board = base()
    board["nfc"] = {"driver": "pn532"}
    with pytest.raises(ConfigError) as err:
        boards.validate_board(board)
    assert "[nfc] driver 'pn532' is unknown" in str(err.value) and "mfrc522" in str(err.value)


def test_pin_used_twice_names_both_users():
    board = base()
    board["keypad"] = {"driver": "matrix", "row_pins": [5, 6, 13, 19], "col_pins": [12, 16, 20, 21]}
    board["buzzer"] = {"driver": "gpio", "signal_pin": 13}
    with pytest.raises(ConfigError) as err:
        boards.validate_board(board)
    assert "GPIO 13 is used twice" in str(err.value)
    assert "[keypad] row_pins" in str(err.value) and "[buzzer] signal_pin" in str(err.value)


def test_pin_on_a_bus_line_is_refused():
    board = base()
    board["nfc"] = {"driver": "mfrc522", "bus": "spi0.0", "reset_pin": 25}
    board["buzzer"] = {"driver": "gpio", "signal_pin": 10}  # SPI0 MOSI
    with pytest.raises(ConfigError, match="GPIO 10 is used twice"):
        boards.validate_board(board)


def test_two_devices_may_share_an_spi_bus_but_not_a_uart():
    board = base()
    board["nfc"] = {"driver": "mfrc522", "bus": "spi0.0"}
    board["display"] = {"driver": "ssd1306", "bus": "spi0.1"}
    boards.validate_board(board)
    board["printer"] = {"driver": "escpos-serial", "bus": "uart0"}
    board["magstripe"] = {"driver": "serial", "bus": "uart0"}
    with pytest.raises(ConfigError, match="bus uart0 is used by both"):
        boards.validate_board(board)


def test_bad_pin_values_and_sections():
    board = base()
    board["buzzer"] = {"driver": "gpio", "signal_pin": 40}
    with pytest.raises(ConfigError, match="GPIO number 0-27"):
        boards.validate_board(board)
    with pytest.raises(ConfigError, match="unknown section"):
        boards.validate_board(dict(base(), speaker={"driver": "x"}))
    with pytest.raises(ConfigError, match="has no driver"):
        boards.validate_board(dict(base(), printer={"port": "/dev/x"}))
    with pytest.raises(ConfigError, match="missing \\[board\\]"):
        boards.validate_board({"display": {"driver": "sim"}})


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="no board file"):
        boards.load_board("does-not-exist")
    bad = tmp_path / "bad.toml"
    bad.write_text("[board\nname=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        boards.load_board(str(bad))


def test_sim_platform_builds_every_twin():
    platform = boards.build_platform(boards.load_board("sim"))
    assert set(platform.devices) == {"display", "keypad", "magstripe", "nfc", "printer", "buzzer", "clock", "tamper"}
    platform.close()


def test_driver_that_cannot_load_is_a_config_error():
    board = base()
    board["display"] = {"driver": "sim"}
    boards.DRIVERS["display"]["broken"] = "kapos.ports.nonexistent:Nothing"
    try:
        board["display"] = {"driver": "broken"}
        with pytest.raises(ConfigError, match="cannot load"):
            boards.build_platform(board)
    finally:
        del boards.DRIVERS["display"]["broken"]
