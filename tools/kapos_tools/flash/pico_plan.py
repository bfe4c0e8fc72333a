"""`kapos flash --board pico-w`: what it does to a Pico W, as data (mpy-cross + mpremote).

    kapos flash --board pico-w [--port /dev/ttyACM0] --host 192.168.1.10:8583 [--dry-run]

Steps: compile the firmware with mpy-cross (pico_build.py), `mpremote mip install` the
micropython-lib packages the port imports, remove the old /lib/kapos (a stale .py would
be imported before the new .mpy), copy the .mpy tree, main.py and /kapos.json, copy a
fresh DUKPT key state to /keys/dukpt.new and let the device keep its existing state
unless --new-keys (a re-flash must never rewind the KSN counter), run the self-test, reset.

Secrets never reach a command line or the dry-run output: the key state and the Wi-Fi
password are written to files (0600) in the build directory and copied from there; the
password comes from the KAPOS_WIFI_PASSWORD environment variable.
"""

import json
import os

from kapos.boards import BUS_PINS
from kapos.errors import ConfigError

from kapos_tools.flash import pico_build
from kapos_tools.flash.plan import Command, Plan, Step, resolve_board

MIP_PACKAGES = ("ssd1306",)  # micropython-lib: the OLED driver (asyncio, json are built in)
MAIN_PY = "from kapos.ports.micropython import app\napp.main()\n"
WIFI_PASSWORD_ENV = "KAPOS_WIFI_PASSWORD"


def parse_host(text):
    host, sep, port = (text or "").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("--host must be HOST:PORT (the reference host's address), got %r" % (text,))
    return host, int(port)


def mpremote(port, *argv):
    return Command(["mpremote", "connect", port] + list(argv))


class PicoFiles:
    """The files the build directory gets besides the .mpy tree (written by write_files)."""

    def __init__(self, build_dir):
        self.build_dir = build_dir
        self.lib = os.path.join(build_dir, "lib")
        self.main = os.path.join(build_dir, "main.py")
        self.config = os.path.join(build_dir, "kapos.json")
        self.keys = os.path.join(build_dir, "dukpt.new")
        self.prepare = os.path.join(build_dir, "prepare.py")
        self.finish = os.path.join(build_dir, "finish.py")


class PicoPlan(Plan):
    """A Plan whose runner first compiles and writes the build directory."""

    def __init__(self, board_name, board, port, steps, files, config, repo, new_keys, key_source):
        Plan.__init__(self, board_name, board, port, steps)
        self.files = files
        self.config = config
        self.repo = repo
        self.new_keys = new_keys
        self.key_source = key_source  # (bdk_path or None, terminal_id)


def device_config(board, terminal_id, merchant_id, address, currency, wifi_ssid):
    buses = {}
    for section in board.values():
        if isinstance(section, dict) and section.get("bus") in BUS_PINS:
            buses[section["bus"]] = list(BUS_PINS[section["bus"]])
    config = {"board": board, "buses": buses, "terminal_id": terminal_id, "merchant_id": merchant_id,
              "host": address[0], "port": address[1], "currency": currency}
    if wifi_ssid:
        config["wifi"] = {"ssid": wifi_ssid}
    return config


