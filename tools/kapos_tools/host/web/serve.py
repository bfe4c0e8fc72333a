"""Run the dashboard with uvicorn in the running asyncio loop (the host's, or its own).

    web = await start_dashboard(ledger, "127.0.0.1:8001", webhook=URL, command=CMD)
    ...; await web.close()
"""

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket

import uvicorn

from kapos.errors import KaposError

from kapos_tools.host.web import users
from kapos_tools.host.web.alarms import BadMacHandler, Notifier, Watcher
from kapos_tools.host.web.app import Dashboard
from kapos_tools.host.web.ops import Operations

log = logging.getLogger("kapos_tools.host.web")


def parse_web_address(text):
    host, sep, port = (text or "").rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise KaposError("--web wants HOST:PORT, e.g. 127.0.0.1:8001 (port 0 picks one)")
    return host.strip("[]"), int(port)


def is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside someone else's loop: the host (or the terminal) owns SIGINT / SIGTERM."""

    def capture_signals(self):
        return contextlib.nullcontext()


class RunningDashboard:
    def __init__(self, server, task, watcher, dashboard, handler, port, admin_file):
        self.server = server
        self.task = task
        self.watcher = watcher
        self.dashboard = dashboard
        self.handler = handler
        self.port = port
        self.admin_file = admin_file

    async def close(self):
        logging.getLogger("kapos_tools.host").removeHandler(self.handler)
        self.dashboard.end_streams()
        self.server.should_exit = True
        await asyncio.gather(self.task, return_exceptions=True)
        await self.watcher.close()


async def start_dashboard(ledger, address, webhook=None, command=None, interval=0.2, admin_file=None):
    host, port = parse_web_address(address)
    if not is_loopback(host):
        log.warning("the dashboard on %s is plain HTTP: put a TLS proxy in front of it", host)
    ops = Operations(ledger)
    created = None
    if admin_file is not None:
        created = users.first_admin(ledger, admin_file)
    elif users.count(ledger) == 0:
        log.warning("the dashboard has no users yet: add one with `kapos host user add`")
    try:
        notifier = Notifier(webhook, command)
    except ValueError as exc:
        raise KaposError(str(exc))
    dashboard = Dashboard(ops)
    watcher = Watcher(ops, notifier, interval,
                      on_alarm=lambda alarm: dashboard.publish("alarm", alarm))
    known = {"txns": ops.watermark("txns")}

    def after_scan():  # new transactions also refresh the live views
        last = ledger.db.execute("SELECT COALESCE(MAX(id), 0) FROM txns").fetchone()[0]
        if last != known["txns"]:
            known["txns"] = last
            dashboard.publish("change", {"what": "txns"})

    scan = watcher.scan
    watcher.scan = lambda: (scan(), after_scan())[0]
    handler = BadMacHandler(watcher.pending_log)
    logging.getLogger("kapos_tools.host").addHandler(handler)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise KaposError("the dashboard cannot listen on %s: %s" % (address, exc.strerror or exc))
    sock.listen(64)
    sock.setblocking(False)
    config = uvicorn.Config(dashboard.app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=1, limit_concurrency=200, h11_max_incomplete_event_size=16384)
    server = EmbeddedServer(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    watcher.start()
    bound = sock.getsockname()[1]
    print("kapos host dashboard on http://%s:%d/%s" % (host if ":" not in host else "[%s]" % host, bound,
          (" (first user: see %s)" % created) if created else ""), flush=True)
    return RunningDashboard(server, task, watcher, dashboard, handler, bound, created)


def default_admin_file(db_path):
    if db_path == ":memory:":
        return None
    return os.path.join(os.path.dirname(os.path.abspath(db_path)), "dashboard-admin.txt")
