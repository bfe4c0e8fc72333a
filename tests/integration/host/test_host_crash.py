"""Crash safety: a child process runs transactions through HostAuthorizer with its
journal on disk and is killed (SIGKILL) at random points - before, during and after
journal commits, requests and replies. Each restart recovers (pending -> reversal);
after the last one the journal and the host ledger must agree exactly (hostkit.agree):
no double charge, no approval in force for a transaction the terminal reversed or never
knew, and the ledger's balances equal to its transactions.

By default 10 kills; KAPOS_SOAK=1 runs the soak variant with 200 (`make soak`)."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from engines import engine  # noqa: F401 (fixtures)
from hostkit import CRASH_CARDS, HostThread, agree, ledger_url
from kapos.io import journal as J
from kapos.io.journal import Journal
from kapos_tools.host import Ledger

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "crash_child.py")


def spawn(journal_dir, port, seed, mode):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [HERE] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    return subprocess.Popen([sys.executable, CHILD, journal_dir, str(port), str(seed), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)


def crash_run(tmp_path, kills, seed=1234):
    rng = random.Random(seed)
    cards_file = tmp_path / "cards.toml"
    cards_file.write_text(CRASH_CARDS)
    ledger_path = ledger_url(str(tmp_path / "host.db"))  # or a PostgreSQL ledger (engine)
    journal_dir = str(tmp_path / "journal")
    host = HostThread(ledger_path, cards=str(cards_file))
    port = host.start()
    started = time.monotonic()
    try:
        for kill in range(kills):
            child = spawn(journal_dir, port, seed + kill, "run")
            if rng.random() < 0.2:
                time.sleep(rng.uniform(0.0, 0.3))  # maybe while starting / recovering
            else:
                line = child.stdout.readline()
                assert line.strip() == b"ready", line
                time.sleep(rng.uniform(0.01, 0.4))
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            child.stdout.close()
        child = spawn(journal_dir, port, seed, "recover")
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0 and b"idle" in out, out
    finally:
        host.stop()
    elapsed = time.monotonic() - started
    journal = Journal(journal_dir)
    ledger = Ledger(ledger_path)
    try:
        problems = agree(journal, ledger)
        rows = journal.transactions()
        counts = {}
        for row in rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        reversals = ledger.reversals()
        applied = sum(r["applied"] for r in reversals)
        print("\ncrash test: %d kills in %.1f s; %d transactions journaled %s; host: %d "
              "transactions, %d reversals (%d undid an approval, %d for requests it never saw)"
              % (kills, elapsed, len(rows), counts, len(ledger.transactions()), len(reversals),
                 applied, sum(1 for r in reversals if r["code"] == "25")))
        assert problems == []
        assert counts.get(J.PENDING, 0) == 0 and counts.get(J.REVERSAL_PENDING, 0) == 0
        assert counts.get(J.APPROVED, 0) > 0
        return counts, reversals
    finally:
        journal.close()
        ledger.close()


def test_kill_restart_recover_ledger_agrees(tmp_path, engine):
    crash_run(tmp_path, kills=10)


@pytest.mark.soak
@pytest.mark.skipif(os.environ.get("KAPOS_SOAK") != "1", reason="set KAPOS_SOAK=1 (make soak)")
def test_kill_restart_recover_soak(tmp_path):
    crash_run(tmp_path, kills=200, seed=int(os.environ.get("KAPOS_SEED", "4321")))
