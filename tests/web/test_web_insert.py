"""The browser simulator's chip slot in a real headless Chromium: on board sim-nfc a chip
test card has an insert button; an insert sale done by clicking ends with the receipt on
the page, the host having verified the card's ARQC. On the default board (no slot) the
page offers no insert button."""

from webstack import click_keys, sim_page, start_sale, wait_screen, wait_text


def test_an_insert_sale_by_clicking_ends_with_the_receipt_on_the_page(nfc_pages, nfc_stack):
    page = sim_page(nfc_pages, nfc_stack)
    start_sale(page, "7800", "Insert, swipe or tap card")
    assert page.locator('button[data-insert="visa-debit"]').count() == 0  # a stripe-only card
    page.click('button[data-insert="emv-tap"]')
    wait_text(page, "#chip-slot", "in the slot: emv-tap")
    wait_screen(page, "1 Debit", timeout=15000)
    click_keys(page, "1")
    wait_screen(page, "PIN:")
    page.keyboard.type("1234")
    page.keyboard.press("Enter")
    try:
        wait_text(page, "#receipt", "APPROVED", timeout=30000)
    except Exception:
        raise AssertionError("no approval: screen %r, receipt %r, record %r" % (
            page.locator("#oled").get_attribute("alt"), page.inner_text("#receipt"),
            nfc_stack.run(lambda: nfc_stack.assembly.terminal.records[-1:])))
    receipt = page.inner_text("#receipt")
    assert "CHIP" in receipt and "78.00" in receipt
    wait_screen(page, "Remove card")
    page.click("#chip-remove")
    wait_text(page, "#chip-slot", "slot empty")
    wait_screen(page, "1 Sale")
    contact = nfc_stack.run(lambda: nfc_stack.assembly.terminal.contact.last)
    assert contact.path == "mchip" and contact.data[0x9F27][0] & 0xC0 == 0x40  # the card's TC


def test_a_mute_chip_asks_for_the_stripe(nfc_pages, nfc_stack):
    page = sim_page(nfc_pages, nfc_stack)
    start_sale(page, "100", "Insert, swipe or tap card")
    page.click("#chip-mute")
    wait_text(page, "#message", "mute chip on the next insert: True")
    page.click('button[data-insert="emv-tap"]')
    wait_screen(page, "Swipe card", timeout=15000)


def test_the_default_board_has_no_chip_slot_on_the_page(pages, stack):
    page = sim_page(pages, stack)
    wait_screen(page, "1 Sale")
    assert page.locator("button[data-insert]").count() == 0
    assert page.locator("#chip-box").is_hidden()
    reply = page.request.post(stack.sim_url + "/api/insert", data='{"id": "emv-tap"}',
                              headers={"Content-Type": "application/json",
                                       "X-CSRF-Token": page.locator('meta[name="csrf"]').get_attribute("content")})
    assert reply.status == 400 and "no chip slot" in reply.json()["error"]
