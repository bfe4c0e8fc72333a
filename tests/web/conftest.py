"""Fixtures of the browser tests (helpers in webstack.py)."""

import os
import sys
import time

import pytest

from webstack import Stack, Webhook, chromium_path

# the host tests' PostgreSQL rig (one server per test process, shared with them)
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration", "host"))
from engines import postgres_server  # noqa: E402,F401  (the fixture)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path):
    """The dashboard's ledger on each engine: an SQLite file, then a fresh PostgreSQL schema
    (skipped with the reason where no PostgreSQL server can be run)."""
    if request.param == "sqlite":
        return str(tmp_path / "host.db")
    return request.getfixturevalue("postgres_server").new_schema()


# One browser per module, not per session: Playwright's sync API keeps an event loop
# running in the main thread, so asyncio.run() in any later test module would fail
# ("cannot be called from a running event loop").
@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make installs it)")
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium on this machine: `make test` as root installs Debian's chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"],
                              env=_browser_env())
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def webhook():
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()


def _running_stack(tmp_path, webhook, **options):
    s = Stack(tmp_path, webhook.url, **options)
    try:
        yield s
    finally:
        s.close()


def _browser_env():
    """The browser's environment without libfaketime (make test-future): Chromium under
    LD_PRELOAD=libfaketime runs its timers off a shifted clock and slows to seconds per
    click; its pages get the shifted date from Playwright's clock instead (_new_pages)."""
    return {name: value for name, value in os.environ.items()
            if name != "LD_PRELOAD" and not name.startswith("FAKETIME")}


def _new_pages(browser):
    """new_page() in a browser context of this test, closed before the servers stop."""
    context = browser.new_context()
    if "FAKETIME" in os.environ:  # the pages' Date reads the host's shifted day, and runs on
        context.clock.install(time=time.time())
    try:
        yield context.new_page
    finally:
        context.close()


@pytest.fixture
def stack(tmp_path, webhook):
    yield from _running_stack(tmp_path, webhook)


@pytest.fixture
def nfc_stack(tmp_path, webhook):
    """The stack on board sim-nfc: a chip slot (insert buttons) and the MFRC522 emulator."""
    yield from _running_stack(tmp_path, webhook, board="sim-nfc")


@pytest.fixture
def pg_stack(tmp_path, webhook, postgres_server):
    """The same stack with the host's ledger on PostgreSQL."""
    yield from _running_stack(tmp_path, webhook, ledger_url=postgres_server.new_schema())


@pytest.fixture
def pages(browser, stack):
    yield from _new_pages(browser)


@pytest.fixture
def pg_pages(browser, pg_stack):
    yield from _new_pages(browser)


@pytest.fixture
def nfc_pages(browser, nfc_stack):
    yield from _new_pages(browser)
