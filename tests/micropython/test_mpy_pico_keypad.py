"""The Pico W keypad: kapos.drivers.keypad_matrix on machine.Pin lines, opened from
boards/pico-w.toml by ports/micropython/devices.py, run inside MicroPython on a fake
`machine` module that wires the pins to a simulated membrane keypad (inside/fake)."""

import json
import os

import pytest

import mpjs
from kapos import boards

HERE = os.path.dirname(os.path.abspath(__file__))

SCRIPT = """
import json, sys
sys.path.insert(0, "/fake")
import machine
from kapos.ports.micropython.devices import open_keypad, read_keys

section = json.loads(%(section)r)
machine.wire(section["row_pins"], section["col_pins"])
matrix = open_keypad(section)
now = [0]
got = []

def ticks_ms():
    return now[0]

async def sleep_ms(ms):  # simulated time: each scan is 10 ms later
    now[0] += ms

async def on_key(key):
    got.append((now[0], key))

async def scans(n):
    await read_keys(matrix, on_key, sleep_ms, ticks_ms, period_ms=10, scans=n)

async def main():
    machine.press(1, 1)            # '5' held for 100 ms: one press
    await scans(10)
    machine.release_all()
    await scans(5)
    for _ in range(3):             # contact bounce shorter than the debounce: nothing
        machine.press(0, 0)
        await scans(1)
        machine.release_all()
        await scans(1)
    await scans(5)
    machine.press(3, 3)            # D = ENTER
    await scans(6)
    machine.release_all()
    await scans(5)
    machine.press(0, 0); machine.press(0, 1); machine.press(1, 0)  # a ghosting rectangle
    await scans(10)
    machine.release_all()
    await scans(5)
    drive_idle = [machine.KEYPAD["pins"][n].level for n in section["row_pins"]]
    print("KEYS " + json.dumps(got))
    print("DRIVE " + json.dumps(drive_idle))

await main()  # runPythonAsync: top-level await (this build has no asyncio.run)
"""


def test_pico_w_keypad_scan_debounces_on_machine_pins_inside_micropython():
    reason = mpjs.missing()
    if reason:
        pytest.skip(reason)
    section = boards.load_board("pico-w")["keypad"]
    out = mpjs.run(SCRIPT % {"section": json.dumps(section)},
                   copies=[(os.path.join(HERE, "inside", "fake"), "/fake")], timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    keys = [key for _, key in json.loads(lines["KEYS"])]
    # one '5' for a held key, nothing for the bounce, ENTER from 'D', nothing for the ghost
    assert keys == ["5", "ENTER"], out.stdout
    first_at = json.loads(lines["KEYS"])[0][0]
    assert first_at >= section["debounce_ms"]  # reported only after the reading held
    assert json.loads(lines["DRIVE"]) == [0, 0, 0, 0]  # idle: all drive lines active
