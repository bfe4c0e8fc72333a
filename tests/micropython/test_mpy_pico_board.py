"""boards/pico-w.toml validates, with the Pico W's own pin rules."""

import copy

import pytest

from kapos import boards
from kapos.errors import ConfigError


def test_pico_w_board_validates_with_micropython_runtime():
    board = boards.load_board("pico-w")
    assert board["board"]["runtime"] == "micropython"
    assert board["nfc"]["bus"] == "pico-spi0" and board["printer"]["bus"] == "pico-uart0"


def test_pico_w_refuses_the_wifi_chip_pins_and_double_use():
    board = copy.deepcopy(boards.load_board("pico-w"))
    board["buzzer"]["signal_pin"] = 25
    with pytest.raises(ConfigError, match="Wi-Fi"):
        boards.validate_board(board)
    board["buzzer"]["signal_pin"] = 17  # the MFRC522's chip select
    with pytest.raises(ConfigError, match="GPIO 17 is used twice"):
        boards.validate_board(board)


def test_gp28_is_a_pico_pin_but_not_a_pi_one():
    pico = copy.deepcopy(boards.load_board("pico-w"))
    pico["buzzer"]["signal_pin"] = 28
    boards.validate_board(pico)
    pi = copy.deepcopy(boards.load_board("rpi4"))
    pi["buzzer"]["signal_pin"] = 28
    with pytest.raises(ConfigError, match="0-27"):
        boards.validate_board(pi)