def build_pico_plan(board_arg, port, repo, build_dir, host, terminal_id="KAPOS001",
                    merchant_id="KAPOSMERCHANT01", currency="978", wifi_ssid=None, bdk=None,
                    new_keys=False, tool=None):
    """The PicoPlan for `board_arg` (a runtime = "micropython" board) on serial `port`."""
    repo = os.path.abspath(repo)
    name, _, board = resolve_board(board_arg, repo)
    if board["board"].get("runtime") != "micropython":
        raise ConfigError("board %s is not a MicroPython board: use --target for a Raspberry Pi" % name)
    if not port or port.startswith("-"):
        raise ConfigError("--port must be a serial device (e.g. /dev/ttyACM0) or 'auto'")
    address = parse_host(host)
    if not terminal_id or len(terminal_id) > 8:
        raise ConfigError("--terminal-id must be 1-8 characters")
    tool = tool or pico_build.find_mpy_cross() or "mpy-cross"
    files = PicoFiles(os.path.abspath(build_dir))
    compile_cmds = [Command(argv) for argv, _ in pico_build.compile_commands(tool, repo, files.build_dir)]
    steps = [
        Step("Compile the firmware with mpy-cross (.mpy v%s)" % pico_build.MPY_VERSION, compile_cmds),
        Step("Install micropython-lib packages", [mpremote(port, "mip", "install", p) for p in MIP_PACKAGES]),
        Step("Remove the old kapos and make /lib, /keys", [mpremote(port, "run", files.prepare)]),
        Step("Copy the .mpy tree to /lib/kapos", [mpremote(port, "fs", "cp", "-r", os.path.join(files.lib, "kapos"),
                                                           ":/lib/")]),
        Step("Copy main.py and /kapos.json", [mpremote(port, "fs", "cp", files.main, ":/main.py"),
                                              mpremote(port, "fs", "cp", files.config, ":/kapos.json")]),
        Step("Copy the key state (kept on the device if it has one)" if not new_keys
             else "Copy a new key state (replaces the device's)",
             [mpremote(port, "fs", "cp", files.keys, ":/keys/dukpt.new")]),
        Step("Install the keys and run the self-test", [Command(["mpremote", "connect", port, "run", files.finish],
                                                                probe=True)]),
        Step("Reset the Pico W (main.py starts the terminal)", [mpremote(port, "reset")]),
    ]
    config = device_config(board, terminal_id, merchant_id, address, currency, wifi_ssid)
    return PicoPlan(name, board, port, steps, files, config, repo, new_keys, (bdk, terminal_id))


PREPARE = """# kapos flash: remove the old firmware (a stale .py is imported before a new .mpy).
import os
def rmtree(path):
    for entry in os.ilistdir(path):
        child = path + "/" + entry[0]
        if entry[1] == 0x4000:
            rmtree(child)
        else:
            os.remove(child)
    os.rmdir(path)
try:
    rmtree("/lib/kapos")
except OSError:
    pass
for d in ("/lib", "/keys"):
    try:
        os.mkdir(d)
    except OSError:
        pass
print("KAPOS-PREPARED")
"""

FINISH = """# kapos flash: install the copied key state unless the device has one, then self-test.
import os
NEW_KEYS = %(new_keys)r
def exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False
if NEW_KEYS or not exists("/keys/dukpt.bin"):
    os.rename("/keys/dukpt.new", "/keys/dukpt.bin")
    print("KAPOS-KEYS loaded")
else:
    os.remove("/keys/dukpt.new")  # a re-flash never rewinds the KSN counter
    print("KAPOS-KEYS kept")
from kapos.ports.micropython import selftest
selftest.run()
"""


def key_state(bdk_path, terminal_id):
    """A fresh DUKPT state for the terminal (test BDK unless a BDK file is given)."""
    from kapos.simdata.keys import ik_id_for
    from kapos.security.dukpt import DukptTerminal, derive_initial_key

    from kapos_tools.keys import read_bdk

    bdk, bdk_id = read_bdk(bdk_path)
    ik_id = ik_id_for(terminal_id, bdk_id)
    return DukptTerminal.load_initial_key(derive_initial_key(bdk, ik_id), ik_id).export_state()


def _write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write_files(plan, environ=os.environ):
    """main.py, kapos.json (with the Wi-Fi password from the environment), the key state
    and finish.py into the build directory; the .mpy tree is compiled by its step."""
    files = plan.files
    os.makedirs(files.build_dir, exist_ok=True)
    os.chmod(files.build_dir, 0o700)
    with open(files.main, "w") as f:
        f.write(MAIN_PY)
    config = json.loads(json.dumps(plan.config))
    if "wifi" in config:
        config["wifi"]["password"] = environ.get(WIFI_PASSWORD_ENV, "")
    _write_private(files.config, json.dumps(config, sort_keys=True).encode())
    _write_private(files.keys, bytes(key_state(*plan.key_source)))
    with open(files.finish, "w") as f:
        f.write(FINISH % {"new_keys": bool(plan.new_keys)})
    with open(files.prepare, "w") as f:
        f.write(PREPARE)


def check_finish(output):
    """None when the device's self-test passed, else what failed."""
    for line in output.splitlines():
        if line.startswith("KAPOS-SELFTEST OK"):
            return None
        if line.startswith("KAPOS-SELFTEST FAILED"):
            return line[len("KAPOS-SELFTEST FAILED"):].strip()
    return "the self-test printed no result"
