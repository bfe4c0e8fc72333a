"""The HIL plugin itself: remote targets over TCP, what is skipped and why, option handling."""

import os
import subprocess
import sys

import pytest

from kapos.app.scenario import parse
from kapos_tools.diag.simrun import BackgroundTerminal
from kapos_tools.hil.plugin import HilTarget

SALE = 'key 1\nkeys 100\nkey ENTER\nexpect screen "Swipe or tap card"\nswipe visa-debit\n' \
       'key 1\nkeys 1234\nkey ENTER\nexpect result approved\nexpect receipt "************1111"\n'


def test_a_tcp_target_plays_a_scenario_on_a_running_terminal():
    with BackgroundTerminal("sim", test_mode=True, token="s3cret", overrides=[("host.reply_delay", "0")]) as term:
        target = HilTarget("tcp://" + term.address, board="sim", token="s3cret")
        target.play(parse(SALE, name="sale"))
        # a second scenario starts from IDLE even if the last one stopped half-way
        term.call(term.terminal.press, "2")
        target.play(parse(SALE, name="sale-again"))
        assert term.terminal.ctx.counters["approved"] == 2


def test_a_terminal_not_in_test_mode_skips_with_the_step_and_what_to_do():
    with BackgroundTerminal("sim", test_mode=False, token="s3cret") as term:
        target = HilTarget("tcp://" + term.address, token="s3cret")
        with pytest.raises(pytest.skip.Exception, match=r"line 1 `key 1`: .*not in test mode.*press the keys"):
            target.play(parse(SALE, name="sale"))
        with pytest.raises(pytest.skip.Exception, match=r"line 2 `swipe visa-debit`: .*swipe a card physically"):
            target.play(parse('expect state IDLE\nswipe visa-debit\n', name="swipe"))
        # nothing that needs injection: it runs
        target.play(parse('expect state IDLE\nexpect screen "1 Sale"\n', name="look"))


def test_remote_targets_skip_scenarios_that_set_config_or_clock():
    remote = HilTarget("tcp://127.0.0.1:1")
    scenario = parse("clock 2026-11-25T10:15:00\nconfig timeouts.card = 0.3\nkey 1\n", name="x.scenario")
    reason = remote.config_skip_reason(scenario)
    assert "config timeouts.card = 0.3" in reason and "clock 2026-11-25T10:15:00" in reason
    with pytest.raises(pytest.skip.Exception, match="keeps its own configuration"):
        remote.play(scenario)
    assert HilTarget("manage").config_skip_reason(scenario) is None
    assert HilTarget("local").config_skip_reason(scenario) is None
    tamper = parse('key 1\ntamper "case opened"\n', name="t.scenario")
    assert "line 2 `tamper \"case opened\"`: a tamper erases" in remote.config_skip_reason(tamper)
    assert HilTarget("manage").config_skip_reason(tamper) is None


def test_an_unreachable_terminal_fails_without_a_traceback():
    with pytest.raises(pytest.fail.Exception, match="cannot connect to the management channel at 127.0.0.1:1"):
        HilTarget("tcp://127.0.0.1:1").play(parse("key 1\n", name="x"))


def test_a_remote_terminal_on_another_board_fails_clearly():
    with BackgroundTerminal("sim", test_mode=True) as term:
        target = HilTarget("tcp://" + term.address, board="rpi4", token=term.token)
        with pytest.raises(pytest.fail.Exception, match="runs board sim, not rpi4"):
            target.play(parse("key 1\n", name="x"))


PROBE = '''
def test_probe(terminal_target):
    print("TARGET", terminal_target.where, terminal_target.board)
'''


def _pytest(tmp_path, *args):
    (tmp_path / "test_probe.py").write_text(PROBE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "kapos_tools.hil.plugin", "-p", "no:cacheprovider",
                           "--collect-only", "-q", "-c", str(tmp_path / "pytest.ini"), str(tmp_path), *args],
                          capture_output=True, text=True, timeout=60, cwd=str(tmp_path),
                          env=dict(os.environ, PYGAME_HIDE_SUPPORT_PROMPT="1"))


