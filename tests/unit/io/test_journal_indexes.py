"""The terminal journal's per-sale lookups read indexes, so they cost the same with 100k
rows as with ten: the STAN check reads txns and the message queue by index."""

from kapos.io.journal import Journal


def test_stan_used_reads_indexes_not_the_tables(tmp_path):
    journal = Journal(str(tmp_path))
    try:
        statements = []
        journal.db.set_trace_callback(statements.append)
        assert journal.stan_used("000123") is False
        journal.db.set_trace_callback(None)
        query = [s for s in statements if "FROM queue WHERE stan" in s][0]
        plan = " ".join(str(tuple(row)) for row in journal.db.execute("EXPLAIN QUERY PLAN " + query))
        assert "SCAN" not in plan and "queue_stan" in plan and "txns_stan" in plan, plan
    finally:
        journal.close()


def test_settlement_totals_are_read_off_the_loop_and_match(tmp_path):
    import asyncio
    import threading
    import time

    journal = Journal(str(tmp_path))
    try:
        batch = journal.current_batch()
        now = time.time()
        with journal.db:
            journal.db.executemany(
                "INSERT INTO txns (ref, stan, mti, type, amount, total, transmission, batch, status, created, "
                "updated) VALUES (?, ?, '0200', 'sale', 100, 100, '0000000000', ?, 'approved', ?, ?)",
                ((i, "%06d" % i, batch, now, now) for i in range(1, 51)))
        threads = []
        real = journal._batch_totals_own_connection
        journal._batch_totals_own_connection = lambda b: (threads.append(threading.current_thread()), real(b))[1]
        totals = asyncio.run(journal.batch_totals_off_loop(batch))
        assert totals == journal.batch_totals(batch) and any(totals.values())
        assert threads and threading.main_thread() not in threads
    finally:
        journal.close()
