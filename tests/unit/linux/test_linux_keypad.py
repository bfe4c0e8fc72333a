"""MatrixKeypad over a simulated RPi.GPIO key matrix: debounce, one key per press,
ghosting guard, 3x4 and 4x4 layouts, no shorts between driven lines."""

import asyncio
import threading

import pytest

from kapos.drivers.keypad_matrix import KeypadMatrix
from kapos.errors import ConfigError, HardwareError
from kapos.ports.linux.keypad import MatrixKeypad
from linux_fakes import FakeGPIO, StepClock

ROWS, COLS = [5, 6, 13, 19], [12, 16, 20, 21]
LAYOUT_4X4 = [["1", "2", "3", "A"], ["4", "5", "6", "B"], ["7", "8", "9", "C"], ["*", "0", "#", "D"]]
KEYMAP = {"A": "CANCEL", "B": "CLEAR", "C": "MENU", "D": "ENTER", "*": "CLEAR", "#": "ENTER"}
LAYOUT_3X4 = [["1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"], ["*", "0", "#"]]


def keypad(layout=LAYOUT_4X4, rows=ROWS, cols=COLS, drive="rows", **kw):
    clock = StepClock(10)  # one scan every 10 ms of simulated time
    fake = FakeGPIO(clock)
    fake.wire(layout, rows, cols)
    kp = MatrixKeypad(row_pins=rows, col_pins=cols, layout=layout, keymap=KEYMAP, debounce_ms=30,
                      drive=drive, driver_name="matrix", gpio_module=fake, ticks_ms=clock, **kw)
    return kp, fake


