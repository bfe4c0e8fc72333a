"""The ledger's group transaction (db.py): messages inside one run without savepoints, a
message that fails half-way still undoes only itself, counters (RRN) are written once
per transaction, and the KSN window holds without a registry write per message. On
SQLite and on a real PostgreSQL server (engines.py)."""

import time

import pytest

from engines import engine  # noqa: F401 (fixtures)
from hostkit import TESTCARDS, new_ledger
from kapos.host import codec
from kapos.host import messages as m
from kapos.security import dukpt
from kapos_tools.host import HostServer, book
from kapos_tools.host.db import RunAgainWithSavepoints
from kapos_tools.host.registry import TerminalRegistry

pytestmark = pytest.mark.usefixtures("engine")

UTC = time.gmtime(time.mktime((2026, 11, 25, 10, 0, 0, 0, 0, -1)))
CARD = "visa-debit"


def sale(stan, amount):
    return m.build_financial_request("sale", amount, stan, UTC, UTC, "KAPOS001", "KAPOS-MERCHANT1",
                                     "978", track2=TESTCARDS[CARD].track2_equivalent(),
                                     private="BN006000001")


def test_a_message_failing_half_way_in_a_group_is_undone_alone_and_answered_96(monkeypatch):
    ledger = new_ledger()
    account = ledger.card_account(TESTCARDS[CARD].pan)
    before = ledger.balance(account)
    post = book.post

    def post_then_fail(db, entries, **kw):  # the txns row and the balance are written by now
        post(db, entries, **kw)
        if any(amount == -777 for _, amount in entries):
            raise RuntimeError("a bug after the message's first writes")

    monkeypatch.setattr(book, "post", post_then_fail)
    server = HostServer(ledger)
    batch = [(codec.encode(sale(stan, amount)), None, None)
             for stan, amount in ((1, 100), (2, 777), (3, 300))]
    results = server._run_batch(batch)
    codes = [codec.decode(reply)[39] for reply, error in results]
    assert codes == ["00", "96", "00"]
    assert ledger.balance(account) == before - 400  # nothing of the failed one
    assert [t["stan"] for t in ledger.transactions()] == ["000001", "000003"]
    assert ledger.check() == []
    # the next group runs optimistically again, and commits
    assert codec.decode(server._run_batch([(codec.encode(sale(4, 50)), None, None)])[0][0])[39] == "00"
    assert ledger.balance(account) == before - 450 and ledger.check() == []


def test_a_failure_caught_inside_a_group_still_commits_nothing_of_the_group():
    ledger = new_ledger()
    db = ledger.db
    with pytest.raises(RunAgainWithSavepoints):
        with db.transaction():
            db.execute("INSERT INTO alerts (terminal_id, rule, detail, at) VALUES (?, ?, ?, ?)",
                       ("T1", "first", "kept only if the group commits", 0.0))
            try:
                with db.transaction():
                    db.execute("INSERT INTO alerts (terminal_id, rule, detail, at) VALUES "
                               "(?, ?, ?, ?)", ("T1", "second", "half-way", 0.0))
                    raise ValueError("fails after a write")
            except RunAgainWithSavepoints:
                pass  # a caller that swallows it: the outer block still refuses to commit
    assert ledger.alerts() == []
    # run again: now each inner block has a savepoint and the failure undoes only itself
    with db.transaction():
        db.execute("INSERT INTO alerts (terminal_id, rule, detail, at) VALUES (?, ?, ?, ?)",
                   ("T1", "first", "kept", 0.0))
        with pytest.raises(ValueError):
            with db.transaction():
                db.execute("INSERT INTO alerts (terminal_id, rule, detail, at) VALUES "
                           "(?, ?, ?, ?)", ("T1", "second", "undone", 0.0))
                raise ValueError("fails after a write")
    assert [a["rule"] for a in ledger.alerts()] == ["first"]


def test_rrns_in_a_group_are_unique_and_the_counter_survives_a_rollback():
    ledger = new_ledger()
    server = HostServer(ledger)
    first = server._run_batch([(codec.encode(sale(stan, 10)), None, None) for stan in (1, 2, 3)])
    rrns = [int(codec.decode(reply)[37]) for reply, _ in first]
    assert rrns == sorted(set(rrns)) and rrns[-1] - rrns[0] == 2
    with pytest.raises(RuntimeError):  # a group rolled back as a whole
        with ledger.db.transaction():
            ledger.handle(sale(4, 10))
            raise RuntimeError("the commit never happens")
    alone = ledger.handle(sale(5, 10))  # no group: its own transaction
    later = server._run_batch([(codec.encode(sale(6, 10)), None, None)])
    taken = rrns + [int(alone[37]), int(codec.decode(later[0][0])[37])]
    assert taken == sorted(set(taken)), taken
    assert sorted(int(t["rrn"]) for t in ledger.transactions()) == taken


