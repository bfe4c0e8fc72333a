"""What `kapos flash` does, as data: steps of argv lists built by pure functions.

Nothing here runs a process; runner.py does. Every remote command goes through
`ssh -o BatchMode=yes` (key login, no password prompt that would hang) and `sudo -n`
(fails at once instead of asking for a password).
"""

import os
import re
import shlex

from kapos.boards import load_board
from kapos.errors import ConfigError

from kapos_tools.flash.unit import CONFIG_PATH, INSTALL_DIR, SERVICE_USER, UNIT_PATH, render_unit

SSH_OPTIONS = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
GROUPS = ("gpio", "spi", "i2c", "dialout", "input")
SYNCED = ("firmware", "tools", "boards", "pyproject.toml", "README.md")  # tools: pyproject packages kapos_tools
BASE_PACKAGES = ["rsync", "python3-venv", "python3-spidev", "python3-evdev", "python3-smbus2"]
GPIO_PACKAGES = {"RPi.GPIO": ["python3-rpi.gpio"], "rpi-lgpio": ["python3-lgpio", "python3-rpi-lgpio"]}

_TARGET = re.compile(r"^(?P<user>[a-z_][a-z0-9_.-]{0,31})@(?P<host>[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?"
                     r"|\[[0-9A-Fa-f:.]+\])(:(?P<port>[0-9]{1,5}))?$")
# Debian/Ubuntu on a Pi may lack the Raspberry Pi OS device groups: created when missing
GROUPS_SCRIPT = """for g in %s; do
  if ! getent group "$g" >/dev/null; then
    groupadd --system "$g" && echo "warning: group $g did not exist: created (its devices may need a udev rule)" >&2
  fi
done
usermod -a -G %s %s
"""


class Command:
    """One process: argv, optional text on its stdin, and whether its output is the probe."""

    def __init__(self, argv, stdin=None, probe=False):
        self.argv = list(argv)
        self.stdin = stdin
        self.probe = probe

    def shell(self):
        """The command as one shell line (a here-document when it reads stdin)."""
        line = shlex.join(self.argv)
        if self.stdin is None:
            return line
        return "%s <<'EOF'\n%sEOF" % (line, self.stdin)

    def __repr__(self):
        return "Command(%s)" % self.shell()


class Step:
    def __init__(self, title, commands):
        self.title = title
        self.commands = commands


class Plan:
    """The steps for one board on one target; `board` is the parsed board file."""

    def __init__(self, board_name, board, target, steps):
        self.board_name = board_name
        self.board = board
        self.target = target
        self.steps = steps

    def commands(self):
        return [command for step in self.steps for command in step.commands]


def parse_target(text):
    """user@host (host: a name, an IPv4 address or [IPv6]), optionally :port; anything
    else is a ConfigError. Returns the text."""
    split_target(text)
    return text


def split_target(text, port=None):
    """(user@host, port or None) from user@host[:port] and an optional --port."""
    match = _TARGET.match(text or "")
    if not match:
        raise ConfigError("--target must look like user@host or user@host:port (e.g. pi@kapos.local), got %r"
                          % (text,))
    given = match.group("port")
    login = text[:match.start("port") - 1] if given else text
    if given and port is not None and int(given) != int(port):
        raise ConfigError("--target says port %s but --ssh-port says %s" % (given, port))
    port = int(given) if given else port
    if port is not None and not 1 <= int(port) <= 65535:
        raise ConfigError("the SSH port in user@host:port or --ssh-port must be 1-65535, got %r" % (port,))
    return login, (int(port) if port is not None else None)


def ssh_options(port=None):
    return SSH_OPTIONS + (["-p", str(port)] if port and port != 22 else [])


def ssh(target, argv, options=SSH_OPTIONS):
    """Run argv on the target; ssh hands one string to the remote shell, so quote it here."""
    return Command(["ssh"] + options + [target, shlex.join(argv)])


def sudo(target, *argv, options=SSH_OPTIONS):
    return ssh(target, ["sudo", "-n"] + list(argv), options=options)


def sudo_script(target, script, probe=False, options=SSH_OPTIONS):
    """A root shell script fed on stdin: no second level of quoting."""
    return Command(["ssh"] + options + [target, "sudo -n sh -s"], stdin=script, probe=probe)


