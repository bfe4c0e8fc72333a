"""A newcomer's first hour (issue 17), run the way they run it: the command line and `make run`.

Each trip-up seen in a first session ends with one line naming what to do and exit code 2,
never a traceback, and loses nothing already on disk."""

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest

from terminalrig import ROOT, Running
from kapos.app import scenario as scenario_mod
from kapos.app import startup
from kapos.app.screens import WIDTH_CHARS, shorten

KAPOS = [sys.executable, "-m", "kapos.cli"]
HOST = [sys.executable, "-m", "kapos_tools.host"]


def run(cmd, cwd, timeout=60, **kw):
    env = dict(os.environ, PYGAME_HIDE_SUPPORT_PROMPT="1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(cwd), **kw)


def one_error_line(result):
    """The output has no traceback, and its last stderr line is the error."""
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "WARNING" not in line]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def taken_port():
    """A loopback port some other program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# ------------------------------------------------------------ a malformed swipe


def test_a_malformed_swipe_lets_the_cardholder_swipe_again_in_the_same_sale(tmp_path):
    script = tmp_path / "swipe-again.scenario"
    script.write_text(textwrap.dedent("""\
        key 1
        keys 500
        key ENTER
        swipe malformed
        expect screen "Card read error"
        expect screen "Swipe or tap again"
        expect state CARD
        swipe visa-debit
        key 1
        keys 1234
        key ENTER
        expect result approved
        """))
    result = run(KAPOS + ["run", "--script", str(script)], ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("PASS")


def test_a_malformed_swipe_on_the_last_try_ends_the_sale(tmp_path):
    script = tmp_path / "last-try.scenario"
    script.write_text('config terminal.card_read_tries = 1\nkey 1\nkeys 500\nkey ENTER\nswipe malformed\n'
                      'expect state IDLE\nexpect result error\nexpect screen "Card read error"\n')
    result = run(KAPOS + ["run", "--script", str(script)], ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_card_read_tries_out_of_range_is_one_config_line(tmp_path):
    result = run(KAPOS + ["run", "--headless", "--set", "terminal.card_read_tries=0"], tmp_path)
    assert result.returncode == 2
    assert one_error_line(result) == "kapos: error: terminal.card_read_tries must be 1 to 10"


# ------------------------------------------------------------ ports in use


def test_management_port_in_use_is_one_line_and_exit_2(tmp_path, taken_port):
    result = run(KAPOS + ["run", "--headless", "--manage", "127.0.0.1:%d" % taken_port,
                          "--set", "storage.data_dir=%s" % (tmp_path / "var")], tmp_path)
    assert result.returncode == 2
    assert one_error_line(result) == (
        "kapos: error: management port 127.0.0.1:%d is in use (another kapos running?): "
        "stop it or pass --manage 127.0.0.1:PORT" % taken_port)


def test_host_port_in_use_is_one_line_and_exit_2(tmp_path, taken_port):
    result = run(HOST + ["--listen", "127.0.0.1:%d" % taken_port, "--db", str(tmp_path / "host.db")], tmp_path)
    assert result.returncode == 2
    assert one_error_line(result) == (
        "kapos host: error: host port 127.0.0.1:%d is in use (another kapos running?): stop it or "
        "pass --listen 127.0.0.1:PORT (make run HOST_ADDR=127.0.0.1:PORT)" % taken_port)


def make_run(workdir, **variables):
    """`make run` of the project's Makefile, with var/ in `workdir`, free ports by default."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    values = {"HOST_ADDR": "127.0.0.1:0", "MANAGE_ADDR": "127.0.0.1:0", "WEB_ADDR": "127.0.0.1:0",
              "DASH_ADDR": "127.0.0.1:0", "BOARD": "no-such-board"}  # the terminal stops at once
    values.update(variables)
    cmd = ["make", "-s", "-f", os.path.join(ROOT, "Makefile"), "-C", str(workdir), "run",
           "VENV=%s" % os.path.dirname(os.path.dirname(sys.executable)), "STAMP="]
    return run(cmd + ["%s=%s" % kv for kv in sorted(values.items())], workdir, timeout=120)


def test_make_run_with_the_host_port_taken_stops_with_one_line_and_keeps_the_last_log(tmp_path, taken_port):
    var = tmp_path / "var"
    var.mkdir()
    (var / "host-earlier.log").write_text("kapos host listening on 127.0.0.1:8583\nsale 0200 approved\n")
    os.symlink("host-earlier.log", var / "host.log")
    result = make_run(tmp_path, HOST_ADDR="127.0.0.1:%d" % taken_port)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[0] == (
        "kapos: error: port 127.0.0.1:%d (HOST_ADDR) is in use (another kapos running?): "
        "stop it or make run HOST_ADDR=127.0.0.1:PORT" % taken_port)
    assert (var / "host.log").read_text() == "kapos host listening on 127.0.0.1:8583\nsale 0200 approved\n"
    assert sorted(os.listdir(var)) == ["host-earlier.log", "host.log"]


def test_make_run_keeps_each_runs_host_log(tmp_path):
    first = make_run(tmp_path)
    second = make_run(tmp_path)
    assert "no board file" in first.stderr and "no board file" in second.stderr  # both got to the terminal
    var = tmp_path / "var"
    logs = sorted(f for f in os.listdir(var) if f.startswith("host-") and f.endswith(".log"))
    assert len(logs) == 2, os.listdir(var)
    for name in logs:
        assert "kapos host listening on" in (var / name).read_text()
    assert os.readlink(var / "host.log") in logs
    assert (var / "host.log").read_text() == (var / os.readlink(var / "host.log")).read_text()


