"""The journal's running batch totals: kept in the same transaction as each status change,
so settlement reads one row; they always equal a full recount of the batch's entries."""

import sqlite3

from hypothesis import given, settings, strategies as st

from journalkit import reversal_bytes
from kapos import txn_types
from kapos.io import journal as J
from kapos.io.journal import Journal

WITH_ORIGINAL = tuple(name for name in txn_types.names() if txn_types.row(name)["original"])
OUTCOMES = ("approve", "decline", "unsent", "timeout", "cancel-after-approval",
            "reversal-answered", "in-flight-at-restart", "approve-then-reverse-answered")


def begin(journal, kind, amount, original_id=None):
    stan = journal.next_stan()
    return journal.begin(None, stan, "0200", kind, amount, 0, amount, "1125100000",
                         journal.current_batch(), original_id=original_id,
                         reversal=(stan, reversal_bytes(stan)))


def answer_due_reversals(journal):
    for item in journal.due():
        journal.complete(item["id"], "00")


def apply(journal, kind, amount, outcome, pick, ids):
    original_id = ids[pick % len(ids)] if kind in WITH_ORIGINAL and ids else None
    txn = begin(journal, kind, amount, original_id)
    ids.append(txn)
    if outcome == "unsent":
        journal.mark_unsent(txn, "link down")
    elif outcome == "timeout":
        journal.reverse(txn, "timeout")
    elif outcome == "in-flight-at-restart":
        journal.recover()
    elif outcome == "reversal-answered":
        journal.reverse(txn, "timeout")
        answer_due_reversals(journal)
    else:
        journal.record_result(txn, outcome != "decline", "00" if outcome != "decline" else "51")
        if outcome == "cancel-after-approval":
            journal.reverse(txn, "cancelled")
        elif outcome == "approve-then-reverse-answered":
            journal.reverse(txn, "cancelled")
            answer_due_reversals(journal)


def assert_running_equals_recount(journal):
    batches = {row[0] for row in journal.db.execute("SELECT DISTINCT batch FROM txns")}
    for batch in batches | {journal.current_batch()}:
        assert journal.batch_totals(batch) == journal.recount_totals(batch), batch


operation = st.one_of(
    st.tuples(st.sampled_from(txn_types.names()), st.integers(1, 10 ** 7),
              st.sampled_from(OUTCOMES), st.integers(0, 10 ** 6)),
    st.just("close-batch"), st.just("answer-due"), st.just("restart"))


@settings(max_examples=80, deadline=None)
@given(st.lists(operation, min_size=1, max_size=40))
def test_running_totals_equal_a_full_recount_after_any_sequence(operations):
    journal = Journal(":memory:")
    ids = []
    try:
        for op in operations:
            if op == "close-batch":
                number = journal.close_batch()
                journal.finish_batch(number, "95", False, journal.batch_totals(number))
            elif op == "answer-due":
                answer_due_reversals(journal)
            elif op == "restart":
                journal.recover()
            else:
                apply(journal, *op, ids)
            assert_running_equals_recount(journal)
    finally:
        journal.close()


def test_running_totals_count_a_sale_once_and_its_void_as_a_reversal(tmp_path):
    journal = Journal(str(tmp_path))
    try:
        sale = begin(journal, "sale", 1500)
        journal.record_result(sale, True, "00")
        refund = begin(journal, "refund", 400)
        journal.record_result(refund, True, "00")
        void = begin(journal, "void", 0, original_id=sale)
        journal.record_result(void, True, "00")
        totals = journal.batch_totals(journal.current_batch())
        assert (totals["debits_count"], totals["debits_amount"]) == (1, 1500)
        assert (totals["credits_count"], totals["credits_amount"]) == (1, 400)
        assert (totals["debits_reversal_count"], totals["debits_reversal_amount"]) == (1, 1500)
        journal.reverse(refund, "cancelled")  # cancelled after approval: out of the totals
        assert journal.batch_totals(journal.current_batch())["credits_count"] == 0
    finally:
        journal.close()


def test_settlement_reads_one_row_not_the_batch(tmp_path):
    journal = Journal(str(tmp_path))
    try:
        for amount in (100, 200, 300):
            journal.record_result(begin(journal, "sale", amount), True, "00")
        number = journal.close_batch()
        statements = []
        journal.reader.set_trace_callback(statements.append)
        totals = journal.batch_totals(number)
        journal.reader.set_trace_callback(None)
        assert (totals["debits_count"], totals["debits_amount"]) == (3, 600)
        assert statements and not any("txns" in s for s in statements), statements
    finally:
        journal.close()


def test_a_version_1_journal_gets_its_running_totals_counted_once(tmp_path):
    journal = Journal(str(tmp_path))
    sale = begin(journal, "sale", 700)
    journal.record_result(sale, True, "00")
    batch = journal.current_batch()
    journal.close()
    with sqlite3.connect(str(tmp_path / J.DEFAULT_NAME)) as db:  # as firmware before the table left it
        db.execute("DROP TABLE batch_totals")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    journal = Journal(str(tmp_path))
    try:
        assert journal.batch_totals(batch)["debits_amount"] == 700
        assert journal.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == "2"
    finally:
        journal.close()
