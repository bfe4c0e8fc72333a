"""kapos.io.journal: STAN counter, transaction states, store-and-forward queue,
batch totals. Durability settings per references.md ("SQLite: WAL with synchronous=FULL
is durable per commit")."""

import pytest

from journalkit import UTC, reversal_bytes
from kapos.host import codec
from kapos.host import messages as m
from kapos.io import journal as J
from kapos.io.journal import Journal, JournalError


def begin(journal, ref=1, kind="sale", amount=1000, fee=0, stan=None, batch=None, original_id=None):
    stan = stan or journal.next_stan()
    return journal.begin(ref, stan, "0200", kind, amount, fee, amount + fee, "1125100000",
                         batch or journal.current_batch(), masked_pan="411111******1111",
                         original_id=original_id, reversal=(stan, reversal_bytes(stan)))


def test_durability_pragmas(tmp_path):
    journal = Journal(str(tmp_path))
    assert journal.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_stan_is_persisted_before_use_and_survives_restarts(tmp_path):
    journal = Journal(str(tmp_path))
    assert [journal.next_stan() for _ in range(3)] == ["000001", "000002", "000003"]
    journal.db.close()  # no clean shutdown, nothing else written
    again = Journal(str(tmp_path))
    assert again.last_stan == "000003"
    assert again.next_stan() == "000004"


def test_stan_wraps_from_999999_to_000001(tmp_path):
    journal = Journal(str(tmp_path))
    journal.set_last_stan(999998)
    assert journal.next_stan() == "999999"
    assert journal.next_stan() == "000001"
    assert Journal(str(tmp_path)).last_stan == "000001"


def test_approved_keeps_the_reversal_armed_until_a_cancel(tmp_path):
    journal = Journal(str(tmp_path))
    txn = begin(journal)
    assert journal.get(txn)["status"] == J.PENDING
    assert journal.queue_items(txn)[0]["state"] == J.ARMED
    assert journal.pending_count() == 0  # armed is not due
    assert journal.record_result(txn, True, "00", "123456", "000000000001") == J.APPROVED
    assert journal.queue_items(txn)[0]["state"] == J.ARMED
    assert journal.reverse(txn, "cancelled")
    assert journal.get(txn)["status"] == J.REVERSAL_PENDING
    [item] = journal.due()
    assert item["kind"] == J.REVERSAL and item["txn_id"] == txn
    journal.complete(item["id"], "00")
    assert journal.get(txn)["status"] == J.REVERSED
    assert journal.pending_count() == 0
    assert journal.reverse(txn, "again")  # already reversed: nothing new
    assert journal.pending_count() == 0


def test_declined_and_unsent_have_nothing_to_reverse(tmp_path):
    journal = Journal(str(tmp_path))
    declined = begin(journal)
    journal.record_result(declined, False, "51")
    assert journal.queue_items(declined) == []
    assert not journal.reverse(declined, "timeout")
    unsent = begin(journal, ref=2)
    journal.mark_unsent(unsent, "connection refused")
    assert journal.get(unsent)["status"] == J.UNSENT
    assert journal.queue_items(unsent) == []


def test_a_result_after_giving_up_does_not_undo_the_reversal(tmp_path):
    journal = Journal(str(tmp_path))
    txn = begin(journal)
    journal.reverse(txn, "timeout")
    assert journal.record_result(txn, True, "00") == J.REVERSAL_PENDING


def test_recover_turns_in_flight_transactions_into_due_reversals(tmp_path):
    journal = Journal(str(tmp_path))
    in_flight = begin(journal)
    done = begin(journal, ref=2)
    journal.record_result(done, True, "00")
    journal.db.close()  # power cut
    journal = Journal(str(tmp_path))
    assert journal.recover() == 1
    assert journal.get(in_flight)["status"] == J.REVERSAL_PENDING
    assert journal.get(in_flight)["reason"] == "restart"
    assert journal.get(done)["status"] == J.APPROVED
    assert [i["txn_id"] for i in journal.due()] == [in_flight]
    assert journal.recover() == 0


