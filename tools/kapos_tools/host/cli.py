"""The `kapos host` subcommand (see docs/host.md).

    kapos host [options]                                   # serve
    kapos host enroll --terminal KAPOS001 --merchant M --ik-id HEX16 [--replace]
    kapos host terminals | disable --terminal T | enable --terminal T
"""

import argparse
import asyncio
import logging
import os
import signal
import sys

from kapos.errors import KaposError

from kapos_tools.host.limits import (DEFAULT_FRAME_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
                                     DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_IN_FLIGHT,
                                     DEFAULT_MAX_PER_PEER)

log = logging.getLogger("kapos_tools.host")


def _bounded(convert, low, high, not_a, out_of_range):
    """An argparse type: `convert`(text) within low..high, else the message `not_a` (of
    the text) or `out_of_range` (of the text: nan and inf are out of any range too)."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(not_a % text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(out_of_range % text)
        return value
    return parse


# --group-wait: a longer wait only adds latency (a group fills by 64)
_group_wait_ms = _bounded(float, 0.0, 100.0, "%r is not a number of milliseconds",
                          "%s ms: the group wait is 0 to 100 ms")
_max_in_flight = _bounded(int, 1, 256, "%r is not a whole number of messages",
                          "%s: at most 1 to 256 messages of one connection in flight")


def add_arguments(p):
    p.add_argument("--listen", default="127.0.0.1:8583", metavar="HOST:PORT",
                   help="TCP address to listen on (default 127.0.0.1:8583; port 0 picks one; "
                        "'off' for serial only)")
    p.add_argument("--tls-cert", metavar="PEM", help="server certificate chain: serve TLS")
    p.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    p.add_argument("--serial", action="append", default=[], metavar="URL_OR_DEVICE",
                   help="also serve a serial line: a device (/dev/ttyUSB0) or a pyserial URL "
                        "(socket://..., rfc2217://...); repeatable")
    p.add_argument("--baud", type=int, default=115200, help="serial baud rate (115200)")
    p.add_argument("--db", default=os.environ.get("KAPOS_HOST_DB", "kapos-host.db"),
                   metavar="FILE_OR_URL",
                   help="the ledger: an SQLite file (default ./kapos-host.db; ':memory:' for "
                        "none) or postgresql://user@host/dbname (several host processes may "
                        "share one; put the password in ~/.pgpass, not here); $KAPOS_HOST_DB")
    p.add_argument("--group-commit", type=int, default=64, metavar="N",
                   help="messages per ledger transaction at most (default 64; 1: one commit "
                        "per message); replies leave only after their commit")
    p.add_argument("--group-wait", type=_group_wait_ms, default=1.0, metavar="MS",
                   help="under load (the last commit had more than one message), wait up to "
                        "MS milliseconds for more before a commit (default 1; 0: never)")
    p.add_argument("--max-in-flight", type=_max_in_flight, default=DEFAULT_MAX_IN_FLIGHT,
                   metavar="N",
                   help="messages of one connection in the group commit at once (default %d, "
                        "1-256); the host reads no more from it until one is answered"
                   % DEFAULT_MAX_IN_FLIGHT)
    p.add_argument("--cards", metavar="FILE",
                   help="cards and accounts to load (default: kapos' built-in testcards.toml); "
                        "cards already in the ledger keep their balances")
    p.add_argument("--reset", action="store_true",
                   help="reload balances from --cards even for cards already in the ledger")
    p.add_argument("--daily-limit", type=int, default=200000, metavar="MINOR_UNITS",
                   help="default per-card daily limit (sale + cash + transfer), 200000")
    p.add_argument("--bdk", metavar="HEX",
                   help="DUKPT base derivation key (default: the one in the key file, at first "
                        "the PUBLIC X9.24-3 test BDK); visible in ps: prefer --bdk-file or "
                        "KAPOS_HOST_BDK")
    p.add_argument("--bdk-file", metavar="FILE",
                   help="the BDK from a file: hex, or `kapos keys new-bdk` JSON")
    p.add_argument("--key-file", metavar="FILE",
                   help="the host's keys (PVV key, BDK, token key), mode 0600, created when "
                        "missing (default: <db>.keys; none for --db :memory:)")
    p.add_argument("--auto-enroll", action="store_true",
                   help="enrol an unknown terminal id on its first good message, bound to its "
                        "KSN's IK ID (default: only terminals enrolled with `kapos host enroll`)")
    p.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT, metavar="SECONDS",
                   help="close a connection silent this long between messages (%(default)s)")
    p.add_argument("--frame-timeout", type=float, default=DEFAULT_FRAME_TIMEOUT,
                   metavar="SECONDS",
                   help="close a connection that leaves a frame or TLS handshake unfinished "
                        "this long (%(default)s)")
    p.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS, metavar="N",
                   help="open connections in all (%(default)s; kept below the open-file limit)")
    p.add_argument("--max-per-peer", type=int, default=DEFAULT_MAX_PER_PEER, metavar="N",
                   help="open connections per client address (%(default)s)")
    p.add_argument("--velocity", metavar="COUNT/SECONDS",
                   help="decline (65) a card's debit after COUNT approved debits within SECONDS, e.g. 10/60")
    p.add_argument("--token-key", metavar="HEX",
                   help="key of the closed-loop tokens' anti-clone MAC (default: the one in the "
                        "key file, at first the public test token key); prefer "
                        "--token-key-file or KAPOS_HOST_TOKEN_KEY")
    p.add_argument("--token-key-file", metavar="FILE", help="the token key from a file (hex)")
    p.add_argument("--no-mac", action="store_true",
                   help="accept requests without a DUKPT MAC (fields 53 + 64/128); by default a "
                        "request with a missing or bad MAC is answered 63 and changes nothing")
    p.add_argument("--show-ledger", action="store_true",
                   help="print accounts, daily totals, recent transactions and batches; exit")
    p.add_argument("--quiet", action="store_true", help="do not log each message")
    from kapos_tools.host.web.cli import add_web_arguments

    add_web_arguments(p)  # the operations dashboard (docs/web.md)
    __import__("kapos_tools.host.update_repo").host.update_repo.add_arguments(p)  # docs/updates.md
    add_registry_commands(p)


def add_registry_commands(p):
    """`kapos host enroll | terminals | disable | enable`: the terminal registry."""
    sub = p.add_subparsers(dest="host_command", metavar="{enroll,terminals,disable,enable,user}")
    db_help = "the ledger file (default: the host's --db)"
    e = sub.add_parser("enroll", help="enrol a terminal: its id, merchant and DUKPT IK ID",
                       description="Enrol a terminal in the host's registry. Its messages "
                                   "must then carry KSNs of that IK ID.")
    e.add_argument("--terminal", required=True, help="terminal id (field 41), e.g. KAPOS001")
    e.add_argument("--merchant", required=True, help="merchant id (field 42)")
    e.add_argument("--ik-id", metavar="HEX16",
                   help="the Initial Key ID the terminal was loaded with: the left 16 hex "
                        "digits of its KSN (`kapos keys status`)")
    e.add_argument("--bdk-id", metavar="HEX8",
                   help="instead of --ik-id: the BDK ID of `kapos keys load` (IK ID = BDK ID + "
                        "the device id of the terminal id; test keys: 12345678)")
    e.add_argument("--replace", action="store_true",
                   help="re-enrol a terminal already enrolled (after re-keying it): resets "
                        "its KSN counter")
    e.add_argument("--db", default=argparse.SUPPRESS, help=db_help)
    e.set_defaults(func=cmd_enroll)
    t = sub.add_parser("terminals", help="list the enrolled terminals")
    t.add_argument("--db", default=argparse.SUPPRESS, help=db_help)
    t.set_defaults(func=cmd_terminals)
    for name, status in (("disable", "disabled"), ("enable", "active")):
        d = sub.add_parser(name, help="%s a terminal: its messages are %s" % (
            name, "refused (63)" if status == "disabled" else "served again"))
        d.add_argument("--terminal", required=True)
        d.add_argument("--db", default=argparse.SUPPRESS, help=db_help)
        d.set_defaults(func=cmd_set_status, status=status)
    from kapos_tools.host.web.cli import add_user_command

    add_user_command(sub, db_help)


def register(subparsers):
    """Entry point of the `kapos.commands` group: adds `kapos host`."""
    p = subparsers.add_parser("host", help="run the reference ISO 8583 host (test cards only)",
                              description="The kapos reference host: a ledger of test "
                                          "accounts answering ISO 8583 over TCP/TLS and serial.")
    add_arguments(p)
    p.set_defaults(func=cmd_host)
    return p


def open_registry_db(path):
    from kapos_tools.host import db as ledger_db
    from kapos_tools.host.keyfile import create_private, private_umask

    if path == ":memory:":
        raise KaposError("the registry of an in-memory ledger cannot be changed from outside")
    try:
        if not ledger_db.is_postgresql_url(path):
            create_private(path)
        with private_umask():
            return ledger_db.connect(path)
    except OSError as exc:
        raise KaposError("cannot open the ledger %s: %s" % (path, exc))


def _registry(args):
    from kapos_tools.host.registry import TerminalRegistry

    db = open_registry_db(args.db)
    return db, TerminalRegistry(db)


def cmd_enroll(args):
    from kapos_tools.host.registry import parse_ik_id

    ik_id = parse_ik_id(args.ik_id, args.terminal, args.bdk_id)  # before touching the ledger
    db, registry = _registry(args)
    try:
        registry.enroll(args.terminal, args.merchant, ik_id, replace=args.replace)
    finally:
        db.close()
    print("enrolled %s (merchant %s, IK ID %s) in %s" % (args.terminal, args.merchant.strip(),
                                                          ik_id.hex().upper(), args.db))
    return 0


def cmd_terminals(args):
    import time

    db, registry = _registry(args)
    try:
        rows = registry.terminals()
    finally:
        db.close()
    if not rows:
        print("no terminals enrolled in %s" % args.db)
    for row in rows:
        # version and self-test as the terminal last reported them (48 SV, ST of its 0800)
        print("%-8s  %-15s  %-16s  %-8s  last counter %-10d  %s %s  version %s  self-test %s" % (
            row["terminal_id"], row["merchant_id"] or "-", row["ik_id"] or "-", row["status"],
            row["last_counter"], row["source"],
            time.strftime("%Y-%m-%d %H:%M", time.localtime(row["enrolled"])),
            row["version"] or "-", row["selftest"] or "-"))
    return 0


def cmd_set_status(args):
    db, registry = _registry(args)
    try:
        registry.set_status(args.terminal, args.status)
    finally:
        db.close()
    print("%s is %s" % (args.terminal, args.status))
    return 0


def load_keys(args):
    """The host's keys: key file (created when missing), options, environment."""
    from kapos.simdata.keys import TEST_BDK, TEST_TOKEN_KEY
    from kapos_tools.host import keyfile

    bdk = keyfile.secret_option(args, "bdk", "KAPOS_HOST_BDK", "bdk")
    token_key = keyfile.secret_option(args, "token_key", "KAPOS_HOST_TOKEN_KEY", "token_key")
    path = getattr(args, "key_file", None) or keyfile.default_key_file(args.db)
    if path is None and "://" in args.db:
        raise keyfile.KeyFileError("a PostgreSQL ledger needs --key-file: the host's keys, the "
                                   "same file for every host process on that database")
    legacy = None
    if path and not os.path.exists(path):
        legacy, has_pvvs = keyfile.legacy_pvv_key(args.db)
        if legacy is None and has_pvvs:
            raise keyfile.KeyFileError(
                "key file %s is missing but the ledger %s has PINs made under its PVV key: "
                "restore the key file (or start a new ledger)" % (path, args.db))
    new = bool(path) and not os.path.exists(path)
    keys = keyfile.load_host_keys(path, legacy, bdk, token_key, TEST_BDK, TEST_TOKEN_KEY)
    keys.created = path if new else None
    if keys.bdk == TEST_BDK:
        log.warning("using the PUBLIC test BDK: test cards and test terminals only")
    return keys


