"""`kapos websim`: the simulated terminal in this terminal window and in a browser at once.

    kapos websim --web 127.0.0.1:8000 [--host-db var/host.db] [--no-console] [kapos run options]

The page (docs/web.md) draws the OLED pixel-exact, has the keypad, the test cards, the
faults, the receipt roll and the host's view of the transaction. It asks for the
terminal's management token. `make run` starts it (see the Makefile).
"""

import argparse
import asyncio
import logging
import os
import sys

from kapos.cli import _key_value
from kapos.errors import KaposError


def register(subparsers):
    p = subparsers.add_parser("websim", help="the simulated terminal in a browser (and this window)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--web", default="127.0.0.1:8000", metavar="HOST:PORT",
                   help="where the page is served; loopback only (default 127.0.0.1:8000; port 0 picks one)")
    p.add_argument("--host-db", metavar="FILE", help="the reference host's ledger, read-only, for the host panel")
    p.add_argument("--no-console", action="store_true", help="browser only: do not draw in this window")
    p.add_argument("--board", default="sim", help="board (only simulated boards are accepted)")
    p.add_argument("--config", help="terminal config TOML")
    p.add_argument("--set", dest="overrides", action="append", type=_key_value, default=[],
                   metavar="KEY=VALUE", help="override one config key")
    p.add_argument("--clock", help="start the simulated clock at this UTC time")
    p.add_argument("--manage", metavar="HOST:PORT", help="also serve the management channel on TCP")
    p.add_argument("--manage-token-file", metavar="FILE",
                   help="the terminal's management token (default: DATA_DIR/manage-token, made at first start)")
    p.add_argument("--manage-idle-timeout", type=float, default=300.0, metavar="S", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_websim, manage_serial=None, manage_token=None, test_mode=False)
    return p


async def run(assembly, args, token, console):
    from kapos.cli import run_with_management
    from kapos_tools.host.web.serve import parse_web_address
    from kapos_tools.websim.app import WebSim

    host, port = parse_web_address(args.web)
    web = WebSim(assembly, token, host_db=args.host_db)
    bound = await web.start(host, port)
    url = "http://%s:%d/" % (host, bound)
    if console is not None:
        console.web_url = url
    else:
        print("kapos simulator page on %s (token: %s)" % (url, _token_hint(assembly, args)), flush=True)
    try:
        await run_with_management(assembly, args, main=console.run() if console is not None else None)
    finally:
        await web.close()


def _token_hint(assembly, args):
    return args.manage_token_file or os.path.join(assembly.config["storage"]["data_dir"], "manage-token")


def cmd_websim(args):
    from kapos_tools.websim.token import terminal_token
    from kapos.wiring import Assembly

    assembly = Assembly(args.board, args.config, args.overrides, clock=args.clock)
    try:
        token = terminal_token(assembly.config["storage"]["data_dir"], args.manage_token_file)
        console = None
        if not args.no_console:
            if not sys.stdin.isatty():
                raise KaposError("the console needs a terminal window; use --no-console for the browser only")
            from kapos.console import Console

            logging.getLogger().handlers[:] = []  # the console owns the screen
            logging.basicConfig(filename=os.environ.get("KAPOS_LOG", os.devnull), level=logging.INFO)
            console = Console(assembly)
        asyncio.run(run(assembly, args, token, console))
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        assembly.close()
