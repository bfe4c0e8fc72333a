"""The technician PIN lock survives a restart (app/techlock.py): pulling the plug after
three wrong PINs does not give three more guesses."""

import asyncio
import json
import os

from kapos.app import techlock
from kapos.core import tech
from kapos.harness import Harness

WRONG_THREE_TIMES = "".join("key MENU\nexpect state TECH_PIN\nkeys 1234\nkey ENTER\n"
                            "expect screen \"Wrong technician PIN\"\n"
                            for _ in range(tech.TECH_PIN_TRIES)) + "expect screen \"locked\"\n"
LOCKED = "key MENU\nexpect screen \"Technician menu locked\"\nexpect state IDLE\n"
OPENS = "key MENU\nexpect state TECH_PIN\nkeys 0000\nkey ENTER\nexpect state TECH_MENU\n"
CLOCK = "2026-11-25T10:00:00"


def _run(data_dir, script, clock=CLOCK):
    async def go():
        async with Harness(data_dir=data_dir, clock=clock) as h:
            await h.play(script)
            return h.terminal.state, h.terminal.screen.text()
    return asyncio.run(go())


def test_a_restart_keeps_the_lock_and_the_kept_file_holds_no_pin(tmp_path):
    _run(tmp_path, WRONG_THREE_TIMES)
    kept = (tmp_path / techlock.FILE_NAME).read_text()
    assert "1234" not in kept and "0000" not in kept
    assert json.loads(kept)["lock"][1] == tech.TECH_LOCK_FIRST
    # a new start on the same data directory, the same minute: no PIN can be typed
    _run(tmp_path, LOCKED)
    # once the lock has run out (the clock a minute and a half on) the right PIN opens it
    _run(tmp_path, OPENS, clock="2026-11-25T10:01:30")
    assert json.loads((tmp_path / techlock.FILE_NAME).read_text()) == \
        {"wrong": 0, "locks": 0, "lock": None}


def test_a_damaged_lock_file_locks_once_and_is_replaced(tmp_path):
    (tmp_path / techlock.FILE_NAME).write_text("{not json")
    _run(tmp_path, LOCKED)
    # the damaged file was replaced by that lock: a later start goes by it, not by damage
    assert json.loads((tmp_path / techlock.FILE_NAME).read_text())["locks"] == 1
    _run(tmp_path, OPENS, clock="2026-11-25T10:01:30")
    assert json.loads((tmp_path / techlock.FILE_NAME).read_text())["lock"] is None
    assert not os.path.exists(str(tmp_path / techlock.FILE_NAME) + ".new")
