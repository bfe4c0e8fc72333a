"""`kapos diag`: the in-process sim board, faults, and a terminal reached over TCP."""

import json
import os
import subprocess
import sys

import pytest

from kapos_tools.diag import main
from kapos_tools.diag.simrun import BackgroundTerminal

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_sim_selftest_passes_and_writes_the_json_report(tmp_path, capsys):
    report = tmp_path / "out.json"
    assert main(["--board", "sim", "selftest", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "PASS: all" in out and "✓" in out and "✗" not in out
    data = json.loads(report.read_text())
    assert data["passed"] is True and data["failed"] == [] and data["board"] == "sim"
    assert len(data["checks"]) >= 10 and all(c["ok"] for c in data["checks"])


@pytest.mark.parametrize("fault, check, detail", [
    ("printer_paper_out", "printer", "paper-out"),
    ("host_offline", "host", "host link switched off"),
    ("nfc_absent", "nfc", "NFC chip not found"),
])
def test_sim_selftest_with_a_fault_exits_1_and_names_it(tmp_path, capsys, fault, check, detail):
    report = tmp_path / "out.json"
    assert main(["--board", "sim", "--fault", fault, "selftest", "--json", str(report)]) == 1
    out = capsys.readouterr().out
    fail_line = [line for line in out.splitlines() if line.startswith("FAIL:")]
    assert fail_line and "%s (" % check in fail_line[0] and detail in fail_line[0]
    assert "✗" in out
    data = json.loads(report.read_text())
    assert data["passed"] is False and data["failed"] == [check] and data["faults"] == [fault]


def test_kapos_diag_through_the_kapos_command_line(monkeypatch, capsys):
    """The real `kapos` parser with `diag` plugged in as the entry point will do it."""
    from kapos import cli
    from kapos_tools.diag import register

    class Entry:
        name = "diag"

        def load(self):
            return register

    monkeypatch.setattr(cli, "_plugins", lambda: [Entry()])
    assert cli.main(["diag", "--board", "sim", "--fault", "host_offline", "selftest"]) == 1
    assert "host (echo failed: host link switched off (test fault))" in capsys.readouterr().out
    assert cli.main(["diag", "--board", "sim", "counters", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["approved"] == 0


def test_python_m_kapos_tools_diag_in_a_subprocess(tmp_path):
    report = tmp_path / "r.json"
    result = subprocess.run([sys.executable, "-m", "kapos_tools.diag", "--board", "sim", "selftest",
                             "--json", str(report)], capture_output=True, text=True, timeout=60, cwd=ROOT,
                            env=dict(os.environ, PYGAME_HIDE_SUPPORT_PROMPT="1"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(report.read_text())["passed"] is True


def test_sim_status_logs_counters_and_printer(capsys):
    assert main(["--board", "sim", "status"]) == 0
    out = capsys.readouterr().out
    assert "state IDLE" in out and "1 Sale" in out and "approved" in out
    assert main(["--board", "sim", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "IDLE"
    assert main(["--board", "sim", "counters"]) == 0
    assert "declined" in capsys.readouterr().out
    assert main(["--board", "sim", "logs", "-n", "5"]) == 0
    capsys.readouterr()
    assert main(["--board", "sim", "printer"]) == 0
    assert "PASS: test page printed" in capsys.readouterr().out
    assert main(["--board", "sim", "--fault", "printer_paper_out", "printer"]) == 1
    assert "FAIL: the test page was not printed: printer: printer paper-out" in capsys.readouterr().out


def test_usage_and_connection_errors_exit_2(capsys):
    assert main(["--fault", "host_offline", "selftest"]) == 2
    assert "--board sim" in capsys.readouterr().err
    assert main(["--connect", "127.0.0.1:1", "status"]) == 2
    assert "cannot connect to the management channel at 127.0.0.1:1" in capsys.readouterr().err
    assert main(["--connect", "nonsense", "status"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--board", "sim", "--fault", "meteor", "selftest"])


def test_a_remote_terminal_over_tcp_with_a_token(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("KAPOS_MANAGE_TOKEN", raising=False)
    monkeypatch.delenv("KAPOS_MANAGE_TOKEN_FILE", raising=False)
    token_file = tmp_path / "pi.token"
    token_file.write_text("s3cret\n")
    with BackgroundTerminal("sim", test_mode=False, token="s3cret") as term:
        nowhere = ["--data-dir", str(tmp_path / "none")]
        assert main(["--connect", term.address] + nowhere + ["selftest"]) == 2
        error = capsys.readouterr().err
        assert "not authenticated" in error and "--manage-token-file" in error
        assert main(["--connect", term.address, "--manage-token-file", str(token_file), "selftest"]) == 0
        assert "PASS" in capsys.readouterr().out
        monkeypatch.setenv("KAPOS_MANAGE_TOKEN_FILE", str(token_file))
        assert main(["--connect", term.address, "counters"]) == 0
        capsys.readouterr()
        monkeypatch.delenv("KAPOS_MANAGE_TOKEN_FILE")
        (tmp_path / "var").mkdir()
        (tmp_path / "var" / "manage-token").write_text("s3cret")  # a terminal on this machine
        assert main(["--connect", term.address, "--data-dir", str(tmp_path / "var"), "counters"]) == 0
        capsys.readouterr()
        assert main(["--connect", term.address, "--token", "s3cret", "logs", "--follow", "--duration", "0.6"]) == 0
        capsys.readouterr()
        # keypad: the screen as it changes (keys pressed on the terminal)
        term.call(term.terminal.press, "1")
        assert main(["--connect", term.address, "--token", "s3cret", "keypad", "--duration", "0.3"]) == 0
        assert "[AMOUNT] SALE" in capsys.readouterr().out
        term.call(term.terminal.press, "CANCEL")
        assert main(["--connect", term.address, "--token", "s3cret", "card", "--timeout", "0.3"]) == 1
        assert "FAIL: no card seen" in capsys.readouterr().out
        assert main(["--connect", term.address, "--token", "wrong", "status"]) == 2
        assert "wrong token" in capsys.readouterr().err


def test_card_shows_the_masked_card_of_a_swipe(capsys):
    import threading
    import time

    with BackgroundTerminal("sim", test_mode=True, token="s3cret") as term:
        for key in "1", "5", "ENTER":
            term.call(term.terminal.press, key)
        card = term.terminal.platform.magstripe
        swipe = term.server._card("visa-debit").swipe_text()
        timer = threading.Timer(0.4, lambda: term.call(card.inject, swipe))
        timer.start()
        started = time.monotonic()
        assert main(["--connect", term.address, "--token", "s3cret", "card", "--timeout", "10"]) == 0
        timer.join()
        out = capsys.readouterr().out
        assert "[ACCOUNT] VISA **** 1111" in out and "4111111111111111" not in out
        assert time.monotonic() - started < 5


def test_diag_over_a_serial_console(capsys):
    from test_mgmt_transports import Bridge

    bridge = Bridge()
    try:
        with BackgroundTerminal("sim", test_mode=False, token="s3cret", serial=bridge.url_a):
            assert main(["--serial", bridge.url_b, "--token", "s3cret", "selftest"]) == 0
            assert "PASS: all" in capsys.readouterr().out
    finally:
        bridge.close()
