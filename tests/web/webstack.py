"""Helpers of the browser tests: a reference host with its dashboard and a simulated terminal with its page,
all on 127.0.0.1 ephemeral ports in one asyncio loop on a background thread, driven by
Playwright on Debian's chromium (no browser is downloaded; `make test` installs chromium).
"""

import asyncio
import json
import os
import queue
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


from kapos.simdata.keys import TEST_BDK

OPERATOR = ("olga", "operator-test-password")
VIEWER = ("vera", "viewer-test-password")


def chromium_path():
    for candidate in (os.environ.get("KAPOS_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


class Webhook:
    """A webhook receiver: every POSTed JSON body lands in `bodies`."""

    def __init__(self):
        self.bodies = queue.Queue()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = min(int(self.headers.get("Content-Length", "0")), 65536)
                outer.bodies.put(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Stack:
    """Host + dashboard + terminal + browser simulator, in a loop on a thread."""

    def __init__(self, tmp_path, webhook_url=None, ledger_url=None, board="sim"):
        self.tmp_path = tmp_path
        self.board = board  # "sim-nfc": the board with the chip slot (insert buttons)
        self.webhook_url = webhook_url
        self.ledger_url = ledger_url  # None: SQLite in tmp_path; else e.g. a PostgreSQL URL
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self._start())

    def call(self, coro, timeout=20):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, fn):
        """Call fn() on the loop's thread (the ledger's connection lives there)."""
        async def wrapped():
            return fn()
        return self.call(wrapped())

    async def _start(self):
        from kapos.harness import Harness
        from kapos_tools.host import HostServer, Ledger
        from kapos_tools.host.mac import HostDukptMac
        from kapos_tools.host.registry import TerminalRegistry
        from kapos_tools.host.web import users
        from kapos_tools.host.web.serve import start_dashboard
        from kapos_tools.websim.app import WebSim
        from kapos_tools.websim.token import load_or_create_token

        self.db_path = self.ledger_url or str(self.tmp_path / "host.db")
        self.ledger = Ledger(self.db_path)
        self.ledger.load_cards()
        self.host = HostServer(self.ledger, mac=HostDukptMac(TEST_BDK),
                               registry=TerminalRegistry(self.ledger.db, auto_enroll=True))
        _, port = await self.host.start_tcp("127.0.0.1", 0)
        users.add_user(self.ledger, OPERATOR[0], "operator", OPERATOR[1])
        users.add_user(self.ledger, VIEWER[0], "viewer", VIEWER[1])
        self.dashboard = await start_dashboard(self.ledger, "127.0.0.1:0", webhook=self.webhook_url)
        data_dir = self.tmp_path / "terminal"
        self.token = load_or_create_token(str(data_dir))
        self.harness = Harness(self.board, data_dir=data_dir, ready_timeout=10, overrides=[
            ("host.reply_delay", "0"), ("host.mode", '"iso8583"'),
            ("host.address", '"127.0.0.1:%d"' % port), ("host.timeout", "5.0")])
        await self.harness.__aenter__()
        self.assembly = self.harness.assembly
        # the simulator's host panel reads a SQLite ledger file only
        self.websim = WebSim(self.assembly, self.token, host_db=None if self.ledger_url else self.db_path)
        self.sim_port = await self.websim.start("127.0.0.1", 0)
        self.sim_url = "http://127.0.0.1:%d" % self.sim_port
        self.dash_url = "http://127.0.0.1:%d" % self.dashboard.port

    async def _stop(self):
        await self.websim.close()
        await self.harness.__aexit__(None, None, None)
        await self.dashboard.close()
        await self.host.close()
        self.ledger.close()

    def close(self):
        try:
            self.call(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


def sim_page(new_page, stack):
    """A browser page on the simulator, unlocked with the terminal's management token."""
    page = new_page()
    page.goto(stack.sim_url + "/")
    page.fill("#token", stack.token)
    page.click("#unlock")
    page.wait_for_selector("#live:not(.off)")
    return page


def dashboard_page(new_page, stack, who=OPERATOR):
    page = new_page()
    page.goto(stack.dash_url + "/")
    page.fill("#user", who[0])
    page.fill("#password", who[1])
    page.click("#login-button")
    page.wait_for_selector("#live:not(.off)")
    return page


def wait_text(page, selector, text, timeout=8000):
    """Wait until the element holds `text` (a locator wait: no script eval, so the pages' CSP holds)."""
    page.locator(selector, has_text=text).wait_for(timeout=timeout)


def wait_screen(page, text, timeout=8000):
    """Wait until the OLED shows `text` (the image's alt is the screen's text)."""
    page.locator('#oled[alt*="%s"]' % text).wait_for(state="attached", timeout=timeout)


def run_async(coro, timeout=20):
    """asyncio.run on a thread of its own: Playwright's sync API keeps a loop running on
    the main thread once a browser test has run."""
    box = {}

    def target():
        try:
            box["result"] = asyncio.run(asyncio.wait_for(coro, timeout))
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout + 5)
    if "error" in box:
        raise box["error"]
    return box.get("result")


def click_keys(page, keys):
    for key in keys:
        page.click('#keypad button[data-key="%s"]' % key)


def start_sale(page, amount, prompt):
    """From the idle screen to the card prompt by clicking: 1 (Sale), the amount, Enter."""
    wait_screen(page, "1 Sale")
    click_keys(page, "1")
    wait_screen(page, "SALE")
    click_keys(page, amount)
    page.click('#keypad button[data-key="enter"]')
    wait_screen(page, prompt)
