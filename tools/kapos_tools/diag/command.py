"""`kapos diag`: a field technician's view of a terminal, over its management channel.

    kapos diag selftest                                   # the terminal on this machine (127.0.0.1:7700)
    kapos diag --connect 10.0.0.7:7700 --manage-token-file pi.token status   # another terminal
    kapos diag --serial /dev/ttyUSB0 logs -n 100          # token from $KAPOS_MANAGE_TOKEN
    kapos diag --board sim selftest --json out.json       # an in-process simulated terminal
    kapos diag --board sim --fault printer_paper_out selftest    # ... with a simulated fault

Exit codes: 0 fine, 1 a check (or the printer, or the card wait) failed, 2 the channel
could not be reached or refused the request (wrong token, busy, not in test mode).
"""

import argparse
import asyncio
import json
import os
import sys
import time

from kapos.app.management import DEFAULT_PORT, FAULTS

from .client import ManagementClient, ManagementError, find_token
from .simrun import InProcessTerminal

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def register(subparsers):
    """Entry point of the `kapos.commands` group: adds `kapos diag`."""
    p = subparsers.add_parser(
        "diag", help="diagnostics over the management channel (self-test, status, logs, ...)",
        description="Talk to a terminal's management channel: self-test, status, logs, counters, "
                    "and interactive keypad, printer and card checks.",
        epilog="Default target: --connect 127.0.0.1:%d (or $KAPOS_MANAGE). Token: --manage-token-file, "
               "$KAPOS_MANAGE_TOKEN, $KAPOS_MANAGE_TOKEN_FILE, else DATA_DIR/manage-token. "
               "Protocol and checks: docs/diagnostics.md." % DEFAULT_PORT)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--connect", metavar="HOST:PORT",
                       help="a terminal's management channel over TCP")
    where.add_argument("--serial", metavar="URL",
                       help="a terminal's management console: a device (/dev/ttyUSB0) or a pyserial URL")
    where.add_argument("--board", metavar="BOARD",
                       help="start a terminal in process on this board (e.g. sim), test mode on")
    p.add_argument("--manage-token-file", metavar="FILE",
                   help="file holding the terminal's management token (default: $KAPOS_MANAGE_TOKEN, "
                        "$KAPOS_MANAGE_TOKEN_FILE, else DATA_DIR/manage-token)")
    p.add_argument("--data-dir", default="var",
                   help="a terminal's data directory on this machine, to find its token (default var)")
    p.add_argument("--token", help="the token itself (works, but shows in ps: warned)")
    p.add_argument("--fault", action="append", default=[], choices=FAULTS,
                   help="with --board: switch on a simulated fault before the command (repeatable)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each reply (default 30)")
    p.set_defaults(func=cmd_diag)
    sub = p.add_subparsers(dest="diag_command", metavar="CHECK")
    sub.required = True

    s = sub.add_parser("selftest", help="run the self-test; exit 1 if any check fails")
    s.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE ('-': stdout)")
    s.set_defaults(diag_run=run_selftest)

    s = sub.add_parser("status", help="state, screen, last result and counters")
    s.add_argument("--json", action="store_true", help="print the raw JSON reply")
    s.set_defaults(diag_run=run_status)

    s = sub.add_parser("logs", help="the terminal's recent log lines (PANs masked)")
    s.add_argument("-n", "--lines", type=int, default=50, help="how many lines (default 50)")
    s.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    s.add_argument("--duration", type=float, help="with --follow: stop after this many seconds")
    s.set_defaults(diag_run=run_logs)

    s = sub.add_parser("counters", help="transaction and error counters")
    s.add_argument("--json", action="store_true", help="print the raw JSON reply")
    s.set_defaults(diag_run=run_counters)

    s = sub.add_parser("keypad", help="echo what the terminal shows while you press its keys")
    s.add_argument("--duration", type=float, help="stop after this many seconds (default: Ctrl-C)")
    s.set_defaults(diag_run=run_keypad)

    s = sub.add_parser("printer", help="print a test page on the terminal's printer")
    s.set_defaults(diag_run=run_printer)

    s = sub.add_parser("card", help="wait for a swipe or a tap and show it (masked)")
    s.add_argument("--timeout", dest="card_timeout", type=float, default=60.0,
                   help="seconds to wait for a card (default 60)")
    s.set_defaults(diag_run=run_card)
    return p


def cmd_diag(args):
    if args.fault and not args.board:
        print("kapos diag: error: --fault simulates a fault on an in-process board: use it with --board sim",
              file=sys.stderr)
        return EXIT_ERROR
    try:
        return asyncio.run(_diag(args))
    except KeyboardInterrupt:
        return EXIT_OK
    except ManagementError as exc:
        print("kapos diag: error: %s" % exc, file=sys.stderr)
        return EXIT_ERROR


