"""The `kapos` command. `run` lives here; host-side tools add subcommands (`host`, `diag`,
`keys`, `flash`) through the `kapos.commands` entry-point group, so firmware code never
imports tools/."""

import argparse
import asyncio
import logging
import os
import sys

from kapos import __version__
from kapos.errors import KaposError, ScenarioError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _key_value(text):
    if "=" not in text:
        raise argparse.ArgumentTypeError("expected KEY=VALUE, e.g. timeouts.card=5")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def add_run_parser(sub):
    p = sub.add_parser("run", help="run the terminal (interactive on the sim board, or a scenario)")
    p.add_argument("--board", default="sim", help="board name in boards/ or a path to a board file")
    p.add_argument("--config", help="terminal config TOML (defaults: kapos/data/default-config.toml)")
    p.add_argument("--set", dest="overrides", action="append", type=_key_value, default=[],
                   metavar="KEY=VALUE", help="override one config key, e.g. --set timeouts.card=5")
    p.add_argument("--script", help="play a scenario file and exit 0 if every expectation holds")
    p.add_argument("--out", help="with --script: save every screen and receipt as PNG in this directory")
    p.add_argument("--clock", help="start the simulated clock at this UTC time, e.g. 2026-11-25T10:00:00")
    p.add_argument("--headless", action="store_true", help="run without the console UI (service mode)")
    p.add_argument("--manage", metavar="HOST:PORT",
                   help="serve the management channel on TCP (e.g. 127.0.0.1:7700; a token is always needed)")
    p.add_argument("--manage-serial", metavar="URL",
                   help="serve the management channel on a serial console (a device or a pyserial URL)")
    p.add_argument("--manage-token-file", metavar="FILE",
                   help="file holding the token management clients must send (default: $KAPOS_MANAGE_TOKEN, "
                        "$KAPOS_MANAGE_TOKEN_FILE, else DATA_DIR/manage-token, made at the first start)")
    p.add_argument("--manage-token", help=argparse.SUPPRESS)  # works, but shows in ps: warned
    p.add_argument("--manage-idle-timeout", type=float, default=300.0, metavar="S",
                   help="close an authenticated management connection after S silent seconds (default 300)")
    p.add_argument("--test-mode", action="store_true",
                   help="the management channel accepts injected input and simulated faults (test rigs only)")
    p.add_argument("--keep-storage", action="store_true",
                   help="with --script: use the configured data directory instead of a fresh temporary one")
    p.add_argument("--update-root", metavar="DIR", default=os.environ.get("KAPOS_UPDATE_ROOT") or None,
                   help="update itself from the repository set up in DIR (kapos update init; docs/updates.md; "
                        "default $KAPOS_UPDATE_ROOT)")
    p.add_argument("--update-interval", type=float, default=3600.0, metavar="S", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_run)


async def _play(harness, scenario, verbose):
    from kapos.app.scenario import Player

    async with harness:
        await Player(harness.target, log=(lambda s: print("  " + s)) if verbose else None).play(scenario)


def run_script(args):
    from kapos.app import scenario as scenario_mod
    from kapos.harness import CONFIGURED, FRESH, Harness
    from kapos.wiring import check_scenario

    scenario = scenario_mod.load(args.script)
    check_scenario(scenario, args.config, args.overrides)  # bad lines exit 2, with the line
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    harness = Harness(args.board, args.config, list(args.overrides) + scenario.config, out_dir=args.out,
                      clock=args.clock or scenario.clock, data_dir=CONFIGURED if args.keep_storage else FRESH)
    try:
        asyncio.run(_play(harness, scenario, args.verbose))
    except ScenarioError as exc:
        screen = harness.terminal.screen.text() if harness.terminal.screen else ""
        print("FAIL %s: %s" % (args.script, exc))
        print("screen at failure:\n  " + screen.replace("\n", "\n  "))
        return EXIT_FAILED
    print("PASS %s (%d steps, final state %s)" % (args.script, len(scenario.steps), harness.terminal.state))
    return EXIT_OK


def _management_server(assembly, args):
    from kapos.io.logbuffer import LogBuffer
    from kapos.app.management import ManagementServer
    from kapos.app.mgmt_auth import check_token, terminal_token

    if args.manage_token:
        logging.getLogger("kapos.cli").warning(
            "--manage-token puts the token where every user of this machine can read it (ps, "
            "/proc/PID/cmdline): use --manage-token-file or $KAPOS_MANAGE_TOKEN")
        token = check_token(args.manage_token)
    else:
        token = terminal_token(assembly.config["storage"]["data_dir"], args.manage_token_file)
    if not getattr(args, "verbose", False):  # INFO goes to the `logs` buffer, not stderr
        for handler in logging.getLogger().handlers:
            if not isinstance(handler, LogBuffer) and handler.level < logging.WARNING:
                handler.setLevel(logging.WARNING)
        logging.getLogger("kapos").setLevel(assembly.config["log"]["level"])
    keystore = assembly.keystore
    return ManagementServer(assembly.terminal, assembly.diagnostics, assembly.testcards,
                            token=token, test_mode=args.test_mode, idle_timeout=args.manage_idle_timeout,
                            key_loader=assembly.load_keys if keystore is not None else None,
                            key_status=keystore.status if keystore is not None else None)


