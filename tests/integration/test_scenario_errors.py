"""A bad scenario line exits 2 naming its line, never a traceback (docs/scenarios.md)."""

import pytest

from kapos import cli


@pytest.mark.parametrize("lines,line_no,words", [
    (["key 1", "tap uid ZZZZ"], 2, "tap uid needs 4, 7 or 10 bytes"),
    (["key 1", "tap uid 04A1B2"], 2, "tap uid needs 4, 7 or 10 bytes"),
    (["key 1", "keys 500", "key ENTER", "swipe no-such-card"], 4, "unknown test card 'no-such-card'"),
    (["tap no-such-token"], 1, "unknown test card"),
    (["key 1", "expect state NOWHERE"], 2, "unknown state 'NOWHERE'"),
    (["# a comment", "config nosuch.key = 1", "key 1"], 2, "unknown config key"),
    (["config timeouts.card = \"soon\"", "key 1"], 1, "timeouts.card"),
    (["clock yesterday", "key 1"], 1, "clock must look like"),
    (["key 1", "insert"], 2, "insert needs a test card id"),
    (["key 1", "insert emv-tap mchip extra"], 2, "insert needs a test card id"),
    (["key 1", "keys 500", "key ENTER", "insert no-such-card"], 4, "unknown test card 'no-such-card'"),
    (["insert emv-tap", "remove now"], 2, "remove takes nothing"),
])
def test_bad_line_exits_2_with_its_number(tmp_path, capsys, lines, line_no, words):
    script = tmp_path / "bad.scenario"
    script.write_text("\n".join(lines) + "\n")
    assert cli.main(["run", "--board", "sim", "--script", str(script)]) == 2
    err = capsys.readouterr().err
    assert "line %d: " % line_no in err and words in err
    assert "Traceback" not in err
