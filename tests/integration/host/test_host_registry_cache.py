"""The registry keeps the rows it read (registry._Known, SQLite): a message from a known
terminal's next KSN counter reads no registry row. These tests hold it to the table:
what another connection writes, what a rollback undoes and what a committed group burned
are seen by the next message, as if every message read its row."""

import contextlib
import sqlite3

import pytest

from hostkit import new_ledger
from kapos.security import dukpt
from kapos_tools.host.db import connect
from kapos_tools.host.registry import DISABLED, TerminalRegistry
from kapos_tools.host.registry import _known_rows as _KNOWN_ROWS  # the rows kept, unpatched

IK_ID = bytes.fromhex("FFFF9876543210E0")
OTHER_IK_ID = bytes.fromhex("FFFF9876543210E1")


def message(counter, ik_id=IK_ID, terminal_id="KAPOS001", merchant="KAPOS-MERCHANT1"):
    request = {41: terminal_id, 11: "%06d" % counter, 53: dukpt.make_ksn(ik_id, counter)}
    if merchant is not None:
        request[42] = merchant
    return request


@contextlib.contextmanager
def failing_commits(db):
    """Every COMMIT of `db` fails (a disk error) after rolling back."""
    execute = db.raw_execute

    def failing_commit(sql, *args):
        if sql == "COMMIT":
            execute("ROLLBACK")
            raise sqlite3.OperationalError("disk I/O error")
        return execute(sql, *args)

    db.raw_execute = failing_commit
    try:
        yield
    finally:
        db.raw_execute = execute


def send(registry, counter, body=None, ik_id=IK_ID):
    body = body if body is not None else b"m%d" % counter
    verdict = registry.check(message(counter, ik_id), body)
    if verdict.refusal is None and verdict.reply is None:
        registry.answered(verdict, b"reply " + body)
    return verdict


def registry_reads(statements):
    return [s for s in statements if "FROM terminal_registry" in s]


def test_a_known_terminals_next_counters_read_no_registry_row():
    ledger = new_ledger()
    registry = TerminalRegistry(ledger.db, auto_enroll=True)
    assert send(registry, 1).refusal is None  # enrols it
    assert send(registry, 2).refusal is None  # reads its row (an enrolment is not kept)
    statements = []
    ledger.db.conn.set_trace_callback(statements.append)
    for first in (3, 11, 19, 27):
        with ledger.db.transaction():  # a group of eight fresh counters
            for counter in range(first, first + 8):
                assert send(registry, counter).refusal is None
    ledger.db.conn.set_trace_callback(None)
    assert registry_reads(statements) == []
    assert len([s for s in statements if s == "PRAGMA data_version"]) == 4  # one a group
    # what the rows would have said: a repeat, a reuse, a stale counter
    assert send(registry, 34).reply == b"reply m34"
    assert "already used" in send(registry, 33, b"another body").refusal
    assert "stale" in send(registry, 1).refusal


def test_what_another_connection_writes_is_seen_by_the_next_message(tmp_path):
    path = str(tmp_path / "host.db")
    ledger = new_ledger(path)
    registry = TerminalRegistry(ledger.db, auto_enroll=True)
    for counter in (1, 2, 3):
        assert send(registry, counter).refusal is None
    admin = connect(path)  # `kapos host disable` / `enroll --replace` from another process
    try:
        TerminalRegistry(admin).set_status("KAPOS001", DISABLED)
        assert send(registry, 4).refusal == "terminal disabled"
        TerminalRegistry(admin).enroll("KAPOS001", "KAPOS-MERCHANT1", OTHER_IK_ID, replace=True)
    finally:
        admin.close()
    assert "another device" in send(registry, 5).refusal  # the old keys no longer speak
    assert send(registry, 1, ik_id=OTHER_IK_ID).refusal is None  # the new keys from 1 again


def test_a_row_read_in_a_transaction_that_rolled_back_is_forgotten():
    ledger = new_ledger()
    enrolling = TerminalRegistry(ledger.db, auto_enroll=True)
    with pytest.raises(RuntimeError):
        with ledger.db.transaction():
            assert send(enrolling, 1).refusal is None  # auto-enrolled here ...
            assert send(enrolling, 2).refusal is None  # ... and its row read back
            raise RuntimeError("the group fails")
    assert enrolling.terminals() == []
    strict = TerminalRegistry(ledger.db, auto_enroll=False)  # the same connection
    assert "not enrolled" in send(strict, 3).refusal


def test_counters_burned_by_a_commit_that_failed_are_fresh_again():
    ledger = new_ledger()
    registry = TerminalRegistry(ledger.db, auto_enroll=True)
    assert send(registry, 1).refusal is None
    with failing_commits(ledger.db), pytest.raises(sqlite3.OperationalError):
        with ledger.db.transaction():
            for counter in (2, 3, 4):
                assert send(registry, counter).refusal is None
    for counter in (2, 3, 4):  # nothing of it was written: the same counters, new messages
        verdict = send(registry, counter, b"again %d" % counter)
        assert verdict.refusal is None and verdict.reply is None
    assert send(registry, 3, b"again 3").reply == b"reply again 3"


