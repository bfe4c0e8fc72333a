"""The timed sim board (boards/sim-pi.toml): buses that take real wire time. Ordering,
not timings: with the OLED's I2C bus held mid-frame and the NFC reader mid-exchange, the
loop still handles keys and a whole EMV sale; the panel catches up with the newest
screen once the bus is free."""

import asyncio
import sqlite3
import threading

from kapos.harness import Harness
from kapos.host import codec
from kapos.io.transport import NoReply


def running_sim_pi():
    """The sim-pi board running in this loop (its own temp data dir, the in-process host)."""
    return Harness("sim-pi", overrides=[("host.reply_delay", "0")])


class HeldWire:
    """Wraps a sim Wire: while `held`, sending blocks (a bus stuck mid-transfer)."""

    def __init__(self, wire):
        self.wire = wire
        self.free = threading.Event()
        self.blocked = threading.Event()
        self.timed_out = False
        self._send = wire.send
        wire.send = self.send

    def send(self, *args, **kwargs):
        if not self.free.is_set():
            self.blocked.set()
            if not self.free.wait(10.0):
                self.timed_out = True
        return self._send(*args, **kwargs)


def test_a_sale_runs_while_the_oled_bus_is_held():
    async def go():
        async with running_sim_pi() as r:
            display = r.platform.display
            held = HeldWire(display.wire)
            await r.play("key 1\n")
            assert await asyncio.to_thread(held.blocked.wait, 5.0)  # a frame is stuck on the bus
            await r.play("timeout 20\nkeys 780\nkey ENTER\ntap emv-tap\nexpect screen \"1 Debit\"\n"
                         "key 1\nkeys 1234\nkey ENTER\nexpect result approved\n")
            assert not held.free.is_set()  # everything above ran with the bus still held
            held.free.set()
            assert await asyncio.to_thread(display.flush, 10.0)
            assert not held.timed_out
            expected = display.device.image.tobytes()
            from kapos.ports.shared.oled_frames import render
            assert expected == render(r.terminal.screen).tobytes()  # the newest screen, not a stale one
            assert display._worker.frames_dropped > 0  # superseded frames were never sent

    asyncio.run(go())


# ---------------------------------------------------------------- the journal's writer thread

EMV_SALE = ("timeout 20\nkey 1\nkeys 780\nkey ENTER\ntap emv-tap\nexpect screen \"1 Debit\"\n"
            "key 1\nkeys 1234\nkey ENTER\n")


class SeenOnTheWire:
    """Wraps the authorizer's transport: at the moment each message leaves, what a fresh
    connection to the journal file sees (committed = durable), and which thread ran each
    journal write."""

    def __init__(self, authorizer, lose_reply_to=()):
        self.journal = authorizer.journal
        self.sent = []  # (mti, stan, txn row, queue rows) as committed when it left
        self.writes = []  # (write, thread)
        self.lose_reply_to = set(lose_reply_to)
        transport = authorizer.transport
        real_request = transport.request

        async def request(payload, timeout, accept=None):
            mti, stan = bytes(payload[:4]).decode(), codec.decode(bytes(payload)).get(11)
            self.sent.append((mti, stan) + self.committed(stan))
            reply = await real_request(payload, timeout, accept)
            if mti in self.lose_reply_to:
                self.lose_reply_to.discard(mti)
                raise NoReply("reply lost (test)")  # the host applied it; the terminal never heard
            return reply

        transport.request = request
        for name in ("next_stan", "begin", "record_result", "reverse", "complete", "mark_unsent"):
            self._watch(name)

    def _watch(self, name):
        real = getattr(self.journal, name)

        def write(*args, **kwargs):
            self.writes.append((name, threading.current_thread()))
            return real(*args, **kwargs)

        setattr(self.journal, name, write)

    def committed(self, stan):
        db = sqlite3.connect(self.journal.path)
        try:
            db.row_factory = sqlite3.Row
            # a reversal carries the original's STAN too; the original is the txn row
            row = db.execute("SELECT * FROM txns WHERE stan = ? ORDER BY id DESC LIMIT 1", (stan,)).fetchone()
            queue = db.execute("SELECT kind, state FROM queue WHERE txn_id = ?",
                               (row["id"],)).fetchall() if row else []
            return (dict(row) if row else None, [tuple(q) for q in queue])
        finally:
            db.close()


def test_journal_writes_run_on_the_writer_thread_and_each_request_leaves_after_its_record():
    """With 20 ms SD-card commits (journal_fsync_ms), the sale's journal writes run on the
    journal's writer thread, never on the loop's; the 0200 leaves only once its pending
    row and armed reversal are committed, and the result is committed before it shows."""
    async def go():
        async with running_sim_pi() as r:
            assert r.terminal.authorizer.journal.fsync_delay == 0.020  # boards/sim-pi.toml
            seen = SeenOnTheWire(r.terminal.authorizer)
            await r.play(EMV_SALE + "expect result approved\n")
            loop_thread = threading.current_thread()
            names = [name for name, _ in seen.writes]
            assert "begin" in names and "record_result" in names, names
            assert all(thread is not loop_thread for _, thread in seen.writes), seen.writes
            sales = [s for s in seen.sent if s[0] == "0200"]
            assert len(sales) == 1
            _, stan, row, queue = sales[0]
            assert row is not None and row["stan"] == stan and row["status"] == "pending"
            assert queue == [("reversal", "armed")]  # durable before the request left
            assert r.terminal.authorizer.journal.find_by_stan(stan)["status"] == "approved"

    asyncio.run(go())


def test_a_reversal_is_durable_before_it_leaves_under_slow_commits():
    """The 0200's reply is lost (the host applied the sale): the reversal is made due on
    disk (reversal-pending, due) before the 0400 leaves, and it is reversed once answered."""
    async def go():
        async with running_sim_pi() as r:
            seen = SeenOnTheWire(r.terminal.authorizer, lose_reply_to=("0200",))
            await r.play(EMV_SALE + "expect result error\n")
            await r.terminal.authorizer.wait_idle(timeout=10.0)
            mtis = [s[0] for s in seen.sent]
            assert "0200" in mtis and "0400" in mtis, mtis
            sale = seen.sent[mtis.index("0200")]
            reversal = seen.sent[mtis.index("0400")]
            assert mtis.index("0200") < mtis.index("0400")
            _, _, row, queue = reversal
            assert row["stan"] == sale[1] and row["status"] == "reversal-pending", row
            assert ("reversal", "due") in queue
            assert r.terminal.authorizer.journal.get(row["id"])["status"] == "reversed"
            loop_thread = threading.current_thread()
            assert [name for name, thread in seen.writes if name == "reverse" and thread is loop_thread] == []

    asyncio.run(go())
