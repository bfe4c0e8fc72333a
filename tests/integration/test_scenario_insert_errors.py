"""Bad `insert` / `remove` scenario lines exit 2 naming their line, like the other steps."""

import pytest

from kapos import cli


@pytest.mark.parametrize("lines,line_no,words", [
    (["key 1", "insert"], 2, "insert needs a test card id"),
    (["key 1", "insert emv-tap mchip extra"], 2, "insert needs a test card id"),
    (["key 1", "keys 500", "key ENTER", "insert no-such-card"], 4, "unknown test card 'no-such-card'"),
    (["insert emv-tap", "remove now"], 2, "remove takes nothing"),
])
def test_bad_insert_line_exits_2_with_its_number(tmp_path, capsys, lines, line_no, words):
    script = tmp_path / "bad.scenario"
    script.write_text("\n".join(lines) + "\n")
    assert cli.main(["run", "--board", "sim-nfc", "--script", str(script)]) == 2
    err = capsys.readouterr().err
    assert "line %d: " % line_no in err and words in err
    assert "Traceback" not in err
