"""`kapos flash --board pico-w`: the plan (exact mpremote command lines, dry-run output with
no secrets) and a real run of it - mpy-cross, mpremote's raw-REPL file copy, the device
scripts and the self-test - against MicroPython behind a pty (repl_pty.py: the WebAssembly
build under node speaking the raw REPL). Not run here: `mip install` (needs the internet)
and the final reset (the bridge has no hardware to reset); a real Pico was not tried."""

import os
import shutil
import subprocess
import sys

import pytest

import mpjs
from kapos.simdata.keys import TEST_BDK, ik_id_for
from kapos.errors import ConfigError
from kapos.security.dukpt import DukptTerminal, derive_initial_key

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from kapos_tools.flash import pico_build, pico_runner  # noqa: E402
from kapos_tools.flash.pico_plan import build_pico_plan  # noqa: E402


def plan_for(tmp_path, port="/dev/ttyACM0", **kw):
    return build_pico_plan("pico-w", port, ROOT, str(tmp_path / "build"), "192.168.1.10:8583", **kw)


def test_plan_is_the_exact_mpremote_command_lines(tmp_path):
    plan = plan_for(tmp_path)
    build = str(tmp_path / "build")
    mpremote = [c.shell() for c in plan.commands() if c.argv[0] == "mpremote"]
    assert mpremote == [
        "mpremote connect /dev/ttyACM0 mip install ssd1306",
        "mpremote connect /dev/ttyACM0 run %s/prepare.py" % build,
        "mpremote connect /dev/ttyACM0 fs cp -r %s/lib/kapos :/lib/" % build,
        "mpremote connect /dev/ttyACM0 fs cp %s/main.py :/main.py" % build,
        "mpremote connect /dev/ttyACM0 fs cp %s/kapos.json :/kapos.json" % build,
        "mpremote connect /dev/ttyACM0 fs cp %s/dukpt.new :/keys/dukpt.new" % build,
        "mpremote connect /dev/ttyACM0 run %s/finish.py" % build,
        "mpremote connect /dev/ttyACM0 reset",
    ]
    compiled = [c.argv for c in plan.steps[0].commands]
    assert all(argv[1] == "-o" and argv[2].endswith(".mpy") for argv in compiled)
    shipped = set(pico_build.source_files(ROOT))
    assert {"ports/micropython/terminal.py", "core/machine.py", "security/dukpt.py", "__init__.py"} <= shipped
    assert not any(f.startswith(("app/", "io/", "ports/linux", "ports/sim")) for f in shipped), shipped


def test_dry_run_shows_no_secret_and_refuses_bad_arguments(tmp_path):
    env = dict(os.environ, KAPOS_WIFI_PASSWORD="hunter2-wifi-secret")
    out = subprocess.run([sys.executable, "-m", "kapos.cli", "flash", "--board", "pico-w", "--port", "/dev/ttyACM0",
                          "--host", "192.168.1.10:8583", "--wifi-ssid", "home", "--dry-run"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "mpremote connect /dev/ttyACM0 fs cp -r" in out.stdout
    ik = derive_initial_key(TEST_BDK, ik_id_for("KAPOS001")).hex()
    for secret in ("hunter2-wifi-secret", ik, ik.upper()):
        assert secret not in out.stdout + out.stderr
    with pytest.raises(ConfigError, match="HOST:PORT"):
        build_pico_plan("pico-w", "auto", ROOT, str(tmp_path), "nohost")
    with pytest.raises(ConfigError, match="not a MicroPython board"):
        build_pico_plan("rpi4", "auto", ROOT, str(tmp_path), "127.0.0.1:8583")


def test_mpy_cross_must_emit_the_bytecode_micropython_1_27_loads(tmp_path):
    fake = tmp_path / "mpy-cross"
    fake.write_text("#!/bin/sh\necho 'MicroPython v1.19; mpy-cross emitting mpy v6'\n")
    fake.chmod(0o755)
    with pytest.raises(ConfigError, match="v6.3"):
        pico_build.check_mpy_cross(str(fake))
    assert pico_build.mpy_cross_version(pico_build.find_mpy_cross()) == pico_build.MPY_VERSION


def mpremote(port, *argv):
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "mpremote"), "connect", port] + list(argv),
                          capture_output=True, text=True, timeout=120)


