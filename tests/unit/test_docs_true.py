"""The docs say what the code does: the generated tables (self-test checks, scenario steps,
boards) match the code, a check or verb without a row is an error, and the README's links
point at files that exist (issue 17)."""

import os
import re
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import make_docs_tables as tables  # noqa: E402


def test_every_generated_table_matches_the_code():
    assert tables.outdated() == [], "run make docs"


def test_a_hand_edited_table_is_caught(tmp_path):
    for path, _, _ in tables.BLOCKS:
        os.makedirs(tmp_path / os.path.dirname(path), exist_ok=True)
        shutil.copy(os.path.join(ROOT, path), tmp_path / path)
    tables.write(str(tmp_path))  # up to date with the code, then a hand edit
    diag = tmp_path / "docs" / "diagnostics.md"
    diag.write_text(re.sub(r"\| `tamper` \|.*\n", "", diag.read_text()))
    assert tables.outdated(str(tmp_path)) == [("docs/diagnostics.md", "self-test checks")]


def test_the_checks_table_lists_what_selftest_runs_including_tamper():
    names = tables.check_names(updates=False)
    assert "tamper" in names and len(names) == 12
    text = open(os.path.join(ROOT, "docs", "diagnostics.md")).read()
    for name in names:
        assert "| `%s`" % name in text
    assert re.findall(r"of (\d+) checks failed", text) == [str(len(names))]


def test_a_check_without_a_row_is_an_error_naming_it(monkeypatch):
    monkeypatch.delitem(tables.CHECK_DOCS, "tamper")
    with pytest.raises(tables.GeneratedDocError, match="tamper"):
        tables.checks_table()


def test_every_verb_the_parser_accepts_has_a_row_and_every_row_parses(monkeypatch):
    assert {"tamper", "expect no"} <= tables.parser_verbs()
    tables.steps_table()
    monkeypatch.setattr(tables, "STEP_DOCS", [row for row in tables.STEP_DOCS if not row[0].startswith("tamper")])
    with pytest.raises(tables.GeneratedDocError, match="tamper"):
        tables.steps_table()


def test_a_documented_step_the_parser_refuses_is_an_error(monkeypatch):
    monkeypatch.setattr(tables, "STEP_DOCS", tables.STEP_DOCS + [("expect colour RED", "not a step")])
    with pytest.raises(tables.GeneratedDocError, match="expect colour"):
        tables.steps_table()


def test_the_readme_lists_every_board_file_including_sim_nfc():
    readme = open(os.path.join(ROOT, "README.md")).read()
    for path in tables.board_files():
        assert "| `%s` |" % os.path.basename(path)[:-len(".toml")] in readme
    assert "| `sim-nfc` |" in readme


def test_the_readme_and_docs_link_only_to_files_that_exist():
    missing = []
    docs = [os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md")]
    for doc in ["README.md"] + docs:
        text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
        for target in re.findall(r"\]\(([^)#:\s]+)", text):
            if not os.path.exists(os.path.join(ROOT, os.path.dirname(doc), target)):
                missing.append("%s -> %s" % (doc, target))
    assert not missing
