"""docs/scenarios.md lists every emulated chip profile the sim board knows (multi-confirm
included), generated from ports/sim/emv_cards.py, and a profile without a row is an error."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import make_docs_tables as tables  # noqa: E402
from kapos.ports.sim import emv_cards  # noqa: E402


def test_every_profile_has_a_row_in_the_scenarios_doc():
    text = open(os.path.join(ROOT, "docs", "scenarios.md"), encoding="utf-8").read()
    for name in list(emv_cards.PROFILES) + ["mute"]:
        assert "| `%s` |" % name in text, name
    assert "multi-confirm" in text.split("| `insert ID`", 1)[1].split("\n", 1)[0]


def test_a_profile_without_a_row_is_an_error_naming_it(monkeypatch):
    monkeypatch.setitem(emv_cards.PROFILES, "gold-plated", emv_cards.PROFILES["mchip"])
    with pytest.raises(tables.GeneratedDocError, match="gold-plated"):
        tables.profiles_table()
