"""Start-up and footprint (issue 11): `kapos run` imports no CLI plugin, the sim board no
pygame, a Pi install no luma.emulator; python-escpos' printer database is cached in the
terminal's state directory (no stray temp dir); pycryptodome starts on ctypes. Each check
runs in a fresh interpreter: what a start imports is the point."""

import os
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fresh(code, **env):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, **env))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_kapos_run_loads_no_cli_plugin_but_other_commands_find_theirs():
    code = ("import sys, kapos.cli\n"
            "p = kapos.cli.build_parser(['run', '--board', 'sim'])\n"
            "print(sorted(m for m in sys.modules if m.startswith('kapos_tools')), 'importlib.metadata' in sys.modules)\n"
            "p = kapos.cli.build_parser(['flash', '--help'])\n"
            "print(p._subparsers._group_actions[0].choices.keys() >= {'run', 'flash'})")
    plugins, flash = fresh(code).splitlines()
    assert plugins == "[] False" and flash == "True"


def test_the_sim_board_imports_no_pygame_and_no_luma_emulator():
    out = fresh("import sys, kapos.wiring, kapos.ports.sim.outputs, kapos.ports.sim.inputs\n"
                "print('pygame' in sys.modules, any(m.startswith('luma.emulator') for m in sys.modules))")
    assert out == "False False"


def test_a_pi_install_does_not_pull_luma_emulator_or_pygame():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    assert not [d for d in deps if d.lower().startswith(("luma.emulator", "pygame"))]


def test_escpos_capabilities_are_cached_in_the_state_dir_and_no_temp_dir_is_left(tmp_path):
    tmp, state = tmp_path / "tmp", tmp_path / "state"
    tmp.mkdir()
    code = ("from kapos.ports.shared import escpos_cache\n"
            "escpos_cache.use_cache_dir(%r)\n"
            "escpos_cache.load().Dummy(profile='POS-5890')\n" % str(state / "cache" / "escpos"))
    fresh(code, TMPDIR=str(tmp))
    fresh(code, TMPDIR=str(tmp))  # the second start reads the pickle
    assert [p.name for p in (state / "cache" / "escpos").iterdir()][0].endswith(".capabilities.pickle")
    assert list(tmp.iterdir()) == []  # python-escpos made no directory of its own


def test_pycryptodome_starts_on_ctypes_and_cffi_stays_importable():
    out = fresh("import kapos.wiring, Crypto.Util._raw_api as r, importlib\n"
                "print(r.backend)\n"
                "from Crypto.Cipher import AES\n"
                "print(AES.new(bytes(16), AES.MODE_ECB).encrypt(bytes(16)).hex())")
    backend, block = out.splitlines()
    assert backend == "ctypes"
    assert block == "66e94bd4ef8a2c3b884cfa59ca342b2e"  # FIPS-197 / AES-128 zero key, zero block