def test_counters_burned_one_statement_each_inside_savepoints_are_known_as_used():
    """A group run again with savepoints (db.py) burns each counter as it goes."""
    ledger = new_ledger()
    registry = TerminalRegistry(ledger.db, auto_enroll=True)
    assert send(registry, 1).refusal is None
    ledger.db.savepoints_next = True
    with ledger.db.transaction():
        for counter in (2, 3):
            with ledger.db.transaction():  # one message, in its savepoint
                assert send(registry, counter).refusal is None
        assert send(registry, 2).reply == b"reply m2"
    assert "already used" in send(registry, 3, b"another body").refusal
    assert send(registry, 4).refusal is None


def test_counters_another_host_process_burned_are_seen_as_used(tmp_path):
    """Two host processes on one SQLite file: the terminal fails over to the other one
    and back; the counters the other burned are not fresh here."""
    path = str(tmp_path / "host.db")
    ledger = new_ledger(path)
    here = TerminalRegistry(ledger.db, auto_enroll=True)
    for counter in (1, 2, 3):
        assert send(here, counter).refusal is None  # its row known here: highest 3
    other_db = connect(path)
    try:
        there = TerminalRegistry(other_db, auto_enroll=True)
        for counter in (4, 5, 6):
            assert send(there, counter).refusal is None
    finally:
        other_db.close()
    assert send(here, 5).reply == b"reply m5"  # the other's stored reply, not a new sale
    assert "already used" in send(here, 6, b"another body").refusal
    assert send(here, 7).refusal is None


def test_a_counter_checked_and_never_answered_still_moves_the_stale_floor():
    """check() accepted 100 inside a group and nothing burned it (the caller failed after
    check): the floor it wrote (last_counter 100) makes 50 stale, as the table says."""
    ledger = new_ledger()
    registry = TerminalRegistry(ledger.db, auto_enroll=True)
    for counter in (1, 2):
        assert send(registry, counter).refusal is None
    with ledger.db.transaction():
        assert registry.check(message(100), b"m100").refusal is None  # not answered
    assert "stale" in send(registry, 50).refusal


def test_a_group_whose_burns_a_counter_far_ahead_pruned_still_commits():
    ledger = new_ledger()
    registry = TerminalRegistry(ledger.db, auto_enroll=True)
    assert send(registry, 1).refusal is None
    with ledger.db.transaction():
        assert send(registry, 2).refusal is None  # burned in the group, not yet written
        assert registry.check(message(100), b"m100").refusal is None  # prunes it
    assert registry.terminals()[0]["last_counter"] == 100
    assert "stale" in send(registry, 2).refusal


# ---------------------------------------------------------------- kept rows = the tables

TERMINALS = ("KAPOS001", "KAPOS002")
IK_IDS = (IK_ID, OTHER_IK_ID)


def _random_ops(rnd, count):
    ops = []
    for _ in range(count):
        r = rnd.random()
        if r < 0.55:
            ops.append(("send", rnd.choice(TERMINALS), rnd.randrange(2) if rnd.random() < 0.1 else 0,
                        rnd.choice((1, 1, 1, 2, 0, -1, -35, -40, 40, 120)), rnd.randrange(2),
                        rnd.choice(("answer", "answer", "none", "unanswered"))))
        elif r < 0.63:
            ops.append(("open", rnd.random() < 0.3))
        elif r < 0.68:
            ops.append(("inner",))
        elif r < 0.73:
            ops.append(("inner_close", rnd.random() < 0.3))
        elif r < 0.81:
            ops.append(("close", rnd.choice(("ok", "ok", "raise", "failed commit"))))
        elif r < 0.86:
            ops.append(("flush",))
        elif r < 0.93:
            ops.append(("other", rnd.choice(("send", "disable", "enable", "rekey")),
                        rnd.choice(TERMINALS), rnd.randrange(2), rnd.randrange(1, 200)))
        else:
            ops.append(("here", rnd.choice(("disable", "enable", "rekey")), rnd.choice(TERMINALS),
                        rnd.randrange(2)))
    return ops


