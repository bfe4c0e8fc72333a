"""`kapos host` as a program: register() for the kapos.commands entry point, a real
server process on an ephemeral port, --show-ledger."""

import argparse
import asyncio
import os
import signal
import subprocess
import sys

from hostkit import MERCHANT, TERMINAL, new_ledger, request, run, swipe
from kapos.io.host_link import HostAuthorizer
from kapos.io.journal import Journal
from kapos.io.transport import TcpTransport
from kapos_tools.host import register

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def host_command(*args):
    return [sys.executable, "-m", "kapos_tools.host"] + list(args)


def test_register_adds_the_host_subcommand():
    parser = argparse.ArgumentParser(prog="kapos")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["host", "--listen", "127.0.0.1:0", "--db", "x.db", "--serial",
                              "/dev/ttyUSB0", "--show-ledger"])
    assert args.command == "host" and args.listen == "127.0.0.1:0" and args.db == "x.db"
    assert args.serial == ["/dev/ttyUSB0"] and args.show_ledger and callable(args.func)
    defaults = parser.parse_args(["host"])
    assert defaults.listen == "127.0.0.1:8583" and defaults.cards is None


def _host_parser():
    parser = argparse.ArgumentParser(prog="kapos")
    register(parser.add_subparsers(dest="command"))
    return parser


def _refused(parser, option, values, capsys):
    """Each of `values` for `option` stops the command line with a message naming it."""
    for bad in values:
        try:
            parser.parse_args(["host", option, bad])
        except SystemExit as exc:
            assert exc.code == 2
        else:
            raise AssertionError("%s %s was accepted" % (option, bad))
        assert option in capsys.readouterr().err


def test_group_wait_is_a_bounded_number_of_milliseconds(capsys):
    parser = _host_parser()
    assert parser.parse_args(["host"]).group_wait == 1.0
    assert parser.parse_args(["host", "--group-wait", "0"]).group_wait == 0.0
    # inf would hold every group for ever
    _refused(parser, "--group-wait", ("-1", "101", "inf", "nan", "soon"), capsys)


def test_max_in_flight_is_a_bounded_count_handed_to_the_server(capsys, monkeypatch):
    from kapos_tools.host import cli, server as server_module

    parser = _host_parser()
    assert parser.parse_args(["host"]).max_in_flight == 16
    _refused(parser, "--max-in-flight", ("0", "257", "-3", "2.5", "many"), capsys)
    made = {}

    class Built(Exception):
        pass

    def capture(ledger, **kw):
        made.update(kw)
        raise Built()

    monkeypatch.setattr(server_module, "HostServer", capture)
    args = parser.parse_args(["host", "--db", ":memory:", "--max-in-flight", "4", "--no-mac"])
    ledger = new_ledger()
    try:
        asyncio.run(cli.serve(ledger, args))
    except Built:
        pass
    assert made["max_in_flight"] == 4


def test_host_process_serves_and_shows_its_ledger(tmp_path):
    db = str(tmp_path / "host.db")
    proc = subprocess.Popen(host_command("--listen", "127.0.0.1:0", "--db", db, "--no-mac",
                                         "--auto-enroll"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        line = proc.stdout.readline().decode()
        assert line.startswith("kapos host listening on 127.0.0.1:"), line
        port = int(line.split()[4].rsplit(":", 1)[1])

        async def sale():
            journal = Journal(str(tmp_path / "journal"))
            auth = HostAuthorizer(TcpTransport("127.0.0.1", port), journal, TERMINAL, MERCHANT,
                                  timeout=3.0)
            await auth.start()
            reply = await auth.authorize(request(1, "sale", 4321, swipe("visa-debit"),
                                                 pin="1234"))
            await auth.aclose()
            return reply

        assert run(sale())["approved"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert b"0200 KAPOS001" in err  # one log line per message
    shown = subprocess.run(host_command("--db", db, "--show-ledger"), capture_output=True,
                           text=True, cwd=ROOT, timeout=30)
    assert shown.returncode == 0
    assert "411111******1111" in shown.stdout and "95679" in shown.stdout
    assert "4111111111111111" not in shown.stdout  # masked everywhere
    assert "consistency: ok" in shown.stdout
