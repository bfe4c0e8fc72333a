"""Data hygiene: canary card data and a canary PIN go through scripted transactions, then
every log line, screen, receipt (text and ESC/POS bytes), record and file in the data
directory is searched. Zero hits in clear."""

import asyncio
import logging
import os

from terminalrig import Running
from kapos import card as cards
from kapos.simdata.cards import expiry_months_ahead

CANARY_PAN = "4000001234567899"  # Luhn-valid, unknown to every bank
CANARY_PIN = "864297531086"  # 12 digits: cannot appear by chance
CANARY_NAME = "CANARY/SECRET"
CANARY_EXPIRY = expiry_months_ahead(48)
TRACK2 = cards.build_track2(CANARY_PAN, CANARY_EXPIRY, "101", "987654321")
SWIPE = cards.build_track1(CANARY_PAN, CANARY_NAME, CANARY_EXPIRY, "101", "987654321") + TRACK2


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


def needles():
    return [CANARY_PAN, CANARY_PIN, TRACK2.strip(";?"), CANARY_NAME, CANARY_PAN[6:12] + CANARY_PAN[12:]]


def test_no_canary_in_logs_screens_receipts_records_or_files(tmp_path):
    handler = Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    screens = []

    async def go():
        async with Running(data_dir=tmp_path / "terminal") as r:
            r.terminal.observers.append(lambda kind, p: screens.append(p.text()) if kind == "screen" else None)
            script = ("key 1\nkeys 2500\nkey ENTER\nswipe raw \"%s\"\nkey 1\nkeys %s\nkey ENTER\n"
                      "expect result declined\nkey ENTER\n" % (SWIPE, CANARY_PIN))
            await r.play(script)
            # the same card in the card read test of the technician menu
            await r.play("key MENU\nkeys 0000\nkey ENTER\nkey 5\nswipe raw \"%s\"\n"
                         "expect screen \"**** 7899\"\nkey CANCEL\nkey CANCEL\n" % SWIPE)
            return r, [receipt.text() for _, receipt in r.terminal.receipts], \
                [data for _, data in r.platform.printer.jobs], list(r.terminal.records), r.data_dir

    try:
        r, receipts, escpos, records, data_dir = asyncio.run(go())
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)

    assert receipts and screens and handler.lines, "the run produced output to search"
    haystacks = {"log": "\n".join(handler.lines), "screens": "\n".join(screens),
                 "receipts": "\n".join(receipts), "records": repr(records)}
    for name, text in haystacks.items():
        for needle in needles():
            assert needle not in text, "%s leaked into %s" % (needle, name)
    for data in escpos:
        for needle in needles():
            assert needle.encode() not in data
    files = 0
    for dirpath, _, names in os.walk(data_dir):
        for n in names:
            files += 1
            with open(os.path.join(dirpath, n), "rb") as f:
                blob = f.read()
            for needle in needles():
                assert needle.encode() not in blob, "%s leaked into %s" % (needle, n)
    assert files >= 1, "the key file at least was searched"
    assert "**** 7899" in haystacks["screens"] or "7899" in haystacks["receipts"]


def test_no_canary_in_the_journal_or_the_host_ledger(tmp_path):
    """The same canaries through the real host link: terminal journal and key files, host
    ledger (SQLite pages, WAL included) and both logs."""
    from kapos.simdata.keys import TEST_BDK
    from kapos_tools.host import HostServer, Ledger
    from kapos_tools.host.mac import HostDukptMac

    handler = Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    ledger_path = str(tmp_path / "host" / "ledger.db")

    async def go():
        ledger = Ledger(ledger_path)
        ledger.load_cards()
        server = HostServer(ledger, mac=HostDukptMac(TEST_BDK))
        _, port = await server.start_tcp("127.0.0.1", 0)
        try:
            async with Running(overrides=[("host.mode", '"iso8583"'),
                                          ("host.address", '"127.0.0.1:%d"' % port),
                                          ("host.timeout", "3.0")], data_dir=tmp_path / "terminal") as r:
                script = ("key 1\nkeys 2500\nkey ENTER\nswipe raw \"%s\"\nkey 1\nkeys %s\nkey ENTER\n"
                          "expect result declined\nkey ENTER\n" % (SWIPE, CANARY_PIN))
                await r.play(script)
                await r.play("key 1\nkeys 100\nkey ENTER\nswipe visa-debit\nkey 1\nkeys 1234\nkey ENTER\n"
                             "expect result approved\n")
                return r.data_dir
        finally:
            await server.close()
            ledger.close()

    try:
        data_dir = asyncio.run(go())
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    log_text = "\n".join(handler.lines)
    assert "0200" in log_text or "sale" in log_text
    for needle in needles():
        assert needle not in log_text, "%s leaked into a log" % needle
    searched = 0
    for top in (data_dir, str(tmp_path / "host")):
        for dirpath, _, names in os.walk(top):
            for n in names:
                with open(os.path.join(dirpath, n), "rb") as f:
                    blob = f.read()
                searched += 1
                for needle in needles():
                    assert needle.encode() not in blob, "%s leaked into %s" % (needle, n)
    assert searched >= 3, "journal, keys and ledger files were searched"
