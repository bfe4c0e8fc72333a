"""The `kapos host` subcommand (see docs/host.md)."""

import argparse
import asyncio
import logging
import signal
import sys

from kapos.errors import KaposError

log = logging.getLogger("kapos_tools.host")


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
    p.add_argument("--db", default="kapos-host.db", metavar="FILE",
                   help="SQLite ledger file (default ./kapos-host.db; ':memory:' for none)")
    p.add_argument("--cards", metavar="FILE",
                   help="cards and accounts to load (default: kapos' built-in testcards.toml); "
                        "cards already in the ledger keep their balances")
    p.add_argument("--reset", action="store_true",
                   help="reload balances from --cards even for cards already in the ledger")
    p.add_argument("--daily-limit", type=int, default=200000, metavar="MINOR_UNITS",
                   help="default per-card daily limit (sale + cash + transfer), 200000")
    p.add_argument("--bdk", metavar="HEX",
                   help="DUKPT base derivation key for PIN blocks with a KSN (default: the "
                        "PUBLIC X9.24-3 test BDK the terminals' test keys come from)")
    p.add_argument("--velocity", metavar="COUNT/SECONDS",
                   help="decline (65) a card's debit after COUNT approved debits within SECONDS, e.g. 10/60")
    p.add_argument("--token-key", metavar="HEX",
                   help="key of the closed-loop tokens' anti-clone MAC (default: the public test token key)")
    p.add_argument("--no-mac", action="store_true",
                   help="accept requests without a DUKPT MAC (fields 53 + 64/128); by default a "
                        "request with a missing or bad MAC is answered 63 and changes nothing")
    p.add_argument("--show-ledger", action="store_true",
                   help="print accounts, daily totals, recent transactions and batches; exit")
    p.add_argument("--quiet", action="store_true", help="do not log each message")


def register(subparsers):
    """Entry point of the `kapos.commands` group: adds `kapos host`."""
    p = subparsers.add_parser("host", help="run the reference ISO 8583 host (test cards only)",
                              description="The kapos reference host: a ledger of test "
                                          "accounts answering ISO 8583 over TCP/TLS and serial.")
    add_arguments(p)
    p.set_defaults(func=cmd_host)
    return p


def open_ledger(args):
    from kapos_tools.host.ledger import Ledger

    kwargs = {}
    if args.bdk:
        try:
            kwargs["bdk"] = bytes.fromhex(args.bdk)
        except ValueError:
            raise KaposError("--bdk must be hex")
        if len(kwargs["bdk"]) not in (16, 24, 32):
            raise KaposError("--bdk must be an AES key: 16, 24 or 32 bytes")
    if getattr(args, "velocity", None):
        try:
            count, seconds = (int(x) for x in args.velocity.split("/"))
        except ValueError:
            raise KaposError("--velocity must look like 10/60 (count/seconds)")
        if count < 1 or seconds < 1:
            raise KaposError("--velocity needs a count and seconds of at least 1")
        kwargs["velocity"] = (count, seconds)
    if getattr(args, "token_key", None):
        try:
            kwargs["token_key"] = bytes.fromhex(args.token_key)
        except ValueError:
            raise KaposError("--token-key must be hex")
    ledger = Ledger(args.db, daily_limit=args.daily_limit, **kwargs)
    ledger.load_cards(args.cards, reset=args.reset)
    return ledger


def cmd_host(args):
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
        try:
            asyncio.run(serve(ledger, args))
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        ledger.close()


async def serve(ledger, args, ready=None):
    from kapos.services.transport import PySerialPort, parse_address
    from kapos_tools.host.server import HostServer, tls_server_context

    mac = None
    if not getattr(args, "no_mac", False):
        from kapos_tools.host.mac import HostDukptMac

        mac = HostDukptMac(ledger.bdk)
    server = HostServer(ledger, mac=mac)
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
            bound = await server.start_tcp(host, port, tls)
            print("kapos host listening on %s:%d%s (ledger %s)"
                  % (bound[0], bound[1], " TLS" if tls else "", args.db), flush=True)
        for url in args.serial:
            await server.start_serial(PySerialPort(url, args.baud), baudrate=args.baud)
            print("kapos host serving serial %s at %d baud" % (url, args.baud), flush=True)
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        await server.close()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kapos host", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return cmd_host(args)
    except KaposError as exc:
        print("kapos host: error: %s" % exc, file=sys.stderr)
        return 2
