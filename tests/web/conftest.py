"""Fixtures of the browser tests (helpers in webstack.py)."""

import pytest

from webstack import Stack, Webhook, chromium_path


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make installs it)")
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium on this machine: `make test` as root installs Debian's chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
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


@pytest.fixture
def stack(tmp_path, webhook):
    s = Stack(tmp_path, webhook.url)
    try:
        yield s
    finally:
        s.close()




@pytest.fixture
def pages(browser, stack):
    """new_page() in a context of this test, closed before the servers stop."""
    context = browser.new_context()
    try:
        yield context.new_page
    finally:
        context.close()
