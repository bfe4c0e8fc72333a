"""The technician PIN lock survives a restart (app/techlock.py): pulling the plug after
three wrong PINs does not give three more guesses, nor does a wall clock set right by
network time after the boot."""

import asyncio
import json
import os

from kapos.app import techlock
from kapos.core import tech_lock
from kapos.harness import Harness
from kapos.io.files import temporary_name

WRONG_THREE_TIMES = "".join("key MENU\nexpect state TECH_PIN\nkeys 1234\nkey ENTER\n"
                            "expect screen \"Wrong technician PIN\"\n"
                            for _ in range(tech_lock.TRIES)) + "expect screen \"locked\"\n"
LOCKED = "key MENU\nexpect screen \"Technician menu locked\"\nexpect state IDLE\n"
OPENS = "key MENU\nexpect state TECH_PIN\nkeys 0000\nkey ENTER\nexpect state TECH_MENU\n"
CLOCK = "2026-11-25T10:00:00"


def _run(data_dir, *steps, clock=CLOCK):
    """A terminal started on `data_dir`, playing each step: a script, or a number of
    seconds that pass at once (the simulated clock's skip)."""
    async def go():
        async with Harness(data_dir=data_dir, clock=clock) as h:
            for step in steps:
                if isinstance(step, str):
                    await h.play(step)
                else:
                    h.assembly.platform.get("clock").skip(step)
    asyncio.run(go())


def _kept(data_dir):
    return json.loads((data_dir / techlock.FILE_NAME).read_text())


def test_a_restart_keeps_the_lock_and_the_kept_file_holds_no_pin(tmp_path):
    _run(tmp_path, WRONG_THREE_TIMES)
    kept = (tmp_path / techlock.FILE_NAME).read_text()
    assert "1234" not in kept and "0000" not in kept
    assert _kept(tmp_path) == {"wrong": 0, "locks": 1, "left": tech_lock.LOCK_FIRST}
    # a new start on the same data directory: no PIN can be typed
    _run(tmp_path, LOCKED)
    # once the lock's time has passed on the running terminal, the right PIN opens it
    _run(tmp_path, LOCKED, tech_lock.LOCK_FIRST + 1, OPENS)
    assert _kept(tmp_path) == {"wrong": 0, "locks": 0, "left": None}
    assert not os.path.exists(temporary_name(str(tmp_path / techlock.FILE_NAME)))


def test_a_wall_clock_far_ahead_after_the_boot_does_not_end_the_lock(tmp_path):
    _run(tmp_path, WRONG_THREE_TIMES, clock="2025-06-01T00:00:00")  # booted before network time
    _run(tmp_path, LOCKED, clock="2026-11-25T10:00:00")  # network time came: years later


def test_a_damaged_lock_file_locks_once_and_is_replaced(tmp_path):
    for damage in ("{not json", '{"wrong": 0, "locks": 0, "left": NaN}', "[]"):
        (tmp_path / techlock.FILE_NAME).write_text(damage)
        _run(tmp_path, LOCKED)
        # the damaged file was replaced by that lock: a later start goes by it
        assert _kept(tmp_path)["locks"] == 1
        _run(tmp_path, tech_lock.LOCK_FIRST + 1, OPENS)


def test_a_link_planted_at_the_temporary_name_is_not_written_through(tmp_path):
    victim = tmp_path / "victim.conf"
    victim.write_text("keep me")
    os.symlink(str(victim), temporary_name(str(tmp_path / techlock.FILE_NAME)))
    _run(tmp_path, WRONG_THREE_TIMES)
    assert victim.read_text() == "keep me"
    assert _kept(tmp_path)["locks"] == 1 and not os.path.islink(tmp_path / techlock.FILE_NAME)


def test_a_fifo_a_device_or_a_huge_file_in_its_place_locks_once_and_starts(tmp_path):
    path = tmp_path / techlock.FILE_NAME
    for plant in ("fifo", "device", "huge"):
        if path.exists() or path.is_symlink():
            path.unlink()
        if plant == "fifo":
            os.mkfifo(str(path))  # reading it would block the start-up forever
        elif plant == "device":
            os.symlink("/dev/zero", str(path))
        else:
            path.write_text("[" * 100000 + "]" * 100000)
        _run(tmp_path, LOCKED)
        assert _kept(tmp_path)["locks"] == 1, plant


def test_the_lock_is_not_rewritten_as_its_time_runs_down(tmp_path):
    """While locked, a sale's state changes write nothing (an fsync on an SD card is tens
    of ms of the loop); the file changes when the counts or the lock do."""
    _run(tmp_path, WRONG_THREE_TIMES)
    before = os.stat(tmp_path / techlock.FILE_NAME).st_mtime_ns
    sale = ("key 1\nkeys 1235\nkey ENTER\nswipe visa-debit\nkey 1\nkeys 1234\nkey ENTER\n"
            "expect result approved\nkey ENTER\nexpect state IDLE\n")
    _run(tmp_path, 5, sale, LOCKED)
    assert os.stat(tmp_path / techlock.FILE_NAME).st_mtime_ns == before