def test_queue_backoff_and_due_times(tmp_path):
    now = [1000.0]
    journal = Journal(str(tmp_path), clock=lambda: now[0])
    txn = begin(journal)
    journal.reverse(txn, "timeout")
    [item] = journal.due(now[0])
    journal.attempt_failed(item["id"], now[0] + 4, "no reply")
    assert journal.due(now[0]) == []
    assert journal.next_due_time() == 1004.0
    now[0] = 1004.0
    [item] = journal.due(now[0])
    assert item["attempts"] == 1 and item["last_error"] == "no reply"


def test_the_queue_refuses_card_data(tmp_path):
    journal = Journal(str(tmp_path))
    original = m.build_financial_request("sale", 1000, 1, UTC, UTC, "KAPOS001", "M", "978",
                                         track2="4111111111111111=3012101000")
    with_pan = codec.encode(m.build_reversal(original, "timeout"))  # field 2 from track 2
    with pytest.raises(JournalError, match="field 2"):
        journal.begin(1, "000001", "0200", "sale", 1000, 0, 1000, "1125100000", 1,
                      reversal=("000001", with_pan))
    assert journal.transactions() == []  # the whole begin() rolled back
    for number in (35, 52, 55):
        with pytest.raises(JournalError):
            J.check_storable({number: "x"})


def test_batch_totals_close_and_finish(tmp_path):
    journal = Journal(str(tmp_path))
    sale = begin(journal, amount=1000, fee=15)
    journal.record_result(sale, True, "00")
    refund = begin(journal, ref=2, kind="refund", amount=300)
    journal.record_result(refund, True, "00")
    void = begin(journal, ref=3, kind="void", amount=1000, original_id=sale)
    journal.record_result(void, True, "00")
    reversed_sale = begin(journal, ref=4, amount=5000)
    journal.record_result(reversed_sale, True, "00")
    journal.reverse(reversed_sale, "cancelled")
    declined = begin(journal, ref=5, amount=7)
    journal.record_result(declined, False, "05")
    balance = begin(journal, ref=6, kind="balance", amount=0)
    journal.record_result(balance, True, "00")
    totals = journal.batch_totals(1)
    assert totals["debits_count"] == 1 and totals["debits_amount"] == 1015
    assert totals["debits_reversal_count"] == 1 and totals["debits_reversal_amount"] == 1015
    assert totals["credits_count"] == 1 and totals["credits_amount"] == 300
    assert totals["inquiries_count"] == 1
    assert journal.close_batch() == 1
    assert journal.current_batch() == 2
    assert journal.close_batch() == 1  # still settling: the same batch again
    journal.finish_batch(1, "00", True, totals)
    assert journal.settling_batch() is None
    assert journal.close_batch() == 2
    assert journal.batches()[0]["state"] == "agreed"


def test_prune_forgets_old_reconciled_batches_but_never_what_is_still_due(tmp_path):
    journal = Journal(str(tmp_path))
    old = begin(journal)
    journal.record_result(old, True, "00")
    stuck = begin(journal, ref=2)
    journal.reverse(stuck, "timeout")  # its reversal is still due
    for _ in range(3):
        number = journal.close_batch()
        journal.finish_batch(number, "00", True, {})
    assert journal.current_batch() == 4
    assert journal.prune(keep_batches=5) == 0  # batch 1 is recent enough
    assert journal.prune(keep_batches=2) == 1
    assert journal.get(old) is None and journal.queue_items(old) == []
    assert journal.get(stuck)["status"] == J.REVERSAL_PENDING
    assert journal.pending_count() == 1


def test_a_queued_reversal_goes_0400_then_0420_then_0421():
    from kapos.host import client
    assert [client.reversal_mti(n) for n in range(4)] == ["0400", "0420", "0421", "0421"]


def test_the_queue_holds_only_reversals_and_an_answer_reverses(tmp_path):
    journal = Journal(str(tmp_path))
    txn = begin(journal)
    journal.record_result(txn, True, "00", auth_code="A1", rrn="000000000001")
    assert journal.batch_totals(journal.current_batch())["debits_count"] == 1
    journal.reverse(txn, "cancelled")
    assert {item["kind"] for item in journal.queue_items()} == {J.REVERSAL}
    journal.complete(journal.due()[0]["id"], "00")
    assert journal.get(txn)["status"] == J.REVERSED
    assert journal.batch_totals(journal.current_batch())["debits_count"] == 0
    assert "advice-pending" not in J.STATUSES
