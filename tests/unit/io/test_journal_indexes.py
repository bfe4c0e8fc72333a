"""The terminal journal's per-sale lookups read indexes, so they cost the same with 100k
rows as with ten: the STAN check reads txns and the message queue by index."""

from kapos.io.journal import Journal


def test_stan_used_reads_indexes_not_the_tables(tmp_path):
    journal = Journal(str(tmp_path))
    try:
        statements = []
        journal.reader.set_trace_callback(statements.append)  # reads use the reader connection
        assert journal.stan_used("000123") is False
        journal.reader.set_trace_callback(None)
        query = [s for s in statements if "FROM queue WHERE stan" in s][0]
        plan = " ".join(str(tuple(row)) for row in journal.db.execute("EXPLAIN QUERY PLAN " + query))
        assert "SCAN" not in plan and "queue_stan" in plan and "txns_stan" in plan, plan
    finally:
        journal.close()
