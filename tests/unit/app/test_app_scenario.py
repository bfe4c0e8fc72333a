"""The scenario language: parsing and the clear errors for bad scripts."""

import pytest

from kapos.app.scenario import parse
from kapos.errors import ScenarioError


def test_parse_every_step_kind():
    s = parse('''
# comment
config timeouts.card = 2
clock 2026-11-25T10:00:00
key 1
keys 12 ENTER
swipe visa-debit
swipe raw "%B4111?"
tap token
tap uid 04A1B2C3
wait 0.1
timeout 3
expect screen "APPROVED"
expect no screen "ERROR"
expect state IDLE
expect result approved
expect receipt "TOTAL"
expect receipts 2
expect beep error
''')
    assert s.config == [("timeouts.card", "2")] and s.clock == "2026-11-25T10:00:00"
    assert [st.verb for st in s.steps][:4] == ["key", "keys", "swipe", "swipe"]
    assert s.steps[1].args == ["1", "2", "ENTER"]
    assert s.steps[3].args == ["raw", "%B4111?"]


@pytest.mark.parametrize("text,message", [
    ("key F1", "key needs one of"),
    ("keys", "at least one key"),
    ("keys 12 X", "not a key"),
    ("wait soon", "wait needs a number"),
    ("wait 99999", "0 to 3600"),
    ("expect", "expect needs one of"),
    ("expect result maybe", "expect result needs one of"),
    ("expect no receipt x", "expect no screen"),
    ('key 1\nconfig a.b = 1', "config lines must come before"),
    ("config nothing", "KEY = VALUE"),
    ('expect screen "unclosed', "cannot read line"),
    ("swipe", "needs a test card id"),
    ("fly away", "unknown step"),
])
def test_bad_scripts_name_the_line(text, message):
    with pytest.raises(ScenarioError) as err:
        parse(text)
    assert message in str(err.value) and "line" in str(err.value)
