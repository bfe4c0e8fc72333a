"""The registry keeps the rows it read (registry._Known, SQLite): a message from a known
terminal's next KSN counter reads no registry row. These tests hold it to the table:
what another connection writes, what a rollback undoes and what a committed group burned
are seen by the next message, as if every message read its row."""

import sqlite3

import pytest

from hostkit import new_ledger
from kapos.security import dukpt
from kapos_tools.host.db import connect
from kapos_tools.host.registry import DISABLED, TerminalRegistry

IK_ID = bytes.fromhex("FFFF9876543210E0")
OTHER_IK_ID = bytes.fromhex("FFFF9876543210E1")


def message(counter, ik_id=IK_ID):
    return {41: "KAPOS001", 42: "KAPOS-MERCHANT1", 11: "%06d" % counter,
            53: dukpt.make_ksn(ik_id, counter)}


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


def test_counters_burned_by_a_commit_that_failed_are_fresh_again(monkeypatch):
    ledger = new_ledger()
    registry = TerminalRegistry(ledger.db, auto_enroll=True)
    assert send(registry, 1).refusal is None
    execute = ledger.db.raw_execute

    def failing_commit(sql, *args):
        if sql == "COMMIT":
            execute("ROLLBACK")
            raise sqlite3.OperationalError("disk I/O error")
        return execute(sql, *args)

    monkeypatch.setattr(ledger.db, "raw_execute", failing_commit)
    with pytest.raises(sqlite3.OperationalError):
        with ledger.db.transaction():
            for counter in (2, 3, 4):
                assert send(registry, counter).refusal is None
    monkeypatch.setattr(ledger.db, "raw_execute", execute)
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
