"""A fake `machine` module for tests inside MicroPython: Pins wired to a simulated 4x4
membrane keypad. Pressing a key connects its row line to its column line; a sense line
(input, pull-up) reads 0 when a pressed key joins it to a drive line held at 0."""

KEYPAD = {"pressed": set(), "pins": {}, "row_pins": (), "col_pins": ()}


def wire(row_pins, col_pins):
    KEYPAD["row_pins"], KEYPAD["col_pins"] = tuple(row_pins), tuple(col_pins)
    KEYPAD["pressed"] = set()
    KEYPAD["pins"] = {}


def press(row, col):
    KEYPAD["pressed"].add((row, col))


def release_all():
    KEYPAD["pressed"] = set()


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1

    def __init__(self, number, mode=IN, pull=None, value=None):
        self.number = number
        self.mode = mode
        self.pull = pull
        self.level = 1 if value is None else value
        KEYPAD["pins"][number] = self

    def _driven_low(self, number):
        pin = KEYPAD["pins"].get(number)
        return pin is not None and pin.mode in (Pin.OUT, Pin.OPEN_DRAIN) and pin.level == 0

    def value(self, level=None):
        if level is not None:
            if self.mode == Pin.IN:
                raise ValueError("GP%d is an input" % self.number)
            self.level = level
            return None
        if self.mode != Pin.IN:
            return self.level
        if self.pull != Pin.PULL_UP:
            raise ValueError("GP%d floats: the keypad needs a pull-up" % self.number)
        rows, cols = KEYPAD["row_pins"], KEYPAD["col_pins"]
        for r, c in KEYPAD["pressed"]:
            mine, other = (rows[r], cols[c]) if self.number in rows else (cols[c], rows[r])
            if mine == self.number and self._driven_low(other):
                return 0
        return 1