# the statement trace is SQLite's (and PostgreSQL's RRN is a sequence): SQLite only
@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_sale_in_a_group_takes_no_savepoint_and_the_rrn_row_is_written_once(engine):
    ledger = new_ledger()
    server = HostServer(ledger)
    statements = []
    ledger.db.set_trace_callback(statements.append)
    server._run_batch([(codec.encode(sale(stan, 10)), None, None) for stan in (1, 2, 3)])
    ledger.db.set_trace_callback(None)
    assert not [s for s in statements if "SAVEPOINT" in s]
    assert len([s for s in statements if s.startswith("UPDATE meta")]) == 1
    assert len([s for s in statements if s.startswith("INSERT INTO txns")]) == 3


def _ksn_message(counter, stan):
    ik_id = bytes.fromhex("FFFF9876543210E0")
    return {41: "KAPOS001", 42: "KAPOS-MERCHANT1", 11: "%06d" % stan,
            53: dukpt.make_ksn(ik_id, counter)}


def test_the_ksn_window_holds_inside_group_transactions_without_a_registry_write_each():
    ledger = new_ledger()
    registry = TerminalRegistry(ledger.db, auto_enroll=True)

    def send(counter, body):
        message = _ksn_message(counter, counter)
        verdict = registry.check(message, body)
        if verdict.refusal is None and verdict.reply is None:
            registry.answered(verdict, b"reply " + body)
        return verdict

    with ledger.db.transaction():  # one group: counters 1..50
        for counter in range(1, 51):
            assert send(counter, b"m%d" % counter).refusal is None
        stale = send(5, b"other")  # 5 <= 50 - 32 inside the same transaction
        assert "stale" in stale.refusal
    with ledger.db.transaction():
        assert "already used" in send(50, b"another body").refusal
        assert send(50, b"m50").reply == b"reply m50"  # the exact repeat
        assert "stale" in send(18, b"older").refusal
        assert send(49, b"m49").reply == b"reply m49"  # inside the window, a repeat
        assert send(51, b"m51").refusal is None
    assert registry.terminals()[0]["last_counter"] == 51
    # its rows below the window were pruned: the floor still refuses their counters
    assert ledger.db.execute("SELECT MIN(counter) FROM ksn_used").fetchone()[0] > 1
    assert "stale" in send(1, b"m1").refusal


def test_a_version_3_ledger_upgrades_to_the_partial_hold_index(tmp_path):
    import hostkit
    from kapos import txn_types
    from kapos_tools.host import Ledger, schema

    url = hostkit.ledger_url(str(tmp_path / "v3.db"))
    ledger = Ledger(url)
    ledger.load_cards()
    account = ledger.card_account(TESTCARDS[CARD].pan)
    hold = m.build_financial_request(txn_types.PREAUTH, 2500, 7, UTC, UTC, "KAPOS001",
                                     "KAPOS-MERCHANT1", "978",
                                     track2=TESTCARDS[CARD].track2_equivalent(),
                                     private="BN006000001")
    assert ledger.handle(hold)[39] == "00"
    available = ledger._available(account)
    db = ledger.db
    with db.transaction():  # back to what a version 3 host left: its indexes, its number
        db.execute("DROP INDEX txns_held")
        db.execute("CREATE INDEX txns_account_lifecycle ON txns (account, lifecycle)")
        db.execute("CREATE INDEX entries_account ON entries (account)")
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    ledger.close()

    ledger = Ledger(url)
    indexes = schema._index_names(ledger.db)
    assert "txns_held" in indexes
    assert not indexes & {"txns_account_lifecycle", "entries_account"}
    assert ledger._meta("schema") == str(schema.VERSION) == "5"
    assert ledger._available(account) == available  # the hold still counts
    assert ledger.handle(sale(8, ledger.balance(account) - available + 1))[39] == "00"
    assert ledger.handle(sale(9, available))[39] == "51"  # the hold is in force
    assert ledger.check() == []
    ledger.close()


