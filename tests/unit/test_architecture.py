"""The layer rules of docs/architecture.md, as checked by tools/check_layers.py."""

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_checker():
    spec = importlib.util.spec_from_file_location("check_layers", os.path.join(ROOT, "tools", "check_layers.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tree_has_no_layer_violations():
    problems, count = load_checker().check()
    assert count > 40
    assert problems == []


def test_rules_refuse_upward_and_sideways_imports():
    allowed = load_checker().allowed
    assert not allowed("kapos.core.machine", "kapos.hal")  # core never touches the HAL
    assert not allowed("kapos.core.machine", "kapos.app.runtime")
    assert not allowed("kapos.card.model", "kapos.host.codec")  # L1 packages stay apart
    assert not allowed("kapos.ports.sim.inputs", "kapos.ports.linux.gpio")  # ports never import each other
    assert not allowed("kapos.app.runtime", "kapos.ports.sim.outputs")
    assert not allowed("kapos.io.host_link", "kapos.app.runtime")  # the I/O shells sit below app
    assert not allowed("kapos.io.transport", "kapos.ports.linux.gpio")  # io and ports stay apart
    assert not allowed("kapos.ports.sim.inputs", "kapos.io.journal")
    assert not allowed("kapos.txn_types", "kapos.core.txn_types")  # L0 imports nothing above
    assert allowed("kapos.app.management", "kapos.io.transport")
    assert allowed("kapos.host.client", "kapos.txn_types")
    assert not allowed("kapos.cli", "kapos_tools.host")  # nothing imports tools
    assert allowed("kapos.ports.sim.outputs", "kapos.ports.shared.luma_screen")
    assert allowed("kapos.core.handlers", "kapos.card")
    assert allowed("kapos.io.host_link", "kapos.host.authorizer")
    assert allowed("kapos_tools.host", "kapos.host.codec")


# ---------------------------------------------------------------- one way to start a terminal

LOOP_OWNER = os.path.join("firmware", "kapos", "app", "runtime.py")  # Terminal.running starts run()
SCANNED = ("firmware", "tools", "tests")


def _calls_run_of_a_terminal(node, in_terminal_class):
    """Is `node` a call of a terminal's run(): `<...>terminal.run(...)`, `term.run(...)`, or
    `self.run(...)` inside the Terminal class?"""
    import ast

    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "run"):
        return False
    owner = node.func.value
    name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
    if name == "self":
        return in_terminal_class
    return name.lower().endswith("terminal") or name == "term"


def hand_started_terminals(root=ROOT):
    """[(path, line)] of every place outside Terminal.running() that calls a terminal's run()."""
    import ast

    found = []
    for top in SCANNED:
        for dirpath, dirs, files in os.walk(os.path.join(root, top)):
            dirs[:] = [d for d in dirs if d not in ("__pycache__", "micropython")]  # the Pico's own loop
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                with open(path, encoding="utf-8") as f:
                    tree = ast.parse(f.read(), path)
                for cls_or_mod in [tree] + [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]:
                    in_terminal = isinstance(cls_or_mod, ast.ClassDef) and cls_or_mod.name == "Terminal"
                    body = cls_or_mod.body if in_terminal else [cls_or_mod]
                    for node in (n for part in body for n in ast.walk(part)):
                        if _calls_run_of_a_terminal(node, in_terminal):
                            found.append((rel, node.lineno))
    # the module pass sees class bodies too: count each place once, and the loop's owner not at all
    return sorted(set(p for p in found if p[0] != LOOP_OWNER))


def test_only_the_runtime_starts_a_terminal_loop_and_callers_use_the_harness():
    """kapos.harness (on Terminal.running) is the one way to start a terminal: a caller that
    runs `terminal.run(ready)` in a task of its own fails here, with where."""
    assert hand_started_terminals() == []
    runtime = open(os.path.join(ROOT, LOOP_OWNER), encoding="utf-8").read()
    assert runtime.count("self.run(") == 1  # in running(), nowhere else
    for caller in ("firmware/kapos/cli.py", "tools/kapos_tools/diag/simrun.py", "tools/kapos_tools/hil/plugin.py",
                   "tests/integration/terminalrig.py", "tests/unit/management/conftest.py", "tests/web/webstack.py",
                   "tests/integration/host/test_host_terminal.py"):
        with open(os.path.join(ROOT, caller), encoding="utf-8") as f:
            assert "kapos.harness" in f.read(), caller + " starts its terminal through kapos.harness"


HARNESS = os.path.join("firmware", "kapos", "harness.py")  # the one caller of Terminal.running()
# Places allowed to call Terminal.running() themselves, each with why the harness cannot
# do it for them. Empty: every caller (CLI, console, diag, HIL, web simulator, benches,
# screenshots, tests) goes through kapos.harness, on an Assembly it builds or the caller's.
RUNNING_ALLOWED = {}


def hand_entered_loops(root=ROOT):
    """[(path, line)] of every `<...>.running(...)` call (Terminal.running: a hand-assembled
    start) outside kapos.harness and the allow-list."""
    import ast

    found = []
    for top in SCANNED:
        for dirpath, dirs, files in os.walk(os.path.join(root, top)):
            dirs[:] = [d for d in dirs if d not in ("__pycache__", "micropython")]
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                if rel == HARNESS or rel.replace(os.sep, "/") in RUNNING_ALLOWED:
                    continue
                with open(path, encoding="utf-8") as f:
                    tree = ast.parse(f.read(), path)
                found += [(rel, node.lineno) for node in ast.walk(tree)
                          if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                          and node.func.attr == "running"]
    return sorted(found)


def test_no_caller_enters_terminal_running_by_hand():
    """`Assembly(...)` then `async with assembly.terminal.running():` bypasses the harness
    (its clock, temp directory, ready timeout and closing): it fails here, with where."""
    assert hand_entered_loops() == []


def test_the_running_check_sees_a_hand_assembled_start(tmp_path):
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_new.py").write_text(
        "from kapos.wiring import Assembly\n\n"
        "async def go():\n"
        "    assembly = Assembly('sim')\n"
        "    async with assembly.terminal.running():\n"
        "        pass\n")
    (tests / "test_fine.py").write_text(
        "from kapos.harness import Harness\n\n"
        "async def go():\n"
        "    async with Harness('sim') as h:\n"
        "        await h.play('key 1\\n')\n")
    assert hand_entered_loops(str(tmp_path)) == [(os.path.join("tests", "test_new.py"), 5)]


