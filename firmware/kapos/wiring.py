"""Composition (L6): board file + config -> Platform + services -> Terminal."""

import calendar
import time

from kapos import boards
from kapos.app import config as config_mod
from kapos.app import testcards as testcards_mod
from kapos.app.diagnostics import Diagnostics
from kapos.app.pinseal import TestKeyPinSealer, make_test_pin_checker
from kapos.app.runtime import Terminal
from kapos.app.testbank import TestBank
from kapos.errors import ConfigError


def parse_clock(text):
    """'2026-11-25T10:00:00' (UTC) -> epoch seconds."""
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        raise ConfigError("clock must look like 2026-11-25T10:00:00, got %r" % text)


def make_authorizer(config, cards):
    mode = config["host"]["mode"]
    if mode == "testbank":
        return TestBank(cards, delay=config["host"]["reply_delay"], pin_checker=make_test_pin_checker())
    raise ConfigError("host.mode %r is unknown (known: testbank)" % mode)


class Assembly:
    """Everything one terminal run is made of, for the CLI, the console and tests."""

    def __init__(self, board_name="sim", config_path=None, overrides=(), out_dir=None, clock=None):
        self.config = config_mod.load(config_path, overrides)
        self.settings = config_mod.settings_from(self.config)
        self.board = boards.load_board(board_name)
        self.testcards = testcards_mod.load()
        self.platform = boards.build_platform(self.board)
        for device in self.platform.devices.values():
            if out_dir is not None and hasattr(device, "out_dir"):
                device.out_dir = out_dir
        clock_device = self.platform.get("clock")
        if clock is not None and hasattr(clock_device, "set_time"):
            clock_device.set_time(parse_clock(clock))
        self.authorizer = make_authorizer(self.config, self.testcards)
        self.terminal = Terminal(self.platform, self.settings, self.authorizer, TestKeyPinSealer())
        self.diagnostics = Diagnostics(self.terminal, config=self.config)
        self.terminal.diagnostics = self.diagnostics

    def close(self):
        self.authorizer.close()
        self.platform.close()
