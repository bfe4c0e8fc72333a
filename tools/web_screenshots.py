"""Screenshots of the browser simulator and the host dashboard for the docs.

    .venv/bin/python tools/web_screenshots.py docs/img

Runs the same in-process stack as tests/web (host + dashboard + terminal + page on
127.0.0.1 ephemeral ports), plays a sale, a top-up and an alarm in headless chromium,
and saves web-sim.png and web-dashboard.png.
"""

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "web"))

from webstack import Stack, chromium_path, click_keys as keys, dashboard_page, sim_page, wait_screen, wait_text  # noqa: E402


def main(out_dir):
    from playwright.sync_api import sync_playwright

    os.makedirs(out_dir, exist_ok=True)
    path = chromium_path()
    if path is None:
        sys.exit("no chromium: apt-get install chromium")
    stack = Stack(Path(tempfile.mkdtemp(prefix="kapos-shots-")))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
            context = browser.new_context(viewport={"width": 1500, "height": 900})
            sim = sim_page(context.new_page, stack)
            wait_screen(sim, "1 Sale")
            keys(sim, "1")
            keys(sim, "1250")
            sim.click('#keypad button[data-key="enter"]')
            wait_screen(sim, "Swipe or tap card")
            sim.click('button[data-card="visa-debit"]')
            keys(sim, "1")
            keys(sim, "1234")
            sim.click('#keypad button[data-key="enter"]')
            wait_text(sim, "#receipt", "APPROVED", timeout=10000)
            wait_text(sim, "#host td", "sale")
            sim.click('#keypad button[data-key="enter"]')  # a key ends the result screen
            wait_screen(sim, "1 Sale")
            dash = dashboard_page(context.new_page, stack)
            row = dash.locator('#accounts tbody tr[data-name="TEST/MC CREDIT"]')
            row.locator("input.amount").fill("5000")
            row.locator("button.topup").click()
            wait_text(dash, "#audit", "topup")
            keys(sim, "1")
            keys(sim, "100")
            sim.click('#keypad button[data-key="enter"]')
            for attempt in range(3):
                wait_screen(sim, "Swipe or tap")
                sim.click('button[data-card="malformed"]')
                if attempt < 2:
                    wait_screen(sim, "Card read error")
            dash.wait_for_selector('#alarms tbody tr[data-kind="anomaly"]', timeout=5000)
            wait_screen(sim, "ALARM")
            sim.click('#keypad button[data-key="cancel"]')
            wait_screen(sim, "1 Sale", timeout=15000)
            sim.bring_to_front()
            keys(sim, "4")
            wait_screen(sim, "Swipe or tap card")
            sim.click('button[data-card="mc-credit"]')
            keys(sim, "2")
            keys(sim, "4321")
            sim.click('#keypad button[data-key="enter"]')
            wait_screen(sim, "Balance", timeout=10000)
            wait_text(sim, "#receipt", "Balance")
            sim.screenshot(path=os.path.join(out_dir, "web-sim.png"), full_page=True)
            dash.reload()  # the runtime reported its start-up self-test (passed) long since
            dash.wait_for_selector("#live:not(.off)")
            wait_text(dash, "#alarms", "anomaly")
            dash.screenshot(path=os.path.join(out_dir, "web-dashboard.png"), full_page=False)
            context.close()
            browser.close()
    finally:
        stack.close()
    print("wrote %s/web-sim.png and %s/web-dashboard.png" % (out_dir, out_dir))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/img")