def resolve_board(board, repo):
    """(name, path, parsed board) for a board name in repo/boards or a board file path."""
    if board.endswith(".toml") or os.sep in board:
        path = board
    else:
        path = os.path.join(repo, "boards", board + ".toml")
    name = os.path.basename(path)[:-5] if path.endswith(".toml") else os.path.basename(path)
    parsed = load_board(path)
    drivers = [s.get("driver") for n, s in parsed.items() if n != "board" and isinstance(s, dict)]
    if drivers and all(d in ("sim", "none", "mfrc522-emulated") for d in drivers):
        raise ConfigError("board %s is simulated: flash a Raspberry Pi board (rpi4, rpi5, rpi-zero2w)" % name)
    return name, path, parsed


def gpio_library(board):
    lib = board["board"].get("gpio_library", "RPi.GPIO")
    if lib not in GPIO_PACKAGES:
        raise ConfigError("[board] gpio_library %r is unknown (known: %s)" % (lib, ", ".join(GPIO_PACKAGES)))
    return lib


def is_pi5(board):
    return gpio_library(board) == "rpi-lgpio"


def board_needs(board):
    """Kernel interfaces the board's devices use: a subset of ('spi', 'i2c', 'uart')."""
    needs = set()
    for name, section in board.items():
        if name == "board" or not isinstance(section, dict) or section.get("driver") in (None, "none"):
            continue
        bus = str(section.get("bus", ""))
        if bus.startswith("spi") or "spi_port" in section or "spi_bus" in section:
            needs.add("spi")
        if bus.startswith("i2c"):
            needs.add("i2c")
        if bus.startswith("uart"):
            needs.add("uart")
    return tuple(n for n in ("spi", "i2c", "uart") if n in needs)


# Prints key=value lines: what the Pi has enabled. raspi-config answers 0 for "enabled";
# without raspi-config, config.txt is searched.
PROBE_SCRIPT = r"""cfg=/boot/firmware/config.txt; [ -f "$cfg" ] || cfg=/boot/config.txt
cmdline=/boot/firmware/cmdline.txt; [ -f "$cmdline" ] || cmdline=/boot/cmdline.txt
has() { grep -qE "^[[:space:]]*($1)[[:space:]]*$" "$cfg" 2>/dev/null && echo on || echo off; }
rc() { v=$(raspi-config nonint get_$1 2>/dev/null) || { has "$2"; return; }; [ "$v" = 0 ] && echo on || echo off; }
echo "config=$cfg"
echo "model=$(cat /proc/device-tree/model 2>/dev/null | tr -d '\0')"
echo "spi=$(rc spi 'dtparam=spi=on')"
echo "i2c=$(rc i2c 'dtparam=i2c_arm=on')"
echo "uart=$(has 'enable_uart=1')"
echo "uart0_pi5=$(has 'dtoverlay=uart0-pi5|dtparam=uart0=on')"
grep -qE 'console=(serial0|ttyAMA0|ttyS0)' "$cmdline" 2>/dev/null && echo serial_console=on || echo serial_console=off
"""


def probe_command(target, options=SSH_OPTIONS):
    return sudo_script(target, PROBE_SCRIPT, probe=True, options=options)


def parse_probe(text):
    answers = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            answers[key.strip()] = value.strip()
    return answers


def check_probe(board, answers):
    """[(config.txt line or None, raspi-config command, why)] for what the board needs and
    the Pi lacks; empty when all is there."""
    needs, pi5 = board_needs(board), is_pi5(board)
    problems = []
    model = answers.get("model", "")
    if "Raspberry Pi 5" in model and not pi5:
        problems.append((None, None, "this is a %s: use a Pi 5 board file (--board rpi5)" % model))
    if "spi" in needs and answers.get("spi") != "on":
        problems.append(("dtparam=spi=on", "sudo raspi-config nonint do_spi 0", "SPI (NFC reader)"))
    if "i2c" in needs and answers.get("i2c") != "on":
        problems.append(("dtparam=i2c_arm=on", "sudo raspi-config nonint do_i2c 0", "I2C (display)"))
    if "uart" in needs:
        if answers.get("uart") != "on":
            problems.append(("enable_uart=1", "sudo raspi-config nonint do_serial_hw 0", "UART (printer)"))
        if pi5 and answers.get("uart0_pi5") != "on":
            problems.append(("dtoverlay=uart0-pi5", None, "UART0 on GPIO14/15 (Pi 5)"))
        if answers.get("serial_console") == "on":
            problems.append((None, "sudo raspi-config nonint do_serial_cons 1",
                             "the serial login console would print on the receipt printer"))
    return problems


