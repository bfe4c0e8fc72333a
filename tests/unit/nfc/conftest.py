"""Shared set-up: the real MFRC522 driver on the register-level emulator."""

import pytest

from kapos.ports.sim.mfrc522_emu import emulated_chip


@pytest.fixture
def rig():
    """(emulator, chip) with an empty field."""
    return emulated_chip()