async def _diag(args):
    if args.board:
        from kapos.errors import KaposError

        try:
            local = InProcessTerminal(args.board, test_mode=True)
            async with local:
                client = await ManagementClient.open(local.address, token=local.token, timeout=args.timeout)
                try:
                    for fault in args.fault:
                        await client.call("fault", fault=fault, on=True, timeout=args.timeout)
                    return await args.diag_run(client, args, Out())
                finally:
                    await client.close()
        except KaposError as exc:
            raise ManagementError(str(exc))
    if args.serial:
        where = "serial:" + args.serial
    else:
        where = args.connect or os.environ.get("KAPOS_MANAGE") or "127.0.0.1:%d" % DEFAULT_PORT
    try:
        token = find_token(args.token, args.manage_token_file, args.data_dir)
        client = await ManagementClient.open(where, token=token, timeout=min(args.timeout, 10.0))
    except ValueError as exc:
        raise ManagementError(str(exc))
    try:
        return await args.diag_run(client, args, Out())
    finally:
        await client.close()


class Out:
    """rich output, with plain symbols when the terminal cannot show ✓ and ✗."""

    def __init__(self):
        from rich.console import Console

        self.console = Console(highlight=False, soft_wrap=False)
        encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
        unicode_ok = encoding.startswith("utf")
        self.ok_mark = "[green]✓[/]" if unicode_ok else "[green]OK[/]"
        self.bad_mark = "[red]✗[/]" if unicode_ok else "[red]FAIL[/]"

    def print(self, *objects, **kw):
        self.console.print(*objects, **kw)

    def plain(self, text):
        sys.stdout.write(text + "\n")  # never wrapped: scripts grep these lines
        sys.stdout.flush()


def _escape(text):
    from rich.markup import escape

    return escape(str(text))


# ---------------------------------------------------------------- selftest