def _run(ops, path, keep_rows, monkeypatch):
    """What each operation gave (verdicts, errors) and the tables at the end."""
    from kapos_tools.host import registry as R

    monkeypatch.setattr(R, "_known_rows", _KNOWN_ROWS if keep_rows else lambda db: None)
    ledger = new_ledger(path)
    db = ledger.db
    registry = TerminalRegistry(db, auto_enroll=True, clock=lambda: 1.0)
    last, blocks, seen = {}, [], []
    for op in ops:
        try:
            if op[0] == "send":
                _, tid, ik, step, variant, answer = op
                counter = max(1, last.get(tid, 0) + step)
                last[tid] = max(last.get(tid, 0), counter)
                body = b"%s %d %d" % (tid.encode(), counter, variant)
                verdict = registry.check(message(counter, IK_IDS[ik], tid), body)
                if verdict.refusal is None and verdict.reply is None and answer != "unanswered":
                    registry.answered(verdict, None if answer == "none" else b"reply " + body)
                seen.append((verdict.refusal, verdict.reply))
            elif op[0] == "open" and not blocks:
                db.savepoints_next = op[1] or db.savepoints_next
                blocks.append(db.transaction())
                blocks[-1].__enter__()
            elif op[0] == "inner" and blocks:
                blocks.append(db.transaction())
                blocks[-1].__enter__()
            elif op[0] == "inner_close" and len(blocks) > 1:
                error = RuntimeError("a message failed") if op[1] else None
                blocks.pop().__exit__(type(error) if error else None, error, None)
            elif op[0] == "close" and blocks:
                while len(blocks) > 1:
                    blocks.pop().__exit__(None, None, None)
                group = blocks.pop()
                if op[1] == "raise":
                    group.__exit__(RuntimeError, RuntimeError("the group failed"), None)
                elif op[1] == "failed commit":
                    with failing_commits(db):
                        group.__exit__(None, None, None)
                else:
                    group.__exit__(None, None, None)
            elif op[0] == "flush" and blocks:
                db.flush_deferred()
            elif op[0] == "other" and not blocks:  # another host process / `kapos host ...`
                _, what, tid, ik, counter = op
                other = connect(path)
                try:
                    theirs = TerminalRegistry(other, auto_enroll=True, clock=lambda: 1.0)
                    if what == "send":
                        body = b"other %d" % counter
                        verdict = theirs.check(message(counter, IK_IDS[ik], tid, None), body)
                        if verdict.refusal is None and verdict.reply is None:
                            theirs.answered(verdict, b"their reply")
                        seen.append(("theirs", verdict.refusal, verdict.reply))
                    elif what == "rekey":
                        theirs.enroll(tid, "KAPOS-MERCHANT1", IK_IDS[ik], replace=True)
                    else:
                        theirs.set_status(tid, DISABLED if what == "disable" else "active")
                finally:
                    other.close()
            elif op[0] == "here":
                _, what, tid, ik = op
                if what == "rekey":
                    registry.enroll(tid, "KAPOS-MERCHANT1", IK_IDS[ik], replace=True)
                else:
                    registry.set_status(tid, DISABLED if what == "disable" else "active")
        except Exception as exc:  # refusals of the API itself are part of what is compared
            seen.append((op[0], type(exc).__name__))
        if keep_rows and blocks:
            _assert_kept_rows_are_the_tables(db)
    while blocks:
        try:
            blocks.pop().__exit__(None, None, None)
        except Exception as exc:  # a doomed group: RunAgainWithSavepoints
            seen.append(("end", type(exc).__name__))
    tables = (sorted(tuple(r) for r in db.execute(
        "SELECT terminal_id, ik_id, status, last_counter FROM terminal_registry")),
        sorted(tuple(r) for r in db.execute("SELECT terminal_id, counter, digest, reply FROM ksn_used")))
    ledger.close()
    return seen, tables


def _assert_kept_rows_are_the_tables(db):
    """Inside a transaction that checked them: each kept row is its table row, the
    highest counter as the table and this transaction's pending burns say."""
    from kapos_tools.host import registry as R

    known = getattr(db, "_registry_known", None)
    if known is None or known.transaction != db.transactions or known.rollbacks != db.rollbacks:
        return
    for terminal_id, row in known.rows.items():
        found = db.execute(R._CHECK_SQL, (-1, terminal_id)).fetchone()
        assert found is not None, terminal_id
        assert row[:3] == tuple(found[:3]), terminal_id
        pending = (db.deferred(R._BURNS) or {}).get(terminal_id) or {0: None}
        table = R._highest(found[3], found[6])
        assert max(row[3], max(pending)) == max(table, max(pending)), (terminal_id, row, table)


def test_kept_rows_give_every_verdict_the_tables_give(tmp_path, monkeypatch):
    """Random runs of messages, groups, inner blocks that fail, failed COMMITs, another
    connection's messages and registry writes: with the kept rows and with every row read
    from the tables, the same verdicts, errors and tables; inside each group, every kept
    row is its table row."""
    import random

    for seed in range(100):
        ops = _random_ops(random.Random(seed), 150)
        kept = _run(ops, str(tmp_path / ("kept%d.db" % seed)), True, monkeypatch)
        read = _run(ops, str(tmp_path / ("read%d.db" % seed)), False, monkeypatch)
        assert kept == read, "seed %d" % seed