class _Config:
    def __init__(self, target):
        self.target = target

    def getoption(self, name):
        assert name == "--target"
        return self.target


def test_target_option_values():
    from kapos_tools.hil.plugin import _targets

    assert _targets(_Config(None)) == ["local", "manage"]
    assert _targets(_Config("manage")) == ["manage"]
    assert _targets(_Config("tcp://10.0.0.7:7700")) == ["tcp://10.0.0.7:7700"]
    assert _targets(_Config("serial:/dev/ttyUSB0")) == ["serial:/dev/ttyUSB0"]
    with pytest.raises(pytest.UsageError, match="--target must be"):
        _targets(_Config("bogus"))


def test_the_plugin_in_a_pytest_run(tmp_path):
    result = _pytest(tmp_path)
    assert "test_probe[local]" in result.stdout and "test_probe[manage]" in result.stdout, result.stdout
    result = _pytest(tmp_path, "--target", "bogus")
    assert result.returncode != 0 and "--target must be local, manage, tcp://HOST:PORT or serial:URL" in result.stdout + result.stderr


def test_a_locked_remote_terminal_fails_with_what_to_do():
    with BackgroundTerminal("sim", test_mode=True) as term:
        term.call(term.terminal.post, "tamper", source="test")
        target = HilTarget("tcp://" + term.address, token=term.token)
        with pytest.raises(pytest.fail.Exception, match=r"LOCKED after a tamper: re-key it \(kapos keys load\)"):
            target.play(parse("key 1\n", name="x"))


# ---------------------------------------------------------------- the chip slot

SCENARIOS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scenarios")
INSERT = 'key 1\nkeys 7800\nkey ENTER\nexpect screen "Insert, swipe or tap card"\ninsert emv-tap mchip\n' \
         'expect screen "1 Debit"\nkey 1\nkeys 1234\nkey ENTER\nexpect result approved\n' \
         'expect screen "Remove card"\nremove\nexpect state IDLE\nexpect no screen "Remove card"\n'


def _played_without_skip(target, scenario):
    try:
        target.play(scenario)
    except pytest.skip.Exception as exc:
        pytest.fail("%s skipped %s: %s" % (target, scenario.name, exc), pytrace=False)


def test_a_scenario_that_inserts_runs_on_a_board_with_a_chip_slot():
    from kapos.app.scenario import load

    scenario = load(os.path.join(SCENARIOS, "insert-emv.scenario"))
    assert HilTarget("local").board_for(scenario) == "sim-nfc"
    assert HilTarget("local").board_for(parse(SALE, name="sale")) == "sim"
    assert HilTarget("local", board="rpi4").board_for(scenario) == "rpi4"  # --board wins
    for where in ("local", "manage"):  # in process, and by `inject insert` over TCP
        _played_without_skip(HilTarget(where), scenario)


def test_a_remote_terminal_with_a_sim_slot_takes_inserts_over_the_channel():
    with BackgroundTerminal("sim-nfc", test_mode=True, overrides=[("host.reply_delay", "0")]) as term:
        target = HilTarget("tcp://" + term.address, board="sim-nfc", token=term.token)
        _played_without_skip(target, parse(INSERT, name="insert"))
        # a scenario that stopped with the card in: the next one starts from an empty slot
        term.call(term.terminal.platform.get("chip").insert, "4761739001010010=30122011234", "mchip")
        _played_without_skip(target, parse(INSERT, name="insert-again"))
        assert term.terminal.ctx.counters["approved"] == 2


def test_a_remote_terminal_without_a_slot_skips_inserts_with_what_to_do():
    with BackgroundTerminal("sim", test_mode=True) as term:
        target = HilTarget("tcp://" + term.address, token=term.token)
        with pytest.raises(pytest.skip.Exception,
                           match=r"line 5 `insert emv-tap mchip`: .*board sim\) cannot take an injected insert: "
                                 r"insert and remove the chip card by hand"):
            target.play(parse(INSERT, name="insert"))
