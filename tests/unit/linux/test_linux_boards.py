"""The Pi board files build with the linux drivers: every key of each section is a
constructor keyword the driver accepts (buses replaced by fakes through `extra`)."""

import copy

import pytest
from escpos.printer import Dummy
from luma.core.interface.serial import i2c

from kapos.boards import build_platform, load_board
from kapos.errors import ConfigError
from linux_fakes import FakeBus, FakeDevice, FakeGPIO


def fakes():
    gpio = FakeGPIO()
    return {
        "display": {"serial_interface": i2c(bus=FakeBus(), address=0x3C)},
        "keypad": {"gpio_module": gpio},
        "printer": {"printer": Dummy(profile="POS-5890")},
        "magstripe": {"input_device": FakeDevice()},
        "buzzer": {"gpio_module": gpio},
        "tamper": {"gpio_module": gpio},
    }


def pi_board(name):
    """The board file without [nfc]: the MFRC522 reader is tested against its emulator elsewhere."""
    board = copy.deepcopy(load_board(name))
    board.pop("nfc")
    return board


@pytest.mark.parametrize("name", ["rpi4", "rpi5", "rpi-zero2w"])
def test_pi_boards_build_with_linux_drivers(name):
    board = pi_board(name)
    platform = build_platform(board, extra=fakes())
    try:
        assert sorted(platform.devices) == ["buzzer", "clock", "display", "keypad", "magstripe", "printer", "tamper"]
        assert platform.keypad.matrix.keys[3] == "CANCEL"
        assert platform.display.controller == board["display"]["driver"]
    finally:
        platform.close()


def test_sh1106_by_driver_name_and_unknown_key_named():
    board = pi_board("rpi4")
    board["display"]["driver"] = "sh1106"
    platform = build_platform(board, extra=fakes())
    assert platform.display.controller == "sh1106"
    platform.close()
    board["keypad"]["debounce"] = 30
    with pytest.raises(ConfigError, match="unknown key 'debounce'"):
        build_platform(board, extra=fakes())


def test_linux_modules_import_without_pi_libraries():
    """Pi-only libraries are imported inside constructors, so every module loads on a PC."""
    import subprocess
    import sys

    code = ("import sys\n"
            "for name in ('RPi', 'RPi.GPIO', 'evdev', 'spidev', 'smbus2', 'usb', 'lgpio'):\n"
            "    sys.modules[name] = None  # makes `import name` fail\n"
            "import kapos.ports.linux.display, kapos.ports.linux.keypad, kapos.ports.linux.gpio\n"
            "import kapos.ports.linux.magstripe, kapos.ports.linux.printer, kapos.ports.linux.buzzer\n"
            "import kapos.ports.linux.clock\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_missing_device_is_named_at_once():
    import os

    from kapos.boards import build_platform, load_board
    from kapos.errors import HardwareError

    if os.path.exists("/dev/i2c-1") or os.path.exists("/dev/spidev0.0"):
        pytest.skip("this machine has the Pi's buses")
    with pytest.raises(HardwareError) as exc:
        build_platform(load_board("rpi4"))
    text = str(exc.value)
    for section in ("[display]", "[nfc]", "[printer]"):
        assert section in text  # not just the first one: one start shows every fix to make
    assert "devices cannot start" in text and "/dev/i2c-1 is missing" in text


def test_pi5_printer_is_on_the_gpio_uart_not_the_debug_header():
    from kapos.boards import load_board

    assert load_board("rpi5")["printer"]["port"] == "/dev/ttyAMA0"
