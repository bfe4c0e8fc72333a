"""Two host processes on one PostgreSQL: a transaction SERIALIZABLE keeps refusing as a
conflict runs its next try alone (kapos_tools/host/db.py), so no message is left
unanswered under load. Before this, `bench_host_scale.py` with 2 hosts and 8 terminals
lost a sale after 8 refusals in a row and the host closed the terminal's connection."""

import threading

from engines import pg_url  # noqa: F401  (the fixture)
from kapos_tools.host import db as ledger_db


def test_a_transaction_run_alone_starts_after_the_others_end_and_none_starts_beside_it(pg_url):  # noqa: F811
    a, b, c = (ledger_db.connect(pg_url) for _ in range(3))
    order = []
    try:
        a.execute("CREATE TABLE IF NOT EXISTS probe (n INTEGER)")
        with a.transaction():  # another process's transaction in progress
            b.alone_next = True
            alone = threading.Thread(target=lambda: _alone(b, order))
            alone.start()
            alone.join(0.5)
            assert alone.is_alive(), "the lone transaction began beside another one"
            order.append("other committed")
        alone.join(10)
        assert order[:2] == ["other committed", "alone began"]
        # while it runs alone, a new transaction waits for it
        b.alone_next = True
        with b.transaction():
            beside = threading.Thread(target=lambda: _ordinary(c, order))
            beside.start()
            beside.join(0.5)
            assert beside.is_alive(), "a transaction began beside the lone one"
            order.append("alone committed")
        beside.join(10)
        assert order[-2:] == ["alone committed", "ordinary began"]
        assert not b.alone_next  # one transaction, then back to ordinary ones
    finally:
        for db in (a, b, c):
            db.close()


def _alone(db, order):
    with db.transaction():
        order.append("alone began")


def _ordinary(db, order):
    with db.transaction():
        db.execute("SELECT count(*) FROM probe").fetchone()
        order.append("ordinary began")
