"""The Pico W options of `kapos flash` (a board with runtime = "micropython")."""

import os
import sys
import tempfile

from kapos.boards import load_board
from kapos.errors import ConfigError

EXIT_OK = 0


def add_arguments(p):
    g = p.add_argument_group("Pico W (--board pico-w): mpy-cross + mpremote over USB serial")
    g.add_argument("--port", default="auto", help="the Pico's serial port (default: mpremote's auto)")
    g.add_argument("--host", dest="pico_host", metavar="HOST:PORT", help="the host the terminal connects to")
    g.add_argument("--terminal-id", default="KAPOS001", help="field 41 (1-8 characters)")
    g.add_argument("--merchant-id", default="KAPOSMERCHANT01", help="field 42")
    g.add_argument("--wifi-ssid", default=None, help="Wi-Fi network (password from $KAPOS_WIFI_PASSWORD)")
    g.add_argument("--bdk", default=None, metavar="FILE", help="BDK file (kapos keys new-bdk); default: test BDK")
    g.add_argument("--new-keys", action="store_true", help="replace the key state on the device")
    g.add_argument("--build-dir", default=None, help="keep the compiled tree here (default: a temp dir)")
    g.add_argument("--skip-mip", action="store_true", help="ssd1306 is on the device already (offline)")
    g.add_argument("--no-reset", action="store_true", help="do not reset the Pico at the end")


def is_pico(board_arg, repo):
    path = board_arg if board_arg.endswith(".toml") or os.sep in board_arg \
        else os.path.join(repo, "boards", board_arg + ".toml")
    try:
        return load_board(path)["board"].get("runtime") == "micropython"
    except (KeyError, OSError):
        return False


def skips(args):
    out = []
    if args.skip_mip:
        out.append("Install micropython-lib")
    if args.no_reset:
        out.append("Reset")
    return tuple(out)


def cmd(args, repo):
    from kapos_tools.flash import pico_runner
    from kapos_tools.flash.pico_plan import build_pico_plan

    if not args.pico_host:
        raise ConfigError("--host HOST:PORT is required for a Pico W (where the terminal sends its messages)")
    with tempfile.TemporaryDirectory(prefix="kapos-pico-") as tmp:
        plan = build_pico_plan(args.board, args.port, repo, args.build_dir or tmp, args.pico_host,
                               args.terminal_id, args.merchant_id, wifi_ssid=args.wifi_ssid, bdk=args.bdk,
                               new_keys=args.new_keys)
        if args.dry_run:
            pico_runner.dry_run(plan, sys.stdout, skips(args))
            return EXIT_OK
        return pico_runner.run(plan, skip=skips(args))
