"""`kapos flash` end to end over real SSH: the runner's own commands (ssh and rsync, with
the port from user@host:port) against a loopback sshd on a non-default port
(tests/rigs/sshd.py). The "Pi" is this machine: its root-only steps go through a
stand-in `sudo` put first on the remote PATH, which logs each command, answers the
SPI/I2C/UART probe, runs rsync and tee under a staging root, and changes nothing else.
Skipped with the reason where sshd, ssh or rsync cannot be installed."""

import io
import os
import shlex
import shutil
import subprocess

import pytest
from rich.console import Console

from kapos_tools.flash.plan import build_plan
from kapos_tools.flash.runner import run
from rigs.sshd import sshd  # noqa: F401  (the fixture)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SUDO = r"""#!/bin/sh
# the Pi's sudo, for the test: log, answer the probe, stage files under $STAGE
[ "$1" = "-n" ] && shift
printf '%s\n' "$*" >> "$STAGE/sudo.log"
case "$1" in
  rsync) exec "$@" ;;
  mkdir) for a in "$@"; do case "$a" in mkdir|-*) ;; *) mkdir -p "$STAGE$a" ;; esac; done; exit 0 ;;
  tee) mkdir -p "$STAGE$(dirname "$2")" && cat > "$STAGE$2"; exit 0 ;;
  sh) script=$(cat); printf '%s\n' "$script" >> "$STAGE/sudo.log"
      case "$script" in *"cfg=/boot"*)
        printf 'config=/boot/firmware/config.txt\nmodel=Raspberry Pi 4 Model B\nspi=on\ni2c=on\nuart=on\n'
        printf 'uart0_pi5=off\nserial_console=off\n' ;;
      esac
      exit 0 ;;
  *) exit 0 ;;
esac
"""


def through_the_rig(rig, stage, shims):
    """run_process for the runner: the plan's own argv, plus the rig's client key and
    pinned known_hosts (not its port: that must come from the plan), the stand-in sudo
    first on the remote PATH and /opt/kapos staged."""
    extra = []
    options = rig.ssh_options
    i = 0
    while i < len(options):
        if options[i] == "-p":
            i += 2
            continue
        extra.append(options[i])
        i += 1
    env = "STAGE=%s PATH=%s:$PATH " % (shlex.quote(stage), shlex.quote(shims))
    calls = []

    def run_process(argv, input=None, capture_output=True, text=True):
        argv = list(argv)
        if argv[0] == "ssh":
            argv = ["ssh"] + extra + argv[1:-1] + [env + argv[-1]]
        elif argv[0] == "rsync":
            e = argv.index("-e")
            argv[e + 1] = "ssh " + " ".join(shlex.quote(a) for a in extra) + argv[e + 1][len("ssh"):]
            r = argv.index("--rsync-path")
            argv[r + 1] = env + argv[r + 1]
            argv[-1] = argv[-1].replace(":/opt/kapos", ":" + stage + "/opt/kapos")
        calls.append(argv)
        return subprocess.run(argv, input=input, capture_output=capture_output, text=text, timeout=300)

    return run_process, calls


def test_flash_over_ssh_on_a_non_default_port(sshd, tmp_path):  # noqa: F811
    if shutil.which("rsync") is None:
        pytest.skip("rsync not installed (make test installs it as root)")
    stage, shims = str(tmp_path / "pi"), str(tmp_path / "shims")
    os.makedirs(stage)
    os.makedirs(shims)
    with open(os.path.join(shims, "sudo"), "w") as f:
        f.write(SUDO)
    os.chmod(os.path.join(shims, "sudo"), 0o755)
    assert sshd.port != 22
    plan = build_plan("rpi4", "%s:%d" % (sshd.target, sshd.port), REPO)
    run_process, calls = through_the_rig(sshd, stage, shims)
    out = io.StringIO()
    code = run(plan, console=Console(file=out, width=200), run_process=run_process)
    assert code == 0, out.getvalue()
    assert all("-p" in argv and str(sshd.port) in argv for argv in calls if argv[0] == "ssh")
    installed = os.path.join(stage, "opt", "kapos")
    for item in ("firmware/kapos/cli.py", "tools/kapos_tools/flash/plan.py", "boards/rpi4.toml", "pyproject.toml"):
        assert os.path.isfile(os.path.join(installed, item)), item
    with open(os.path.join(stage, "etc/systemd/system/kapos.service")) as f:
        unit = f.read()
    assert "--board rpi4" in unit and "RestartPreventExitStatus=2" in unit
    with open(os.path.join(stage, "sudo.log")) as f:
        log = f.read()
    assert "apt-get install" in log and "groupadd --system" in log and "systemctl restart kapos" in log
    assert "kapos is installed and running" in out.getvalue() and "ssh -p %d" % sshd.port in out.getvalue()


def test_an_unknown_host_key_gets_the_host_key_hint(sshd, tmp_path):  # noqa: F811
    os.remove(sshd.known_hosts)
    open(sshd.known_hosts, "w").close()  # this computer has never seen the "Pi"
    plan = build_plan("rpi4", "%s:%d" % (sshd.target, sshd.port), REPO)
    run_process, calls = through_the_rig(sshd, str(tmp_path), str(tmp_path))
    out = io.StringIO()
    assert run(plan, console=Console(file=out, width=200), run_process=run_process) == 1
    text = out.getvalue()
    assert "host key" in text and "ssh -p %d %s" % (sshd.port, sshd.target) in text and "ssh-copy-id" not in text
