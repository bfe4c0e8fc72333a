"""The journal's writer thread: writes awaited through `journal.aio` run in order on one
thread; reads and new submissions never wait for a commit in progress (the loop must not
stall for an SD card's fsync)."""

import asyncio
import threading

import pytest

from kapos.io.journal import Journal


def test_aio_writes_run_in_order_on_one_thread_that_is_not_the_loops(tmp_path):
    journal = Journal(str(tmp_path))
    seen = []
    real = journal.next_stan

    def next_stan():
        seen.append(threading.current_thread())
        return real()

    journal.next_stan = next_stan

    async def go():
        return await asyncio.gather(*(journal.aio.next_stan() for _ in range(20)))

    try:
        stans = asyncio.run(go())
        assert stans == ["%06d" % n for n in range(1, 21)]  # submission order kept
        assert len(set(seen)) == 1 and seen[0] is not threading.main_thread()
    finally:
        journal.close()


def test_reads_and_submissions_do_not_wait_for_a_commit_in_progress(tmp_path):
    journal = Journal(str(tmp_path))
    txn_stan = journal.next_stan()
    holding, release = threading.Event(), threading.Event()

    def commit_in_progress():  # holds the write lock as a commit waiting on its fsync does
        with journal._lock:
            holding.set()
            release.wait(10.0)

    holder = threading.Thread(target=commit_in_progress)
    holder.start()
    results = []

    def loop_side():
        results.append((journal.last_stan, journal.pending_count(), journal.stan_used(txn_stan),
                        journal.current_batch()))
        results.append(journal._on_writer(journal.next_stan))  # queued, not waited for

    try:
        assert holding.wait(5.0)
        reader = threading.Thread(target=loop_side)
        reader.start()
        reader.join(5.0)
        finished = not reader.is_alive()
        release.set()
        holder.join(5.0)
        reader.join(5.0)
        assert finished, "a read or a submission waited for the commit in progress"
        assert results[0] == (txn_stan, 0, False, 1)
        assert results[1].result(5.0) == "%06d" % (int(txn_stan) + 1)
    finally:
        release.set()
        journal.close()


def test_aio_offers_only_the_journals_writes(tmp_path):
    journal = Journal(str(tmp_path))
    try:
        with pytest.raises(AttributeError):
            journal.aio.db
    finally:
        journal.close()