# ---------------------------------------------------------------- the host never uses the terminal's client

TERMINAL_CLIENT = ("kapos.io.host_link", "kapos.io.journal")  # the terminal's I/O client and its journal
# tools/ files allowed to import them: each plays the *terminal* side of what it measures.
TERMINAL_CLIENT_ALLOWED = {
    "tools/bench/bench_host.py": "N terminal processes, each a HostAuthorizer over TCP, load the host",
    "tools/bench/bench_scaling.py": "the terminal's settlement (journal batch totals) against batch size",
    "tools/bench/bench_pi.py": "journal commits timed on the writer thread, as on a Pi's SD card",
}


def terminal_client_imports(root=ROOT):
    """[(path, module)] of every import of the terminal's I/O client under tools/."""
    import ast

    found = []
    for dirpath, dirs, files in os.walk(os.path.join(root, "tools")):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in (n for n in files if n.endswith(".py")):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    modules = [node.module] + ["%s.%s" % (node.module, a.name) for a in node.names]
                else:
                    continue
                found += [(rel, mod) for mod in modules if mod in TERMINAL_CLIENT]
    return sorted(set(found))


def test_tools_import_the_terminal_client_only_where_they_play_the_terminal():
    """The reference host (kapos_tools) speaks through the portable kapos.host code; only
    the benches listed above drive the terminal's own client, as the terminal side."""
    found = terminal_client_imports()
    assert [p for p in found if p[0] not in TERMINAL_CLIENT_ALLOWED] == []
    assert not [p for p in found if p[0].startswith("tools/kapos_tools/")]
    assert {p[0] for p in found} == set(TERMINAL_CLIENT_ALLOWED)  # no stale allow-list entry
