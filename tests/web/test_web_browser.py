"""The two web pages in a real headless Chromium: a sale by clicks, alarms live on the
dashboard and at the webhook, a top-up seen by the next balance inquiry, roles and CSRF."""

import io
import time

from PIL import Image

from webstack import VIEWER, click_keys, dashboard_page, sim_page, start_sale, wait_screen, wait_text


def test_a_sale_done_by_clicking_the_keypad_and_a_card_button_ends_with_the_receipt_on_the_page(pages, stack):
    page = sim_page(pages, stack)
    start_sale(page, "1250", "Swipe or tap card")
    page.click('button[data-card="visa-debit"]')
    wait_screen(page, "1 Debit")
    click_keys(page, "1")
    wait_screen(page, "PIN:")
    page.keyboard.type("1234")  # the PC keyboard is the keypad too
    page.keyboard.press("Enter")
    wait_text(page, "#receipt", "APPROVED", timeout=30000)
    receipt = page.inner_text("#receipt")
    assert "EUR 12.50" in receipt and "************1111" in receipt
    # the OLED is the terminal's own frame, pixel for pixel
    png = page.request.get(stack.sim_url + "/frame.png").body()  # with the page's session cookie
    served = Image.open(io.BytesIO(png)).convert("1")
    shown = stack.run(lambda: stack.assembly.platform.get("display").image.convert("1"))
    assert served.size == (128, 64) and served.tobytes() == shown.tobytes()
    # the host's panel shows the same transaction, approved, card masked
    wait_text(page, "#host td", "sale", timeout=15000)
    host = page.inner_text("#host")
    assert "sale" in host and "****1111" in host and "4111111111111111" not in host


def test_an_alarm_raised_on_the_terminal_appears_on_the_dashboard_within_a_second_and_the_webhook_gets_it(
        pages, stack, webhook):
    dash = dashboard_page(pages, stack)
    sim = sim_page(pages, stack)
    assert dash.locator("#alarms tbody tr").count() == 0
    # three unreadable swipes within a minute (one sale asks again after each): the
    # terminal's anomaly monitor sends a 0620
    wait_screen(sim, "1 Sale")
    click_keys(sim, "1")
    wait_screen(sim, "SALE")
    click_keys(sim, "100")
    sim.click('#keypad button[data-key="enter"]')
    for attempt in range(3):
        wait_screen(sim, "Swipe or tap")
        started = time.monotonic()
        sim.click('button[data-card="malformed"]')
        if attempt < 2:
            wait_screen(sim, "Card read error")
    dash.wait_for_selector('#alarms tbody tr[data-kind="anomaly"]', timeout=1000)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, elapsed
    body = webhook.bodies.get(timeout=5)
    assert body["alarm"]["kind"] == "anomaly" and body["alarm"]["terminal"] == "KAPOS001"
    assert "read" in body["alarm"]["detail"]
    # acknowledged by the operator, with the name in the audit log
    dash.click("#alarms button.ack")
    dash.wait_for_selector("#alarms tbody tr.acked")
    wait_text(dash, "#audit", "ack-alarm")


def test_a_top_up_from_the_dashboard_shows_in_the_next_balance_inquiry(pages, stack):
    top_up_then_balance_inquiry(pages, stack)


def test_on_postgresql_a_top_up_shows_in_the_next_balance_inquiry_and_the_terminal_its_version(
        pg_pages, pg_stack):
    from kapos import __version__

    assert pg_stack.ledger.db.engine == "postgresql"
    dash = top_up_then_balance_inquiry(pg_pages, pg_stack)
    # the terminals view: what the terminal's sign-on (0800, 48 SV and ST) said of itself
    wait_text(dash, '#terminals tr[data-terminal="KAPOS001"] td.version', __version__)
    # the start-up self-test's result, reported after the sign-on (the sim board passes)
    wait_text(dash, '#terminals tr[data-terminal="KAPOS001"] td.selftest.good', "passed")
    assert pg_stack.call(pg_stack.assembly.authorizer.report_selftest(["printer"]))
    dash.reload()
    wait_text(dash, '#terminals tr[data-terminal="KAPOS001"] td.selftest.bad', "FAILED: printer")


def top_up_then_balance_inquiry(pages, stack):
    dash = dashboard_page(pages, stack)
    row = dash.locator('#accounts tbody tr[data-name="TEST/MC CREDIT"]')
    row.locator("input.amount").fill("5000")
    row.locator("button.topup").click()
    wait_text(dash, '#accounts tr[data-name="TEST/MC CREDIT"] td.balance', "2550.00")
    assert not stack.run(stack.ledger.check)
    sim = sim_page(pages, stack)
    wait_screen(sim, "1 Sale")
    click_keys(sim, "4")
    wait_screen(sim, "Swipe or tap card")
    sim.click('button[data-card="mc-credit"]')
    click_keys(sim, "2")
    wait_screen(sim, "PIN:")
    click_keys(sim, "4321")
    sim.click('#keypad button[data-key="enter"]')
    wait_screen(sim, "Balance 2550.00", timeout=30000)
    audit = stack.run(stack.dashboard.dashboard.ops.audit_log)
    assert any(a["action"] == "topup" and a["user"] == "olga" and "5000" in a["detail"] for a in audit)
    return dash


def test_a_viewer_cannot_top_up(pages, stack):
    dash = dashboard_page(pages, stack, VIEWER)
    assert not dash.locator('#accounts button.topup').first.is_visible()
    before = stack.run(lambda: stack.ledger.balance("5555555555554444"))
    status = dash.evaluate("""async () => {
        const csrf = document.querySelector('meta[name="csrf"]').content;
        const r = await fetch('/api/topup', {method: 'POST', headers: {'Content-Type': 'application/json',
            'X-CSRF-Token': csrf}, body: JSON.stringify({account: 1, amount: 100})});
        return r.status; }""")
    assert status == 403
    assert stack.run(lambda: stack.ledger.balance("5555555555554444")) == before


def test_a_request_without_the_csrf_token_is_refused(pages, stack):
    dash = dashboard_page(pages, stack)
    before = stack.run(lambda: [a["balance"] for a in stack.ledger.accounts()])
    statuses = dash.evaluate("""async () => {
        const out = [];
        for (const headers of [{'Content-Type': 'application/json'},
                               {'Content-Type': 'application/json', 'X-CSRF-Token': 'forged'}]) {
            const r = await fetch('/api/topup', {method: 'POST', headers, body: JSON.stringify({account: 1, amount: 100})});
            out.push(r.status);
        }
        return out; }""")
    assert statuses == [403, 403]
    assert stack.run(lambda: [a["balance"] for a in stack.ledger.accounts()]) == before
    sim = sim_page(pages, stack)
    state = stack.assembly.terminal.state
    status = sim.evaluate("""async () => (await fetch('/api/key', {method: 'POST',
        headers: {'Content-Type': 'application/json'}, body: JSON.stringify({key: '1'})})).status""")
    assert status == 403 and stack.assembly.terminal.state == state