def test_flash_through_mpremote_into_micropython_keeps_the_key_counter_and_runs_the_self_test(tmp_path):
    reason = mpjs.missing()
    if reason:
        pytest.skip(reason)
    from repl_pty import ReplPty

    # the device already has a key state whose counter moved on (20 transactions made)
    ik_id = ik_id_for("KAPOS001")
    used = DukptTerminal.load_initial_key(derive_initial_key(TEST_BDK, ik_id), ik_id)
    for _ in range(20):
        used.next_transaction()
    (tmp_path / "used.bin").write_bytes(bytes(used.export_state()))
    # and an old firmware's source file that would be imported before the new .mpy
    stale = tmp_path / "selftest.py"
    stale.write_text("def run():\n    print('KAPOS-SELFTEST OK stale source')\n")
    plan = build_pico_plan("pico-w", "PORT", ROOT, str(tmp_path / "build"), "127.0.0.1:8583")
    said = []
    with ReplPty() as port:
        for step in plan.steps:
            for command in step.commands:
                command.argv = [port if a == "PORT" else a for a in command.argv]
        setup = "import os\nfor d in ('/lib','/lib/kapos','/lib/kapos/ports','/lib/kapos/ports/micropython','/keys'):\n" \
                "    os.mkdir(d)\n"
        assert mpremote(port, "exec", setup).returncode == 0
        assert mpremote(port, "fs", "cp", str(tmp_path / "used.bin"), ":/keys/dukpt.bin").returncode == 0
        assert mpremote(port, "fs", "cp", str(stale), ":/lib/kapos/ports/micropython/selftest.py").returncode == 0
        rc = pico_runner.run(plan, say=said.append, skip=("Install micropython-lib", "Reset"))
        assert rc == 0, "\n".join(said)
        check = mpremote(port, "exec", "import os\n"
                                       "from kapos.ports.micropython.keystate import FlashKeyState\n"
                                       "print('COUNTER', FlashKeyState('/keys/dukpt.bin').counter())\n"
                                       "print('PY', [f for f in os.listdir('/lib/kapos/ports/micropython') if f.endswith('.py')])\n"
                                       "print('MAIN', open('/main.py').read().strip().replace(chr(10), ';'))\n")
    assert check.returncode == 0, check.stderr
    text = "\n".join(said)
    assert "KAPOS-KEYS kept" in text and "KAPOS-SELFTEST OK" in text and "stale" not in text, text
    assert "COUNTER %d" % used.counter in check.stdout  # a re-flash never rewinds the KSN counter
    assert "PY []" in check.stdout  # only bytecode on the device
    assert "MAIN from kapos.ports.micropython import app;app.main()" in check.stdout
    assert os.stat(plan.files.keys).st_mode & 0o077 == 0 and os.stat(plan.files.config).st_mode & 0o077 == 0
    shutil.rmtree(plan.files.build_dir)


def test_frozen_firmware_manifest_freezes_exactly_what_kapos_flash_copies(tmp_path):
    """Executed the way MicroPython's manifestfile.py does (from its own directory, with
    include/require/module as functions); not built against the rp2 port here."""
    path = os.path.join(ROOT, "tools", "mpy", "pico_w_manifest.py")
    calls = []
    scope = {"include": lambda p: calls.append(("include", p)),
             "require": lambda name: calls.append(("require", name)),
             "module": lambda p, base_path=".": calls.append(("module", p, base_path))}
    cwd = os.getcwd()
    os.chdir(os.path.dirname(path))
    try:
        with open(path) as f:
            exec(compile(f.read(), path, "exec"), scope)
    finally:
        os.chdir(cwd)
    frozen = sorted(c[1][len("kapos/"):] for c in calls if c[0] == "module")
    assert frozen == pico_build.source_files(ROOT)
    assert all(os.path.isfile(os.path.join(c[2], c[1])) for c in calls if c[0] == "module")
    assert ("require", "ssd1306") in calls and ("include", "$(BOARD_DIR)/manifest.py") in calls
