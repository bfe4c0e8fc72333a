"""kapos flash: the commands planned for each board, the config.txt advice from the Pi's
answers, target checking, and the runner stopping at the first failure."""

import argparse
import io
import os
import shutil
import subprocess
import types

import pytest
from rich.console import Console

from kapos.boards import load_board
from kapos.errors import ConfigError
from kapos_tools.flash import register
from kapos_tools.flash.plan import advice, build_plan, check_probe, parse_probe, parse_target
from kapos_tools.flash.runner import dry_run, run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TARGET = "pi@kapos.local"
ALL_ON = "config=/boot/firmware/config.txt\nmodel=Raspberry Pi 4 Model B Rev 1.5\nspi=on\ni2c=on\nuart=on\n" \
         "uart0_pi5=off\nserial_console=off\n"


def dry(board, target=TARGET, repo=REPO):
    out = io.StringIO()
    dry_run(build_plan(board, target, repo), out)
    return out.getvalue()


def unit_text(text):
    start = text.index("[Unit]")
    return text[start:text.index("\nEOF", start)]


def test_rpi4_dry_run_lists_the_install(monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("a dry run must run nothing"))
    text = dry("rpi4")
    lines = text.splitlines()
    ssh_lines = [line for line in lines if line.startswith("ssh ")]
    assert ssh_lines and all(" -o BatchMode=yes " in line and " pi@kapos.local " in line for line in ssh_lines)
    assert "ssh -o BatchMode=yes -o ConnectTimeout=10 pi@kapos.local true" == lines[1]
    apt = [line for line in lines if "apt-get install" in line]
    assert len(apt) == 1 and "python3-rpi.gpio" in apt[0] and "lgpio" not in apt[0]
    assert "python3-spidev" in apt[0] and "python3-venv" in apt[0] and "rsync" in apt[0]
    rsync = [line for line in lines if line.startswith("rsync ")]
    assert len(rsync) == 1
    for item in ("firmware", "tools", "boards", "pyproject.toml", "README.md"):
        assert " %s/%s " % (REPO, item) in rsync[0]
    assert rsync[0].endswith(" pi@kapos.local:/opt/kapos/")
    assert "'sudo -n python3 -m venv --system-site-packages /opt/kapos/.venv'" in text
    assert "/opt/kapos/.venv/bin/pip install --quiet --upgrade" in text and "/opt/kapos[pi]" in text
    assert "useradd --system" in text and "usermod -a -G gpio,spi,i2c,dialout,input kapos" in text
    assert "groupadd --system" in text  # groups Debian/Ubuntu lack are created, with a warning
    assert lines[-2:] == ["ssh -o BatchMode=yes -o ConnectTimeout=10 pi@kapos.local 'sudo -n systemctl enable kapos'",
                          "ssh -o BatchMode=yes -o ConnectTimeout=10 pi@kapos.local 'sudo -n systemctl restart kapos'"]


def test_unit_file_contents():
    unit = unit_text(dry("rpi4")).splitlines()
    assert "ExecStart=/opt/kapos/.venv/bin/kapos run --board rpi4 --headless --config /etc/kapos/kapos.toml" in unit
    for line in ("Restart=on-failure", "User=kapos", "StateDirectory=kapos", "ConfigurationDirectory=kapos",
                 "Environment=KAPOS_BOARDS=/opt/kapos/boards", "WantedBy=multi-user.target"):
        assert line in unit
    assert not [line for line in unit if line.startswith("PrivateDevices")]  # it would hide /dev/spidev*


def test_rpi5_uses_rpi_lgpio_not_rpi_gpio():
    text = dry("rpi5")
    apt = [line for line in text.splitlines() if "apt-get install" in line]
    assert apt[0].endswith(" python3-lgpio python3-rpi-lgpio'") and "rpi.gpio" not in text
    assert "--board rpi5 --headless" in unit_text(text)


def test_a_board_file_of_ones_own_is_copied_too(tmp_path):
    mine = tmp_path / "shop-till.toml"
    shutil.copy(os.path.join(REPO, "boards", "rpi4.toml"), mine)
    text = dry(str(mine))
    assert "%s pi@kapos.local:/opt/kapos/boards/shop-till.toml" % mine in text
    assert "--board shop-till --headless" in text


@pytest.mark.parametrize("target", ["pi", "pi@", "@host", "-oProxyCommand=sh@host", "pi@host;reboot",
                                    "pi@ho st", "pi@host:", "pi@host:99999", "pi@host:22x", ""])
def test_bad_targets_are_refused(target):
    with pytest.raises(ConfigError, match="user@host"):
        build_plan("rpi4", target, REPO)


@pytest.mark.parametrize("target", ["pi@kapos.local", "admin@192.168.1.20", "pi@[fe80::1]", "kapos_op@pos-1"])
def test_good_targets(target):
    assert parse_target(target) == target


def test_ssh_port_from_the_target_or_the_option_reaches_every_ssh_and_rsync():
    for plan in (build_plan("rpi4", "pi@kapos.local:2222", REPO), build_plan("rpi4", TARGET, REPO, port=2222)):
        assert plan.target == TARGET and plan.port == 2222
        for command in plan.commands():
            if command.argv[0] == "ssh":
                assert command.argv[1:1 + len(plan.ssh_options)] == plan.ssh_options and "2222" in plan.ssh_options
            else:
                assert command.argv[0] == "rsync" and "-p 2222" in command.argv[command.argv.index("-e") + 1]
    with pytest.raises(ConfigError, match="port 2222 but --ssh-port says 22"):
        build_plan("rpi4", "pi@kapos.local:2222", REPO, port=22)


