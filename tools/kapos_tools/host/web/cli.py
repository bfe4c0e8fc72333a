"""The dashboard's options of `kapos host` and `kapos host user add` (see docs/web.md).

    kapos host --web 127.0.0.1:8001 [--web-webhook URL] [--web-notify-command CMD]
    kapos host user add NAME --role operator|viewer [--db FILE] [--replace]

Nothing here imports the web libraries until the dashboard is started.
"""

import argparse
import getpass
import os
import sys

from kapos.errors import KaposError


def add_web_arguments(p):
    p.add_argument("--web", metavar="HOST:PORT",
                   help="serve the operations dashboard (docs/web.md), e.g. 127.0.0.1:8001")
    p.add_argument("--web-webhook", metavar="URL", help="POST every new alarm as JSON to this URL")
    p.add_argument("--web-notify-command", metavar="CMD",
                   help="run this command for every new alarm (no shell; the alarm as JSON on stdin)")
    p.add_argument("--web-first-user", action="store_true",
                   help="with no dashboard user yet: create `admin` with a generated password "
                        "written to dashboard-admin.txt beside the ledger (mode 0600)")


def add_user_command(sub, db_help):
    u = sub.add_parser("user", help="dashboard staff: `user add NAME --role operator|viewer`")
    usub = u.add_subparsers(dest="user_command", metavar="{add}")
    a = usub.add_parser("add", help="add (or with --replace re-password) a dashboard user; the "
                                    "password is asked twice, or read from $KAPOS_HOST_USER_PASSWORD")
    a.add_argument("name")
    a.add_argument("--role", choices=("operator", "viewer"), required=True)
    a.add_argument("--replace", action="store_true", help="set a new password / role for an existing user")
    a.add_argument("--db", default=argparse.SUPPRESS, help=db_help)
    a.set_defaults(func=cmd_user_add)


def _password():
    password = os.environ.get("KAPOS_HOST_USER_PASSWORD")
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise KaposError("no terminal to ask the password on: set $KAPOS_HOST_USER_PASSWORD")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise KaposError("the two passwords differ")
    return first


def cmd_user_add(args):
    from kapos_tools.host.cli import open_registry_db
    from kapos_tools.host.db import is_postgresql_url
    from kapos_tools.host.web.users import add_user

    if args.db == ":memory:" or not (is_postgresql_url(args.db) or os.path.exists(args.db)):
        raise KaposError("no ledger at %s: start `kapos host --db %s` once first" % (args.db, args.db))
    db = open_registry_db(args.db)  # the ledger's database (SQLite or PostgreSQL), not a Ledger (keys)
    try:
        if "meta" not in db.tables():
            raise KaposError("%s is not a kapos host ledger" % db.path)
        password = _password()

        class Store:  # what add_user needs of a Ledger
            def __init__(self):
                self.db = db

            def _tx(self):
                return db.transaction()

        add_user(Store(), args.name, args.role, password, replace=args.replace)
    finally:
        db.close()
    print("dashboard user %s (%s) saved in %s" % (args.name, args.role, db.path))
    return 0


async def start_web(ledger, args):
    """The running dashboard when --web was given, else None."""
    if not getattr(args, "web", None):
        return None
    from kapos_tools.host.web.serve import default_admin_file, start_dashboard

    admin_file = default_admin_file(args.db) if getattr(args, "web_first_user", False) else None
    return await start_dashboard(ledger, args.web, webhook=args.web_webhook,
                                 command=args.web_notify_command, admin_file=admin_file)