def advice(problems, config_path="/boot/firmware/config.txt"):
    lines = ["The Pi is not ready for this board:"]
    lines += ["  - %s" % why for _, _, why in problems]
    config_lines = [line for line, _, _ in problems if line]
    commands = [cmd for _, cmd, _ in problems if cmd]
    if config_lines:
        lines += ["", "Add these lines to %s (under [all]):" % config_path, ""]
        lines += ["    " + line for line in config_lines]
    if commands:
        lines += ["", "or run on the Pi:", ""] + ["    " + cmd for cmd in commands]
    if config_lines or commands:
        lines += ["", "then reboot (sudo reboot) and run kapos flash again."]
    return "\n".join(lines)


def build_plan(board_arg, target, repo, port=None):
    """The Plan for flashing `board_arg` (a name in repo/boards or a board file) onto
    `target` (user@host[:port]; or `port`)."""
    target, port = split_target(target, port)
    opts = ssh_options(port)
    repo = os.path.abspath(repo)
    if not os.path.isfile(os.path.join(repo, "pyproject.toml")):
        raise ConfigError("%s is not a kapos checkout (no pyproject.toml): pass --repo PATH" % repo)
    name, path, board = resolve_board(board_arg, repo)
    packages = BASE_PACKAGES + GPIO_PACKAGES[gpio_library(board)]
    venv = INSTALL_DIR + "/.venv"
    sources = [os.path.join(repo, item) for item in SYNCED]
    # files end up owned by root (rsync runs under sudo there), readable by the service user
    rsync = ["rsync", "-rlt", "--chmod=D755,F644", "--rsync-path", "sudo -n rsync",
             "-e", shlex.join(["ssh"] + opts)]
    copy = [Command(rsync + ["--delete", "--exclude", "__pycache__", "--exclude", "*.egg-info"]
                    + sources + ["%s:%s/" % (target, INSTALL_DIR)])]
    if os.path.abspath(path) != os.path.join(repo, "boards", name + ".toml"):  # a board file of your own
        copy.append(Command(rsync + [path, "%s:%s/boards/%s.toml" % (target, INSTALL_DIR, name)]))
    default_config = INSTALL_DIR + "/firmware/kapos/data/default-config.toml"
    plan = Plan(name, board, target, [
        Step("Check SSH to %s" % target, [ssh(target, ["true"], options=opts)]),
        Step("Check SPI / I2C / UART on the Pi", [probe_command(target, opts)]),
        Step("Install system packages", [
            sudo(target, "apt-get", "update", "-q", options=opts),
            sudo(target, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", *packages,
                 options=opts),
        ]),
        Step("Copy kapos to %s" % INSTALL_DIR, [sudo(target, "mkdir", "-p", INSTALL_DIR, options=opts)] + copy),
        Step("Create the Python environment", [
            sudo(target, "python3", "-m", "venv", "--system-site-packages", venv, options=opts),
            sudo(target, venv + "/bin/pip", "install", "--quiet", "--upgrade", INSTALL_DIR + "[pi]", options=opts),
        ]),
        Step("Create the %s user" % SERVICE_USER, [
            sudo_script(target, "id -u %s >/dev/null 2>&1 || useradd --system --no-create-home "
                                "--shell /usr/sbin/nologin %s\n" % (SERVICE_USER, SERVICE_USER), options=opts),
            sudo_script(target, GROUPS_SCRIPT % (" ".join(GROUPS), ",".join(GROUPS), SERVICE_USER), options=opts),
        ]),
        Step("Install the kapos service", [
            sudo(target, "install", "-d", "-m", "0755", os.path.dirname(CONFIG_PATH), options=opts),
            # an existing config is the operator's: never overwritten
            sudo_script(target, "test -e %s || cp %s %s\n" % (CONFIG_PATH, default_config, CONFIG_PATH),
                        options=opts),
            Command(["ssh"] + opts + [target, "sudo -n tee %s >/dev/null" % UNIT_PATH], stdin=render_unit(name)),
            sudo(target, "systemctl", "daemon-reload", options=opts),
        ]),
        Step("Start kapos", [
            sudo(target, "systemctl", "enable", "kapos", options=opts),
            # restart, not just start: a re-flash must run the new code
            sudo(target, "systemctl", "restart", "kapos", options=opts),
        ]),
    ])
    plan.port = port
    plan.ssh_options = opts
    return plan