def test_runner_gives_the_host_key_hint_not_ssh_copy_id():
    code, fake, out, _ = run_plan(failures={0: (255, "Host key verification failed.")})
    assert code == 1 and "log in once with ssh pi@kapos.local" in out and "ssh-copy-id" not in out
    changed = "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed."
    code, fake, out, _ = run_plan(failures={0: (255, changed)})
    assert "ssh-keygen -R kapos.local" in out


def test_simulated_board_and_missing_repo_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="simulated"):
        build_plan("sim", TARGET, REPO)
    with pytest.raises(ConfigError, match="--repo"):
        build_plan("rpi4", TARGET, str(tmp_path))


def answers(**changes):
    parsed = parse_probe(ALL_ON)
    parsed.update(changes)
    return parsed


def test_all_enabled_means_no_advice():
    assert check_probe(load_board("rpi4"), answers()) == []


def test_missing_spi_gives_the_config_line_and_the_raspi_config_command():
    problems = check_probe(load_board("rpi4"), answers(spi="off"))
    text = advice(problems, "/boot/firmware/config.txt")
    assert "    dtparam=spi=on" in text.splitlines()
    assert "    sudo raspi-config nonint do_spi 0" in text.splitlines()
    assert "i2c" not in text and "enable_uart" not in text
    assert "/boot/firmware/config.txt" in text and "reboot" in text


def test_pi5_needs_the_uart0_overlay_and_other_lines():
    text = advice(check_probe(load_board("rpi5"), answers(i2c="off", uart="off", model="Raspberry Pi 5 Model B")))
    for line in ("dtparam=i2c_arm=on", "enable_uart=1", "dtoverlay=uart0-pi5", "do_i2c 0", "do_serial_hw 0"):
        assert line in text
    assert "dtoverlay=uart0-pi5" not in advice(check_probe(load_board("rpi4"), answers(uart="off")))


def test_serial_console_on_the_printer_uart_and_wrong_board_for_a_pi5():
    text = advice(check_probe(load_board("rpi4"), answers(serial_console="on")))
    assert "do_serial_cons 1" in text
    text = advice(check_probe(load_board("rpi4"), answers(model="Raspberry Pi 5 Model B Rev 1.0")))
    assert "--board rpi5" in text


class FakeRun:
    """subprocess.run stand-in: answers per call index; records argv."""

    def __init__(self, failures=None, probe=ALL_ON):
        self.calls = []
        self.failures = failures or {}
        self.probe = probe

    def __call__(self, argv, input=None, capture_output=True, text=True):
        self.calls.append((argv, input))
        code, err = self.failures.get(len(self.calls) - 1, (0, ""))
        out = self.probe if input and input.startswith("cfg=") else ""
        return types.SimpleNamespace(returncode=code, stdout=out, stderr=err)


def run_plan(board="rpi4", **kw):
    plan = build_plan(board, TARGET, REPO)
    fake, out = FakeRun(**kw), io.StringIO()
    code = run(plan, console=Console(file=out, width=200), run_process=fake)
    return code, fake, out.getvalue(), plan


def test_runner_runs_every_command_in_order():
    code, fake, out, plan = run_plan()
    assert code == 0
    assert [argv for argv, _ in fake.calls] == [c.argv for c in plan.commands()]
    unit_call = [stdin for argv, stdin in fake.calls if "kapos.service" in argv[-1]]
    assert unit_call and "User=kapos" in unit_call[0]
    assert "journalctl -u kapos" in out


def test_runner_stops_at_the_first_failure_with_its_output():
    code, fake, out, plan = run_plan(failures={3: (100, "E: Unable to locate package python3-spidev")})
    assert code == 1 and len(fake.calls) == 4
    assert "Failed: Install system packages (exit 100)" in out and "Unable to locate package" in out


def test_runner_explains_ssh_login_failure():
    code, fake, out, _ = run_plan(failures={0: (255, "Permission denied (publickey).")})
    assert code == 1 and len(fake.calls) == 1
    assert "ssh-copy-id pi@kapos.local" in out


def test_runner_stops_after_the_probe_when_spi_is_off():
    code, fake, out, _ = run_plan(probe=ALL_ON.replace("spi=on", "spi=off"))
    assert code == 1 and len(fake.calls) == 2  # ssh check, probe: nothing installed
    assert "dtparam=spi=on" in out and "do_spi 0" in out


def test_register_adds_the_flash_subcommand(capsys):
    parser = argparse.ArgumentParser(prog="kapos")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["flash", "--board", "rpi5", "--target", TARGET, "--dry-run", "--repo", REPO])
    assert args.func(args) == 0
    assert "python3-rpi-lgpio" in capsys.readouterr().out
    args = parser.parse_args(["flash", "--board", "rpi5", "--target", "kapos.local", "--dry-run"])
    with pytest.raises(ConfigError, match="user@host"):
        args.func(args)
    with pytest.raises(SystemExit):
        parser.parse_args(["flash", "--target", TARGET])  # --board is required