# ------------------------------------------------------------ the data directory


def _mount_tmpfs(path, options):
    path.mkdir(exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "kapos-test", str(path)], capture_output=True)
    return done.returncode == 0


def _umount(path):
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def read_only_data_dir(tmp_path):
    """A data directory on a read-only file system that already holds a journal (a real mount
    when root; as another user, a directory without write permission does the same)."""
    path = tmp_path / "ro"
    mounted = _mount_tmpfs(path, "size=1m,mode=0755")
    (path / "journal.db").write_bytes(b"earlier journal")
    if mounted:
        assert subprocess.run(["mount", "-o", "remount,ro", str(path)]).returncode == 0
    elif os.geteuid() != 0:
        os.chmod(path, 0o555)
    else:
        pytest.skip("root without mount privileges: cannot make a read-only file system here")
    try:
        yield path, mounted
    finally:
        if mounted:
            _umount(path)
        else:
            os.chmod(path, 0o755)


@pytest.fixture
def full_data_dir(tmp_path):
    """A data directory on a tiny file system that is full (a tmpfs of 64 KiB, filled)."""
    path = tmp_path / "full"
    if not _mount_tmpfs(path, "size=64k"):
        pytest.skip("a full file system needs a tmpfs mount (root with mount privileges)")
    try:
        (path / "journal.db").write_bytes(b"earlier journal")
        fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:  # ENOSPC: full
            pass
        finally:
            os.close(fd)
        yield path
    finally:
        _umount(path)


def test_a_read_only_data_dir_stops_payments_with_one_line_and_exit_2(tmp_path, read_only_data_dir):
    path, mounted = read_only_data_dir
    result = run(KAPOS + ["run", "--headless", "--set", "host.mode=iso8583", "--set", "host.address=127.0.0.1:9",
                          "--set", "storage.data_dir=%s" % path], tmp_path)
    assert result.returncode == 2
    reason = "read-only (Read-only file system)" if mounted else "not writable (Permission denied)"
    assert one_error_line(result).startswith(
        "kapos: error: payments stopped: the data directory %s is %s: " % (path, reason))
    assert (path / "journal.db").read_bytes() == b"earlier journal"


def test_a_full_data_dir_stops_payments_with_one_line_and_exit_2(tmp_path, full_data_dir):
    result = run(KAPOS + ["run", "--headless", "--set", "host.mode=iso8583", "--set", "host.address=127.0.0.1:9",
                          "--set", "storage.data_dir=%s" % full_data_dir], tmp_path)
    assert result.returncode == 2
    assert one_error_line(result) == (
        "kapos: error: payments stopped: the data directory %s is full (No space left on device): free space "
        "there (e.g. journalctl --vacuum-size=50M) or set storage.data_dir" % full_data_dir)
    assert (full_data_dir / "journal.db").read_bytes() == b"earlier journal"


def test_the_terminal_screen_says_payments_are_stopped(tmp_path, full_data_dir):
    from kapos import boards

    platform = boards.build_platform(boards.load_board("sim"))
    try:
        startup.check_data_dir(str(full_data_dir))
    except startup.StartupError as exc:
        screen = startup.show_stopped(platform.get("display"), exc)
    else:
        raise AssertionError("a full directory passed the check")
    assert platform.get("display").screens[-1] == screen
    assert screen.title == "PAYMENTS STOPPED" and screen.kind == "error"
    assert "Data directory full" in " ".join(screen.lines)
    assert all(len(line) <= WIDTH_CHARS for line in screen.lines)


# ------------------------------------------------------------ a missing device, a bad config


def test_a_missing_device_is_one_line_and_exit_2(tmp_path):
    if os.path.exists("/dev/i2c-1"):
        pytest.skip("this machine has the Pi's I2C bus")
    result = run(KAPOS + ["run", "--headless", "--board", "rpi4", "--set", "storage.data_dir=%s" % tmp_path], tmp_path)
    assert result.returncode == 2
    line = one_error_line(result)
    assert line.startswith("kapos: error: ") and "/dev/i2c-1 is missing" in line and "dtparam=i2c_arm=on" in line


def test_a_bad_config_is_one_line_naming_the_key_and_exit_2(tmp_path):
    bad = tmp_path / "kapos.toml"
    bad.write_text("[timeouts]\ncard = -1\n")
    result = run(KAPOS + ["run", "--headless", "--config", str(bad)], tmp_path)
    assert result.returncode == 2
    assert one_error_line(result) == "kapos: error: config key timeouts.card must be a positive number"
    assert not (tmp_path / "var").exists()  # nothing was started or written


# ------------------------------------------------------------ the technician self-test


def test_selftest_pages_wrap_at_spaces_and_shorten_long_values(tmp_path):
    """Through the technician menu on the sim board: every word on the pages is a whole word
    of a check's line, or that word shortened with the marker; nothing is split."""
    scenario = scenario_mod.parse("key MENU\nkeys 0000\nkey ENTER\nkey 1\nexpect state TECH_INFO\n")

    answers = []

    async def go():
        async with Running(data_dir=tmp_path / "var") as r:
            diagnostics = r.assembly.diagnostics
            run_function = diagnostics.run

            async def recorded(function):  # the lines the technician's pages are made of
                answers.append(await run_function(function))
                return answers[-1]

            diagnostics.run = recorded
            await r.player.play(scenario)
            return r.terminal.ctx.tech_info

    title, pages = asyncio.run(go())
    [(answered_title, lines)] = answers
    assert title == answered_title and len(lines) == 12
    assert all(len(line) <= WIDTH_CHARS for line in pages)
    assert " ".join(pages).split() == [shorten(w) for line in lines for w in line.split()]
