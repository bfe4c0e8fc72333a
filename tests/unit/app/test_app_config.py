"""Terminal configuration: documented defaults, overrides, and clear errors."""

import pytest

from kapos.app import config
from kapos.errors import ConfigError


def test_defaults_load_and_make_settings():
    settings = config.settings_from(config.load())
    assert settings.terminal_id == "KAPOS001" and settings.currency_code == "978"
    assert settings.per_type["cash"] == 20000 and settings.fees["credit"]["rate_bp"] == 150
    assert settings.timeouts["card"] == 30


def test_file_and_command_line_overrides(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[terminal]\nmerchant_name = "Bike shop"\n[limits]\ndaily = 1000\n')
    cfg = config.load(str(path), overrides=[("timeouts.card", "2.5"), ("fees.debit.fixed", "10")])
    assert cfg["terminal"]["merchant_name"] == "Bike shop" and cfg["limits"]["daily"] == 1000
    assert cfg["timeouts"]["card"] == 2.5 and cfg["fees"]["debit"]["fixed"] == 10


@pytest.mark.parametrize("dotted,value,message", [
    ("terminal.terminal_id", '"SHORT"', "exactly 8"),
    ("terminal.nonsense", "1", "unknown config key: terminal.nonsense"),
    ("limits.daily", '"lots"', "limits.daily must be int"),
    ("limits.daily", "-1", "limits.daily must be a whole number"),
    ("timeouts.pin", "0", "timeouts.pin must be a positive number"),
    ("pin.min_length", "3", "pin lengths"),
    ("terminal.currency_code", '"EU"', "3 digits"),
    ("limits", "5", "must be a table"),
])
def test_bad_values_name_the_key(dotted, value, message):
    with pytest.raises(ConfigError) as err:
        config.load(overrides=[(dotted, value)])
    assert message in str(err.value)


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load(str(tmp_path / "none.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[x")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(str(bad))
