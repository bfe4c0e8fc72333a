#!/usr/bin/env python3
"""Work per message that must not grow with the data:

- host authorization latency with the velocity rule on, ledgers of 1k .. 1M transactions
  [target: flat, within 2x]
- terminal settlement (journal batch totals) against the size of the batch
"""

import os
import random
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests", "integration", "host"))

from hostkit import request as make_request, swipe  # noqa: E402  (tests/integration/host: the test cards)
from kapos.host import codec  # noqa: E402
from kapos.host.client import encode_message  # noqa: E402
from kapos.io.host_link import HostAuthorizer  # noqa: E402
from kapos.io.journal import Journal  # noqa: E402
from kapos_tools.host.ledger import Ledger  # noqa: E402
from kapos_tools.host.server import HostServer  # noqa: E402

SIZES = (1000, 100000, 1000000)
AUTHS = 150


def _fill_ledger(path, n):
    """A ledger file with n past transactions on 5,000 cards over a year: rows written in
    the order of the table's unique key, the other indexes built afterwards (sorted), so
    a million rows take seconds, not many minutes."""
    ledger = Ledger(path)
    db = ledger.db
    indexes = [row[0] for row in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'txns' AND sql IS NOT NULL")]
    for name in indexes:
        db.execute("DROP INDEX %s" % name)
    db.execute("PRAGMA synchronous=OFF")
    now = time.time()
    per_terminal = max(1, n // 50)
    rows = (("T%05d" % (i // per_terminal), "%06d" % (i % per_terminal), "%010d" % i, "0210", "sale", 100, 0,
             100, "CARD%05d" % random.randrange(5000), "ACC", "00", "approved", now - random.random() * 365 * 86400)
            for i in range(n))
    with db.transaction():
        db.executemany(
            "INSERT INTO txns (terminal_id, stan, transmission, mti, type, amount, fee, total, card_key, "
            "account, code, status, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    ledger.close()  # reopening recreates the indexes (CREATE INDEX IF NOT EXISTS)


def _authorization_latency(n, directory):
    path = os.path.join(directory, "ledger-%d.db" % n)
    _fill_ledger(path, n)
    ledger = Ledger(path, velocity=(10 ** 9, 3600))  # the rule runs on every sale, never declines
    ledger.load_cards()
    server = HostServer(ledger)
    journal = Journal(os.path.join(directory, "journal-%d" % n))
    auth = HostAuthorizer(None, journal, "KAPOS001", "SHOP0001")
    card = swipe("mc-credit")
    latencies = []
    for i in range(AUTHS):
        request = make_request(i + 1, "sale", 1, card, pin="4321", account="credit")
        data = encode_message(auth.build_request(request, "%06d" % (i + 1), time.gmtime(), 1), None)
        started = time.perf_counter()
        reply = codec.decode(server.process(data))
        latencies.append(time.perf_counter() - started)
        assert reply[39] in ("00", "51", "55", "61"), reply[39]
    journal.close()
    ledger.close()
    return statistics.median(latencies)


def host_latency():
    print("host authorization latency, velocity rule on (median of %d sales, in process):" % AUTHS)
    with tempfile.TemporaryDirectory(prefix="kapos-bench-scale-") as directory:
        figures = [(n, _authorization_latency(n, directory)) for n in SIZES]
    for n, median in figures:
        print("  %9d ledger rows: %6.2f ms" % (n, median * 1000))
    ratio = figures[-1][1] / figures[0][1]
    print("  1M / 1k = %.2fx [target < 2x]%s" % (ratio, "  OK" if ratio < 2 else "  OVER"))


def settlement():
    print("terminal settlement: journal batch totals against the batch size (the batch's running totals row;"
          " bench_pi.py also times close + totals and a full recount):")
    with tempfile.TemporaryDirectory(prefix="kapos-bench-settle-") as directory:
        for n in (1000, 100000):
            journal = Journal(os.path.join(directory, "j%d" % n))
            batch = journal.current_batch()
            now = time.time()
            with journal.db:
                journal.db.executemany(
                    "INSERT INTO txns (ref, stan, mti, type, amount, total, transmission, batch, status, "
                    "created, updated) VALUES (?, ?, '0200', 'sale', 100, 100, '0000000000', ?, 'approved', ?, ?)",
                    ((i, "%06d" % (i % 999999), batch, now, now) for i in range(n)))
            journal.rebuild_totals()  # rows written behind the journal's back: count them once
            started = time.perf_counter()
            journal.batch_totals(batch)
            print("  %7d approved in the batch: %7.1f ms" % (n, (time.perf_counter() - started) * 1000))
            journal.close()


def main():
    host_latency()
    settlement()


if __name__ == "__main__":
    main()