def test_a_void_and_a_reversal_in_the_same_group_see_the_entries_it_has_not_written_yet():
    from hostkit import void_message

    ledger = new_ledger()
    account = ledger.card_account(TESTCARDS[CARD].pan)
    before = ledger.balance(account)
    with ledger.db.transaction():  # one group: the sales' entries wait for the COMMIT
        first = ledger.handle(sale(1, 400))
        assert ledger.handle(void_message(2, 400, first[37], UTC))[39] == "00"
        assert ledger.handle(sale(3, 250))[39] == "00"
        assert ledger.handle(m.build_reversal(sale(3, 250), "timeout"))[39] == "00"
        assert ledger.check() == []  # read inside the group: the deferred rows are written
        assert ledger.handle(sale(4, 100))[39] == "00"
    assert ledger.balance(account) == before - 100
    assert ledger.check() == []


def test_a_refund_and_a_sale_netting_zero_for_the_merchant_in_one_group_keep_its_book():
    """The merchant's book is first touched by a group whose postings to it sum to 0: its
    entries are written at COMMIT, and so is its book's row (a book row of 0), as when
    each message writes its own (found by the ledger property test)."""
    ledger = new_ledger()
    refund = m.build_financial_request("refund", 1, 1, UTC, UTC, "KAPOS001", "KAPOS-MERCHANT1",
                                       "978", track2=TESTCARDS[CARD].track2_equivalent(),
                                       private="BN006000001")
    with ledger.db.transaction():
        assert ledger.handle(refund)[39] == "00"
        assert ledger.handle(sale(2, 1))[39] == "00"
    assert ledger.check() == []
    assert book.book_balance(ledger.db, book.merchant_account("KAPOS-MERCHANT1")) == 0


def _velocity_index(ledger):
    from kapos_tools.host import schema

    return schema.VELOCITY_INDEX_NAME in schema._index_names(ledger.db)


def test_a_version_4_ledger_keeps_the_card_time_index_only_for_the_velocity_rule(tmp_path, engine):
    import hostkit
    from kapos_tools.host import Ledger, schema

    url = hostkit.ledger_url(str(tmp_path / "v4.db"))
    ledger = Ledger(url)
    ledger.load_cards()
    assert not _velocity_index(ledger)  # a new ledger without the rule: one index fewer
    assert ledger.handle(sale(1, 100))[39] == "00"
    with ledger.db.transaction():  # back to what a version 4 host left
        ledger.db.execute("CREATE INDEX txns_card_time ON txns (card_key, created)")
        ledger.db.execute("UPDATE meta SET value = '4' WHERE key = 'schema'")
    ledger.close()

    ledger = Ledger(url, velocity=(2, 3600))  # the rule on: the upgrade keeps the index
    assert _velocity_index(ledger)
    assert ledger._meta("schema") == str(schema.VERSION)
    ledger.close()
    ledger = Ledger(url)  # a version 5 ledger: a host without the rule leaves it alone
    assert _velocity_index(ledger)
    with ledger.db.transaction():
        ledger.db.execute("UPDATE meta SET value = '4' WHERE key = 'schema'")
    ledger.close()

    ledger = Ledger(url)  # the upgrade by a host without the rule drops it
    assert not _velocity_index(ledger)
    assert ledger._meta("schema") == str(schema.VERSION)
    ledger.close()

    ledger = Ledger(url, velocity=(2, 3600))  # turned on later: made again, and it counts
    assert _velocity_index(ledger)
    assert ledger.handle(sale(2, 100))[39] == "00"
    assert ledger.handle(sale(3, 100))[39] == "65"  # two approved debits already
    assert ledger.check() == []


def _used_today(ledger):
    return ledger.db.execute("SELECT COALESCE(SUM(total), 0) FROM daily WHERE card_key = ?",
                             (TESTCARDS[CARD].pan,)).fetchone()[0]


