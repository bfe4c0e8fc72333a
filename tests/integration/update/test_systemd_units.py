"""The systemd units kapos generates and ships, checked by systemd's own parser
(`systemd-analyze verify`, Debian package systemd). systemd is not PID 1 on the test
machine: this checks the files (every key known, every command executable, types and
dependencies consistent), not the service running under systemd (docs/updates.md)."""

import os
import shutil
import stat
import subprocess

import pytest

from kapos_tools.flash.unit import INSTALL_DIR, WATCHDOG_SEC, render_unit

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
HOST_UNIT = os.path.join(ROOT, "tools", "kapos_tools", "host", "kapos-host.service")
ANALYZE = shutil.which("systemd-analyze")

pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed (Debian package "
                                                        "systemd; make test installs it when run as root)")


def fake_install(base):
    """The executables the units name, under base instead of /opt/kapos (verify checks them)."""
    for name in ("python", "kapos"):
        path = os.path.join(base, ".venv", "bin", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(path, stat.S_IRWXU)
    return base


def verify(path):
    out = subprocess.run([ANALYZE, "verify", "--man=no", path], capture_output=True, text=True, timeout=60)
    # unknown keys and bad values are warnings with exit status 0: any output is a finding
    return out.returncode, (out.stdout + out.stderr).strip()


@pytest.mark.parametrize("board", ["rpi4", "rpi5"])
def test_the_terminal_unit_passes_systemd_analyze_verify(tmp_path, board):
    base = fake_install(str(tmp_path / "opt"))
    path = tmp_path / "kapos.service"
    path.write_text(render_unit(board, install_dir=base))
    assert verify(str(path)) == (0, "")


def test_verify_reports_what_systemd_would_ignore(tmp_path):
    """The check can fail: a misspelt watchdog key is only a warning to systemd."""
    base = fake_install(str(tmp_path / "opt"))
    path = tmp_path / "kapos.service"
    path.write_text(render_unit("rpi4", install_dir=base).replace("WatchdogSec=", "WatchdogSek="))
    _, output = verify(str(path))
    assert "Unknown key" in output and "WatchdogSek" in output


def test_the_terminal_unit_is_a_notify_service_with_a_watchdog():
    lines = render_unit("rpi4").splitlines()
    for line in ("Type=notify", "NotifyAccess=main", "WatchdogSec=%d" % WATCHDOG_SEC, "Restart=on-failure"):
        assert line in lines
    assert [line for line in lines if line.startswith("ExecStartPre=")][0].endswith(
        "-m kapos.update.trial --root %s/updates" % INSTALL_DIR)


def test_the_host_unit_passes_systemd_analyze_verify(tmp_path):
    base = fake_install(str(tmp_path / "opt"))
    path = tmp_path / "kapos-host.service"
    with open(HOST_UNIT) as f:
        path.write_text(f.read().replace(INSTALL_DIR, base))
    assert verify(str(path)) == (0, "")
