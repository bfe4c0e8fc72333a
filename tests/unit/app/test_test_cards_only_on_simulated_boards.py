"""Test cards (kapos.simdata) are production wiring's only on a simulated board: a board
with a real card reader gets none, and a scenario naming one says to present it by hand."""

import asyncio
import os

import pytest

from kapos import boards
from kapos.app import config as config_mod
from kapos.errors import ScenarioError
from kapos.local_target import LocalTarget
from kapos.wiring import Assembly

BOARD_FILES = sorted(f[:-5] for f in os.listdir(boards.BOARDS_DIR) if f.endswith(".toml"))


@pytest.mark.parametrize("name", BOARD_FILES)
def test_only_boards_whose_readers_are_all_twins_count_as_simulated(name):
    real = config_mod.real_card_readers(boards.load_board(name), boards.DRIVERS)
    assert (real == []) == name.startswith("sim"), (name, real)


def test_the_sim_board_loads_the_test_cards(tmp_path):
    assembly = Assembly("sim", None, [("storage.data_dir", str(tmp_path))])
    try:
        assert "visa-debit" in assembly.testcards
    finally:
        assembly.close()


def test_a_board_with_real_readers_names_no_test_card(tmp_path):
    assembly = Assembly("sim", None, [("storage.data_dir", str(tmp_path))])
    try:
        target = LocalTarget(assembly.terminal, {})  # what wiring gives a real board
        with pytest.raises(ScenarioError, match="present the card by hand"):
            asyncio.run(target.swipe("visa-debit"))
    finally:
        assembly.close()


@pytest.mark.parametrize("name", BOARD_FILES)
def test_a_real_board_warns_while_its_technician_menu_opens_with_the_plain_pin(name):
    board = boards.load_board(name)
    config = config_mod.load(None, [("technician.pin", '"482915"')])
    warning = config_mod.plain_technician_pin(config, board, boards.DRIVERS)
    assert (warning is not None) == (not name.startswith("sim")), name
    if warning is not None:
        assert "technician_pin_hash" in warning and "482915" not in warning
    hashed = config_mod.load(None, [("security.technician_pin_hash",
                                     '"pbkdf2-sha256$1000$%s$%s"' % ("00" * 16, "11" * 32))])
    assert config_mod.plain_technician_pin(hashed, board, boards.DRIVERS) is None
