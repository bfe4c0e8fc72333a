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
