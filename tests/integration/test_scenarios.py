"""Every scenario in tests/scenarios, played in process on the simulated board, and the
`kapos run --script` command line around them."""

import asyncio
import os
import subprocess
import sys

import pytest

from terminalrig import ROOT, SCENARIOS, Running
from kapos.app import scenario as scenario_mod

ALL = sorted(f for f in os.listdir(SCENARIOS) if f.endswith(".scenario"))


# scenarios that need a board with a chip slot (the sim board has none: its prompts stay)
BOARD_OF = {"insert-emv.scenario": "sim-nfc"}


@pytest.mark.parametrize("name", ALL)
def test_scenario_passes_in_process(name):
    scenario = scenario_mod.load(os.path.join(SCENARIOS, name))

    async def go():
        async with Running(overrides=scenario.config, clock=scenario.clock,
                           board=BOARD_OF.get(name, "sim")) as r:
            await r.player.play(scenario)

    asyncio.run(go())


def kapos(*args, timeout=60):
    env = dict(os.environ, PYGAME_HIDE_SUPPORT_PROMPT="1")
    return subprocess.run([sys.executable, "-m", "kapos.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def test_cli_sale_with_pin_exits_0_and_saves_pngs(tmp_path):
    out = tmp_path / "frames"
    result = kapos("run", "--board", "sim", "--script", os.path.join(SCENARIOS, "sale-swipe-pin.scenario"),
                   "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout
    files = sorted(os.listdir(out))
    assert "receipt-01.png" in files and "receipt-01.txt" in files
    assert len([f for f in files if f.startswith("screen-")]) >= 10
    text = (out / "receipt-01.txt").read_text()
    for expected in ("************1111", "EUR 12.35", "Fee", "EUR 12.60", "APPROVED", "2026-11-25"):
        assert expected in text
    assert "4111111111111111" not in text


def test_cli_malformed_track_exits_0_back_at_idle():
    result = kapos("run", "--script", os.path.join(SCENARIOS, "malformed-track.scenario"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_failed_expectation_exits_1_with_a_clear_message(tmp_path):
    script = tmp_path / "wrong.scenario"
    script.write_text("timeout 0.3\nkey 1\nexpect screen \"REFUND\"\n")
    result = kapos("run", "--script", str(script))
    assert result.returncode == 1
    assert "FAIL" in result.stdout and "line 3" in result.stdout and "screen was" in result.stdout


def test_cli_malformed_script_exits_2(tmp_path):
    script = tmp_path / "bad.scenario"
    script.write_text("key 1\nfrobnicate 3\n")
    result = kapos("run", "--script", str(script))
    assert result.returncode == 2
    assert "line 2" in result.stderr and "unknown step" in result.stderr


def test_cli_unknown_board_exits_2():
    result = kapos("run", "--board", "nosuchboard", "--script", os.path.join(SCENARIOS, "refund.scenario"))
    assert result.returncode == 2 and "no board file" in result.stderr and "sim" in result.stderr


def test_cli_bad_config_value_exits_2():
    result = kapos("run", "--set", "limits.daily=-5", "--script", os.path.join(SCENARIOS, "refund.scenario"))
    assert result.returncode == 2 and "limits.daily" in result.stderr


def test_interactive_run_without_a_tty_says_what_to_do():
    result = kapos("run", "--board", "sim")
    assert result.returncode == 2 and "--script" in result.stderr


@pytest.mark.parametrize("name", ["tap-token.scenario", "tap-emv.scenario"])
def test_tap_scenarios_through_the_real_mfrc522_driver(name):
    """Board sim-nfc: the tap goes through drivers/mfrc522.py and the ISO 14443 stack over
    the register-level emulator (bytes on an emulated SPI bus), end to end."""
    scenario = scenario_mod.load(os.path.join(SCENARIOS, name))

    async def go():
        async with Running(overrides=scenario.config, board="sim-nfc", clock=scenario.clock) as r:
            await r.player.play(scenario)
            stats = r.platform.nfc.emulator.stats
            assert stats["frames"] > 3 and stats["bytes_out"] > 100

    asyncio.run(go())
