"""Every scenario in tests/scenarios, played through `terminal_target`.

With no options each runs twice on the sim board (sim-nfc for the scenarios that insert a
chip card: sim has no slot): in process (LocalTarget) and through the management channel
over TCP (RemoteTarget against an in-process terminal, chip inserts by `inject insert`), so
the remote path is part of `make test`. Against a real terminal:

    pytest tests/hil --board rpi4 --target tcp://10.0.0.7:7700 --manage-token-file pi.token

Scenarios with `config`/`clock` lines are skipped on a remote terminal (it keeps its own
configuration), and scenarios needing injected input are skipped when the terminal is
not in test mode, with the step and what to do instead (docs/hil.md).
"""

import os

import pytest

from kapos.app import scenario as scenario_mod

SCENARIOS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scenarios")
ALL = sorted(f for f in os.listdir(SCENARIOS) if f.endswith(".scenario"))


@pytest.mark.parametrize("name", ALL)
def test_scenario(terminal_target, name):
    terminal_target.play(scenario_mod.load(os.path.join(SCENARIOS, name)))