def open_ledger(args):
    from kapos_tools.host.ledger import Ledger

    keys = load_keys(args)
    kwargs = {"bdk": keys.bdk, "token_key": keys.token_key, "pvv_key": keys.pvv_key}
    if getattr(args, "velocity", None):
        try:
            count, seconds = (int(x) for x in args.velocity.split("/"))
        except ValueError:
            raise KaposError("--velocity must look like 10/60 (count/seconds)")
        if count < 1 or seconds < 1:
            raise KaposError("--velocity needs a count and seconds of at least 1")
        kwargs["velocity"] = (count, seconds)
    from kapos_tools.host.ledger import LedgerKeyError

    try:
        ledger = Ledger(args.db, daily_limit=args.daily_limit,
                        keys_are_new=keys.created is not None, **kwargs)
    except LedgerKeyError:
        if keys.created:  # a key file just made for a ledger it does not fit: not kept
            os.unlink(keys.created)
        raise
    ledger.load_cards(args.cards, reset=args.reset)
    return ledger


def limits_from(args):
    from kapos_tools.host.limits import Limits

    try:
        return Limits(idle_timeout=args.idle_timeout, frame_timeout=args.frame_timeout,
                      max_connections=args.max_connections, max_per_peer=args.max_per_peer)
    except ValueError as exc:
        raise KaposError(str(exc))


