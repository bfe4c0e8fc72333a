"""host.mac = false (card data in clear on the host link) is refused on a board whose
contact chip reader is real, as for a real stripe or NFC reader; the sim slot allows it."""

import pytest

from kapos import boards
from kapos.app import config as config_mod
from kapos.errors import ConfigError

ISO8583_NO_MAC = [("host.mode", '"iso8583"'), ("host.mac", "false")]


def test_a_real_chip_reader_refuses_host_mac_false():
    config = config_mod.load(overrides=ISO8583_NO_MAC)
    board = boards.load_board("sim-nfc")
    assert config_mod.card_data_in_clear(config, board, boards.DRIVERS) is True  # the sim slot
    board["chip"] = {"driver": "pcsc", "reader": "ACS ACR39U"}
    with pytest.raises(ConfigError, match=r"host\.mac = false would send card data from the chip reader"):
        config_mod.card_data_in_clear(config, board, boards.DRIVERS)


def test_with_the_mac_on_a_real_chip_reader_is_fine():
    config = config_mod.load(overrides=[("host.mode", '"iso8583"')])
    board = boards.load_board("sim-nfc")
    board["chip"] = {"driver": "pcsc", "reader": "ACS ACR39U"}
    assert config_mod.card_data_in_clear(config, board, boards.DRIVERS) is False