def test_the_daily_limit_counts_the_sales_of_its_own_group_before_they_are_written():
    from hostkit import void_message

    ledger = new_ledger(daily_limit=1000)
    with ledger.db.transaction():  # one group: its daily counts wait for the COMMIT
        first = ledger.handle(sale(1, 600))
        assert first[39] == "00"
        assert ledger.handle(sale(2, 600))[39] == "61"  # 600 of the limit used already
        assert ledger.handle(sale(3, 300))[39] == "00"
        # a void takes its sale off the day's count (a subtraction: written at once)
        assert ledger.handle(void_message(4, 600, first[37], UTC))[39] == "00"
        assert ledger.handle(sale(5, 700))[39] == "00"  # 300 + 700
        assert ledger.handle(sale(6, 1))[39] == "61"
    assert _used_today(ledger) == 1000
    assert ledger.handle(sale(7, 1))[39] == "61"  # and the next transaction reads it
    assert ledger.check() == []


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)  # a SQLite statement trace
def test_a_group_of_sales_reads_each_card_with_its_duplicate_check_and_counts_once(engine):
    ledger = new_ledger()
    server = HostServer(ledger)
    statements = []
    ledger.db.set_trace_callback(statements.append)
    replies = server._run_batch([(codec.encode(sale(stan, 10)), None, None) for stan in (1, 2, 3)])
    ledger.db.set_trace_callback(None)
    assert [codec.decode(r)[39] for r, _ in replies] == ["00"] * 3
    selects = [s for s in statements if s.startswith("SELECT") and "FROM meta" not in s]
    assert len(selects) == 3 and all("LEFT JOIN cards" in s for s in selects), selects
    assert len([s for s in statements if s.startswith("INSERT INTO daily")]) == 1
    assert _used_today(ledger) == 30
    # the same messages again: their stored replies, nothing applied twice
    again = server._run_batch([(codec.encode(sale(stan, 10)), None, None) for stan in (1, 2, 3)])
    assert [r for r, _ in again] == [r for r, _ in replies]
    assert _used_today(ledger) == 30


def test_a_group_burns_its_ksn_counters_in_one_statement_and_sees_them_before():
    ledger = new_ledger()
    registry = TerminalRegistry(ledger.db, auto_enroll=True)
    statements = []

    def send(counter, body):
        verdict = registry.check(_ksn_message(counter, counter), body)
        if verdict.refusal is None and verdict.reply is None:
            registry.answered(verdict, b"reply " + body)
        return verdict

    assert send(1, b"m1").refusal is None  # enrols the terminal (its own transaction)
    if ledger.db.engine == "sqlite":
        ledger.db.set_trace_callback(statements.append)
    with ledger.db.transaction():
        for counter in (2, 3, 4, 5):  # four rows: one statement (db.execute_rows)
            assert send(counter, b"m%d" % counter).refusal is None
        assert send(3, b"m3").reply == b"reply m3"  # burned in this group, not yet written
        assert "already used" in send(4, b"another body").refusal
    if ledger.db.engine == "sqlite":
        ledger.db.set_trace_callback(None)
        assert len([s for s in statements if s.startswith("INSERT INTO ksn_used")]) == 1
    assert send(4, b"m4").reply == b"reply m4"  # written at COMMIT, reply with it
    assert "already used" in send(2, b"other").refusal
    assert registry.terminals()[0]["last_counter"] == 5


def test_many_rows_go_in_few_statements_of_few_shapes():
    """db.execute_rows: every row written once, in order, in statements of a power-of-two
    number of rows, so that group sizes varying under load reuse a few compiled
    statements (SQLite's cache holds 128; one text per row count would thrash it)."""
    ledger = new_ledger()
    db = ledger.db
    db.execute(db.ddl("CREATE TABLE rows_test (n INTEGER NOT NULL, label TEXT)"))
    shapes, written = set(), 0
    for count in list(range(1, 140)) + [255, 256, 300]:
        statements = []
        original = db.execute

        def counting(sql, params=(), original=original):
            statements.append(sql)
            return original(sql, params)

        db.execute = counting
        try:
            with db.transaction():
                db.execute_rows("INSERT INTO rows_test (n, label)", 2,
                                [v for n in range(count) for v in (written + n, "r%d" % n)])
        finally:
            db.execute = original
        written += count
        assert len(statements) == count // 128 + bin(count % 128).count("1")
        shapes.update(statements)
    assert len(shapes) == 8  # 1, 2, 4 ... 128 rows
    assert [r[0] for r in db.execute("SELECT n FROM rows_test ORDER BY n")] == list(range(written))
    assert db.execute("SELECT COUNT(*) FROM rows_test WHERE label IS NULL").fetchone()[0] == 0


def test_a_groups_statement_journal_stays_in_memory():
    """A group's multi-row INSERTs (burns with their replies: tens of KiB) keep a
    statement journal; on disk SQLite would create, write and unlink a temp file per
    group (seen with strace under the bench's load: ~10 system calls and ~60 KB each)."""
    ledger = new_ledger()
    if ledger.db.engine != "sqlite":
        pytest.skip("a SQLite setting")
    assert ledger.db.execute("PRAGMA temp_store").fetchone()[0] == 2  # MEMORY