def run(kp, ms):
    """Poll for `ms` simulated milliseconds; the keys reported, in order."""
    out = []
    for _ in range(ms // 10):
        key = kp.poll()
        if key is not None:
            out.append(key)
    return out


def test_press_hold_release_gives_one_key():
    kp, fake = keypad()
    fake.timeline = [(100, 900, "5")]  # held for 0.8 s: no auto-repeat
    assert run(kp, 1500) == ["5"]
    assert fake.shorts == 0


def test_bounce_shorter_than_debounce_gives_nothing():
    kp, fake = keypad()
    # contact chatter: 20 ms closed, 10 ms open, never closed for 30 ms
    fake.timeline = [(t, t + 20, "7") for t in range(100, 400, 30)]
    assert run(kp, 600) == []


def test_bouncy_press_then_stable_gives_one_key():
    kp, fake = keypad()
    fake.timeline = [(100, 120, "8"), (130, 150, "8"), (160, 600, "8")]
    assert run(kp, 800) == ["8"]


def test_function_keys_are_mapped_and_repeated_presses_each_count():
    kp, fake = keypad()
    fake.timeline = [(50, 200, "D"), (300, 450, "#"), (550, 700, "A"), (800, 950, "1"), (1050, 1200, "1")]
    assert run(kp, 1400) == ["ENTER", "ENTER", "CANCEL", "1", "1"]


def test_two_keys_held_together_both_count_once():
    kp, fake = keypad()
    # '1' then '5' while '1' is still down (different row and column: unambiguous)
    fake.timeline = [(100, 600, "1"), (300, 800, "5")]
    assert run(kp, 1000) == ["1", "5"]
    assert fake.shorts == 0


def test_two_keys_in_one_column_do_not_short_the_driven_rows():
    kp, fake = keypad()
    fake.timeline = [(100, 600, "2"), (100, 600, "5")]  # column 2, rows 1 and 2
    assert run(kp, 800) == ["2", "5"]
    assert fake.shorts == 0  # rows are released (open drain), never driven high


def test_ghost_pattern_is_ignored_until_it_resolves():
    kp, fake = keypad()
    # 1, 2 and 4 are three corners of a rectangle: 5 would read as pressed too
    fake.timeline = [(100, 500, "1"), (100, 500, "2"), (100, 500, "4"), (600, 800, "9")]
    assert run(kp, 1000) == ["9"]


def test_three_by_four_phone_layout():
    kp, fake = keypad(layout=LAYOUT_3X4, cols=COLS[:3])
    fake.timeline = [(100, 200, "1"), (300, 400, "0"), (500, 600, "#"), (700, 800, "9")]
    assert run(kp, 1000) == ["1", "0", "ENTER", "9"]


def test_columns_driven_instead_of_rows():
    kp, fake = keypad(drive="cols")
    fake.timeline = [(100, 200, "6"), (300, 400, "C")]
    assert run(kp, 600) == ["6", "MENU"]
    driven = {n for n, _ in fake.outputs}
    assert driven == set(COLS)


class CountingClock:
    """The keypad's millisecond clock (10 ms per call, one call per scan), counting scans."""

    def __init__(self, clock):
        self.clock = clock
        self.calls = 0
        self.cond = threading.Condition()

    def __call__(self):
        with self.cond:
            self.calls += 1
            self.cond.notify_all()
        return self.clock()

    def wait_scans(self, n):
        with self.cond:
            target = self.calls + n
            return self.cond.wait_for(lambda: self.calls >= target, 5.0)


def test_a_press_while_the_loop_is_blocked_is_not_lost():
    # The loop is stuck in a synchronous call (a bus write) for the whole press: only a
    # scan that does not need the loop can see it.
    counting = CountingClock(StepClock(10))
    fake = FakeGPIO(counting)
    fake.wire(LAYOUT_4X4, ROWS, COLS)
    kp = MatrixKeypad(row_pins=ROWS, col_pins=COLS, layout=LAYOUT_4X4, keymap=KEYMAP, debounce_ms=30,
                      driver_name="matrix", gpio_module=fake, ticks_ms=counting, scan_interval=0.001)

    async def main():
        first = asyncio.ensure_future(kp.read_key())
        await asyncio.sleep(0)  # read_key has started
        for label in ("5", "8"):
            fake.held = {label}
            assert counting.wait_scans(6)  # the loop is blocked here: 60 ms of scans
            fake.held = set()
            assert counting.wait_scans(6)
        return [await asyncio.wait_for(first, 2), await asyncio.wait_for(kp.read_key(), 2)]

    try:
        assert asyncio.run(main()) == ["5", "8"]
    finally:
        kp.close()


def test_selftest_reports_a_stuck_key_and_close_releases_lines():
    kp, fake = keypad()
    assert kp.selftest()[0] is True
    fake.held = {"0"}
    ok, text = kp.selftest()
    assert not ok and "0" in text
    kp.close()
    assert sorted(fake.cleaned) == sorted(ROWS + COLS)
    kp.close()


@pytest.mark.parametrize("kw, text", [
    (dict(layout=[["1", "2", "3", "X"]] * 4), "label 'X' is not a logical key"),
    (dict(keymap={"A": "OK"}), "keymap A = 'OK'"),
    (dict(layout=LAYOUT_3X4), "has 3 keys but 4 column pins"),
    (dict(row_pins=[5, 6, 13]), "4 rows but 3 row pins"),
    (dict(row_pins=[5, 6, 13, 40]), "40"),
    (dict(drive="diagonal"), "drive must be"),
    (dict(repeat=True), "unknown key 'repeat'"),
])
def test_bad_board_keys(kw, text):
    args = dict(row_pins=ROWS, col_pins=COLS, layout=LAYOUT_4X4, keymap=KEYMAP, gpio_module=FakeGPIO())
    args.update(kw)
    with pytest.raises(ConfigError, match=text):
        MatrixKeypad(**args)


def test_missing_gpio_library_names_the_fix(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_rpi(name, *a, **kw):
        if name.startswith("RPi"):
            raise ImportError("No module named 'RPi'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_rpi)
    with pytest.raises(HardwareError, match="rpi-lgpio"):
        MatrixKeypad(row_pins=ROWS, col_pins=COLS, layout=LAYOUT_4X4, keymap=KEYMAP)


def test_pi5_rpi_gpio_failure_is_explained():
    class Pi5Gpio(FakeGPIO):
        def setup(self, *a, **kw):
            raise RuntimeError("Cannot determine SOC peripheral base address")

    with pytest.raises(HardwareError, match="Pi 5.*rpi-lgpio"):
        MatrixKeypad(row_pins=ROWS, col_pins=COLS, layout=LAYOUT_4X4, keymap=KEYMAP, gpio_module=Pi5Gpio())


class ListPin:
    def __init__(self, level=1):
        self.level = level

    def value(self, level=None):
        if level is None:
            return self.level
        self.level = level


def test_portable_driver_with_explicit_times():
    rows, cols = [ListPin() for _ in range(4)], [ListPin() for _ in range(3)]
    m = KeypadMatrix(rows, cols, LAYOUT_3X4, {"#": "ENTER"}, debounce_ms=30)
    assert [r.level for r in rows] == [0, 0, 0, 0]  # idle: all driven lines active
    assert m.is_ambiguous((0, 1, 3)) and not m.is_ambiguous((0, 1)) and not m.is_ambiguous((0, 4))
    assert m.scan(0) == [] and m.scan(100) == []