async def run_selftest(client, args, out):
    from rich.table import Table

    reply = await client.call("selftest", timeout=args.timeout)
    hello = client.hello or {}
    checks = reply["checks"]
    table = Table(title="kapos self-test: board %s, kapos %s" % (
        _escape(hello.get("board", "?")), _escape((hello.get("versions") or {}).get("kapos", "?"))))
    table.add_column("", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("result")
    table.add_column("ms", justify="right", no_wrap=True)
    for check in checks:
        name = check["name"] + (" *" if check.get("essential") else "")
        ms = "" if check.get("ms") is None else "%.1f" % check["ms"]
        table.add_row(out.ok_mark if check["ok"] else out.bad_mark, _escape(name), _escape(check["detail"]), ms)
    out.print(table)
    out.plain("* essential: the terminal cannot take payments without it")
    failed = [c for c in checks if not c["ok"]]
    if args.json:
        report = {"passed": not failed, "failed": [c["name"] for c in failed], "checks": checks,
                  "board": hello.get("board"), "versions": hello.get("versions"), "target": client.where,
                  "faults": list(getattr(args, "fault", []) or []),
                  "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        text = json.dumps(report, indent=2) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            with open(args.json, "w") as f:
                f.write(text)
    if failed:
        out.plain("FAIL: %d of %d checks failed: %s" % (
            len(failed), len(checks), "; ".join("%s (%s)" % (c["name"], c["detail"]) for c in failed)))
        return EXIT_FAILED
    out.plain("PASS: all %d checks passed" % len(checks))
    return EXIT_OK


# ---------------------------------------------------------------- status, counters, logs

async def run_status(client, args, out):
    from rich.panel import Panel
    from rich.table import Table

    reply = await client.call("status", timeout=args.timeout)
    if args.json:
        print(json.dumps(reply, indent=2))
        return EXIT_OK
    hello = client.hello or {}
    out.plain("terminal %s  board %s  kapos %s%s" % (
        client.where, hello.get("board", "?"), (hello.get("versions") or {}).get("kapos", "?"),
        "  (test mode)" if reply.get("test_mode") else ""))
    out.plain("state %s   last result %s" % (reply["state"], reply.get("last_result") or "-"))
    versions = hello.get("versions") or {}
    if "update_running" in versions:  # kapos.update: docs/updates.md
        out.plain("software %s   previous %s   last update %s   pending %s   parameters %s" % tuple(
            _escape(str(versions.get("update_" + k, "-")))
            for k in ("running", "previous", "last_update", "pending", "parameters")))
    out.print(Panel(_escape(reply.get("screen") or "(nothing drawn yet)"), title="screen", expand=False))
    table = Table(title="counters")
    table.add_column("counter")
    table.add_column("value", justify="right")
    for name, value in sorted((reply.get("counters") or {}).items()):
        table.add_row(_escape(name), str(value))
    out.print(table)
    return EXIT_OK


async def run_counters(client, args, out):
    from rich.table import Table

    reply = await client.call("counters", timeout=args.timeout)
    if args.json:
        print(json.dumps(reply["counters"], indent=2))
        return EXIT_OK
    table = Table(title="counters")
    table.add_column("counter")
    table.add_column("value", justify="right")
    for name, value in sorted(reply["counters"].items()):
        table.add_row(_escape(name), str(value))
    out.print(table)
    return EXIT_OK


async def run_logs(client, args, out):
    reply = await client.call("logs", n=max(0, min(args.lines, 1000)), timeout=args.timeout)
    for line in reply["lines"]:
        out.plain(line)
    if not args.follow:
        if not reply["lines"]:
            out.plain("(no log lines kept yet)")
        return EXIT_OK
    since = reply["next"]
    loop = asyncio.get_running_loop()
    end = loop.time() + args.duration if args.duration else None
    while end is None or loop.time() < end:
        await asyncio.sleep(0.5)
        reply = await client.call("logs", since=since, n=1000, timeout=args.timeout)
        for line in reply["lines"]:
            out.plain(line)
        since = reply["next"]
    return EXIT_OK


# ---------------------------------------------------------------- interactive checks

async def run_keypad(client, args, out):
    out.plain("Press keys on the terminal; every change of its screen is shown here. For a key\n"
              "by key echo open the key test (MENU, technician PIN, Key test). Ctrl-C stops.")
    loop = asyncio.get_running_loop()
    end = loop.time() + args.duration if args.duration else None
    last = None
    while end is None or loop.time() < end:
        status = await client.call("status", timeout=args.timeout)
        shown = (status["state"], status.get("screen") or "")
        if shown != last:
            last = shown
            out.plain("[%s] %s" % (shown[0], " | ".join(shown[1].splitlines())))
        await asyncio.sleep(0.05)
    return EXIT_OK


async def run_printer(client, args, out):
    try:
        reply = await client.call("printer_test", timeout=max(args.timeout, 35.0))
    except ManagementError as exc:
        if exc.reply is None:
            raise
        out.plain("FAIL: the test page was not printed: %s" % exc)
        return EXIT_FAILED
    out.plain("PASS: test page printed (printer status: %s); check that every line is readable"
              % (reply.get("status") or "unknown"))
    return EXIT_OK


CARD_STATES = ("ACCOUNT", "CONFIRM", "CARD_TEST")


async def run_card(client, args, out):
    """Wait for a card read: a screen in the card test (or the account / confirm screen a
    swipe leads to), or a new transaction record; show it (everything arrives masked)."""
    out.plain("Swipe or tap a card on the terminal (card test: MENU, technician PIN, Card test;\n"
              "or start a transaction). Waiting %.0f s." % args.card_timeout)
    records = (await client.call("records", n=1, timeout=args.timeout))["records"]
    seen_record = _record_key(records[-1]) if records else None
    status = await client.call("status", timeout=args.timeout)
    seen_screen = status.get("screen")
    loop = asyncio.get_running_loop()
    end = loop.time() + args.card_timeout
    while loop.time() < end:
        await asyncio.sleep(0.1)
        status = await client.call("status", timeout=args.timeout)
        if status["state"] in CARD_STATES and status.get("screen") != seen_screen:
            out.plain("[%s] %s" % (status["state"], " | ".join((status.get("screen") or "").splitlines())))
            return EXIT_OK
        seen_screen = status.get("screen")
        records = (await client.call("records", n=1, timeout=args.timeout))["records"]
        if records and _record_key(records[-1]) != seen_record:
            r = records[-1]
            out.plain("card %s %s (%s): %s %s, %s" % (r.get("brand") or "", r.get("card") or "-",
                                                     r.get("entry") or "-", r.get("type"), r.get("outcome"),
                                                     r.get("text") or ""))
            return EXIT_OK
    out.plain("FAIL: no card seen within %.0f s" % args.card_timeout)
    return EXIT_FAILED


def _record_key(record):
    return (record.get("ref"), record.get("time"), record.get("type"))


def main(argv=None):
    """`python -m kapos_tools.diag ...`: the same as `kapos diag ...`."""
    parser = argparse.ArgumentParser(prog="kapos")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    register(sub)
    args = parser.parse_args(["diag"] + list(sys.argv[1:] if argv is None else argv))
    return args.func(args)