def cmd_host(args):
    limits_from(args)  # bad limits stop start-up before anything is opened
    try:
        ledger = open_ledger(args)
    except (OSError, ValueError, KeyError) as exc:
        raise KaposError("cannot open the ledger: %s" % exc)
    try:
        if args.show_ledger:
            print(ledger.show())
            return 0
        if not args.quiet:
            log.setLevel(logging.INFO)
            if not logging.getLogger().handlers:
                logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if (args.tls_cert is None) != (args.tls_key is None):
            raise KaposError("--tls-cert and --tls-key go together")
        if args.listen == "off" and not args.serial:
            raise KaposError("nothing to serve: --listen off and no --serial")
        __import__("kapos_tools.host.update_repo").host.update_repo.serve_from_args(args)  # docs/updates.md
        try:
            asyncio.run(serve(ledger, args))
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        ledger.close()


async def serve(ledger, args, ready=None):
    from kapos.io.transport import PySerialPort, parse_address
    from kapos_tools.host.db import redact
    from kapos_tools.host.server import HostServer, tls_server_context

    mac = None
    if not getattr(args, "no_mac", False):
        from kapos_tools.host.mac import HostDukptMac

        mac = HostDukptMac(ledger.bdk)
    from kapos_tools.host.registry import TerminalRegistry

    registry = TerminalRegistry(ledger.db, auto_enroll=getattr(args, "auto_enroll", False))
    server = HostServer(ledger, mac=mac, registry=registry, limits=limits_from(args),
                        group_commit=getattr(args, "group_commit", 64),
                        group_wait=getattr(args, "group_wait", 1.0) / 1000.0,
                        max_in_flight=getattr(args, "max_in_flight", DEFAULT_MAX_IN_FLIGHT))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        if args.listen != "off":
            host, port = parse_address(args.listen)
            tls = tls_server_context(args.tls_cert, args.tls_key) if args.tls_cert else None
            try:
                bound = await server.start_tcp(host, port, tls)
            except OSError as exc:  # a port in use is one line, not a traceback
                from kapos.app.startup import bind_error

                raise bind_error("host", host, port, exc, "pass --listen %s:PORT (make run HOST_ADDR=%s:PORT)"
                                 % (host, host))
            print("kapos host listening on %s:%d%s (ledger %s)"
                  % (bound[0], bound[1], " TLS" if tls else "", redact(args.db)), flush=True)
        for url in args.serial:
            await server.start_serial(PySerialPort(url, args.baud), baudrate=args.baud)
            print("kapos host serving serial %s at %d baud" % (url, args.baud), flush=True)
        from kapos_tools.host.web.cli import start_web

        web = await start_web(ledger, args)  # --web: the dashboard, in this process and loop
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        if "web" in locals() and web is not None:
            await web.close()
        await server.close()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kapos host", description=__doc__)
    add_arguments(parser)
    parser.set_defaults(func=cmd_host)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except KaposError as exc:
        print("kapos host: error: %s" % exc, file=sys.stderr)
        return 2