async def run_with_management(assembly, args, main=None):
    """Run the terminal (kapos.harness) with `main` (e.g. the console's UI) and the management
    channel beside it, until `main` ends or the terminal stops by itself (a restart)."""
    from kapos.harness import started

    server = _management_server(assembly, args) if (args.manage or args.manage_serial) else None
    # a terminal that fails to start says why here instead of hanging
    async with started(assembly) as harness:
        try:
            if server is not None and args.manage:
                from kapos.app.management import parse_hostport

                try:
                    host, port = await server.start_tcp(*parse_hostport(args.manage))
                except OSError as exc:  # taken since the start-up check
                    from kapos.app.startup import bind_error

                    raise bind_error("management", *parse_hostport(args.manage), exc, "pass --manage HOST:PORT")
                if main is None:  # headless: say where (port 0 picks a free one)
                    print("kapos: management channel on %s:%d" % (host, port), flush=True)
            if server is not None and args.manage_serial:
                await server.start_serial(args.manage_serial)
            await _first_of(harness.stopped(), main)
        finally:
            if server is not None:
                await server.close()


async def _first_of(*coros):
    """Await the coroutines given (None: skipped) until one ends; cancel the others."""
    tasks = [asyncio.ensure_future(c) for c in coros if c is not None]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


EXIT_RESTART = 75  # the service (systemd, kapos.update.supervise) starts the terminal again


async def _with_updates(assembly, args, coro):
    if not args.update_root:
        return await coro
    from kapos.update.agent import run_beside

    return await run_beside(assembly, args.update_root, coro, args.update_interval)


def _preflight(args):
    """What a first start most often trips on, each as one line (StartupError, exit 2) before
    anything starts: a management port in use, a data directory read-only or full."""
    from kapos.app import config as config_mod
    from kapos.app import startup

    if args.manage:
        from kapos.app.management import parse_hostport

        host, port = parse_hostport(args.manage)
        startup.check_port_free(host, port, "management", "pass --manage %s:PORT" % host)
    startup.check_data_dir(config_mod.load(args.config, args.overrides)["storage"]["data_dir"])


def _start(args, assembly_class):
    """The Assembly, or a StartupError saying why not (also on the board's display)."""
    import sqlite3

    from kapos import boards
    from kapos.app import startup
    from kapos.errors import StartupError

    try:
        _preflight(args)
        try:
            return assembly_class(args.board, args.config, args.overrides, clock=args.clock)
        except (OSError, sqlite3.Error) as exc:  # the disk failed between the check and the journal
            from kapos.app import config as config_mod

            raise startup.storage_error(config_mod.load(args.config, args.overrides)["storage"]["data_dir"], exc)
    except StartupError as exc:
        try:  # the terminal itself says payments are stopped, not only the log
            platform = boards.build_platform(boards.load_board(args.board))
        except Exception:
            raise exc
        try:
            startup.show_stopped(platform.get("display"), exc)
        finally:
            platform.close()
        raise


def cmd_run(args):
    from kapos.wiring import Assembly

    if args.script:
        return run_script(args)
    if args.out:
        raise KaposError("--out is for scripted runs (--script)")
    if args.update_root:  # the parameter set the host sent last, then the command line
        from kapos.update.agent import stored_overrides

        args.overrides = stored_overrides(args.update_root) + list(args.overrides)
    assembly = _start(args, Assembly)
    try:
        if args.headless:
            asyncio.run(_with_updates(assembly, args, run_with_management(assembly, args)))
            return EXIT_RESTART if getattr(assembly.terminal, "restart_requested", None) else EXIT_OK
        if not sys.stdin.isatty():
            raise KaposError("the interactive terminal needs a terminal window; "
                             "use --script FILE for a scripted run or --headless")
        from kapos.console import Console

        logging.getLogger().handlers[:] = []  # the console owns the screen
        logging.basicConfig(filename=os.environ.get("KAPOS_LOG", os.devnull), level=logging.INFO)
        asyncio.run(_with_updates(assembly, args, run_with_management(assembly, args, main=Console(assembly).run())))
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        assembly.close()


def _plugins():
    from importlib import metadata  # only when a plugin command is asked for: start-up time

    try:
        return metadata.entry_points(group="kapos.commands")
    except TypeError:  # Python < 3.10 API
        return metadata.entry_points().get("kapos.commands", [])


def _command_of(argv):
    """The subcommand named on the command line (the first word that is not an option)."""
    for word in argv or ():
        if not word.startswith("-"):
            return word
    return None


def build_parser(argv=None):
    """The parser; with `argv`, only the plugin its command needs is imported (`kapos run`
    imports none: the host, diag and release tools cost start-up time)."""
    parser = argparse.ArgumentParser(prog="kapos", description="DIY card terminal firmware and tools")
    parser.add_argument("--version", action="version", version="kapos " + __version__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (and print scenario steps)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_run_parser(sub)
    command = _command_of(argv)
    entries = [] if command == "run" else list(_plugins())
    if command in [entry.name for entry in entries]:
        entries = [entry for entry in entries if entry.name == command]
    for entry in entries:
        entry.load()(sub)
    return parser


def main(argv=None):
    parser = build_parser(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except KaposError as exc:
        print("kapos: error: %s" % exc, file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
