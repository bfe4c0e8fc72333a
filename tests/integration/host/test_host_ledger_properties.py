"""Random sequences of sales, voids, refunds (linked and not), pre-authorizations with
completions and releases, reversals, repeated reversals, advices and settlements from
several terminals, through Ledger.handle with
real encoded messages, one transaction each or several in one (the server's group commit:
their writes kept until COMMIT, each message reading the table beside them). After every
step outside a group, and at each group's COMMIT: the double-entry book balances (all entries sum
to zero, every balance is its initial balance plus its entries), no original is undone
twice or refunded beyond its amount, no hold completed beyond its amount, no account's
available balance (balance less holds in force) below zero, and each batch's settlement totals agree with the
ledger's postings. `make test` runs a short version; `make soak` a long one."""

import os
import time

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from engines import engine  # noqa: F401 (fixtures)
from hostkit import TESTCARDS, new_ledger

# every rule on both ledger engines (conftest.py: SQLite, and a real PostgreSQL server)
pytestmark = pytest.mark.usefixtures("engine")
from kapos.host import codec
from kapos.host import messages as m
from kapos_tools.host import book

TERMINALS = ("KAPOS001", "KAPOS002", "KAPOS003")
MID = "KAPOS-MERCHANT1"
CARDS = ("visa-debit", "mc-credit", "amex", "low-funds")


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.ledger = new_ledger(daily_limit=10 ** 9)
        self.stans = dict.fromkeys(TERMINALS, 0)
        self.batches = dict.fromkeys(TERMINALS, 1)
        self.sent = []  # (request, reply) of every 0200 / 0220 sent
        self.approved = []  # (request, reply) of approved sales and refunds
        self.holds = []  # (request, reply) of approved pre-authorizations

    # ------------------------------------------------------------ plumbing

    def _stan(self, tid):
        self.stans[tid] += 1
        return self.stans[tid]

    def _send(self, message):
        reply = self.ledger.handle(codec.decode(codec.encode(message)))
        assert reply is not None and reply[39] != "96", "the ledger failed on a message"
        return reply

    def _request(self, tid, kind, amount, card_id, **kw):
        when = time.gmtime()
        private = {"BN": "%06d" % self.batches[tid]}
        private.update(kw.pop("private", {}))
        return m.build_financial_request(
            kind, amount, self._stan(tid), when, when, tid, MID, "978",
            track2=TESTCARDS[card_id].track2_equivalent(), private=private, **kw)

    def _financial(self, message):
        reply = self._send(message)
        self.sent.append((message, reply))
        if reply[39] == "00" and message[3][:2] in ("00", "20"):
            self.approved.append((message, reply))
        return reply

    # ------------------------------------------------------------ group commits

    group = None  # the open group transaction, or None: one transaction per message

    @rule()
    def open_group(self):
        """The next messages share one transaction, as in the server's group commit."""
        if self.group is None:
            self.group = self.ledger.db.transaction()
            self.group.__enter__()

    @rule()
    def commit_group(self):
        if self.group is not None:
            group, self.group = self.group, None
            group.__exit__(None, None, None)

    # ------------------------------------------------------------ rules

    @rule(tid=st.sampled_from(TERMINALS), card=st.sampled_from(CARDS),
          amount=st.integers(1, 50000), fee=st.integers(0, 300))
    def sale(self, tid, card, amount, fee):
        private = {"FE": "%012d" % fee} if fee else {}
        self._financial(self._request(tid, "sale", amount, card, private=private))

    @rule(tid=st.sampled_from(TERMINALS), card=st.sampled_from(CARDS),
          amount=st.integers(1, 60000))
    def unlinked_refund(self, tid, card, amount):
        self._financial(self._request(tid, "refund", amount, card))

    @precondition(lambda self: self.approved)
    @rule(data=st.data(), part=st.integers(1, 100))
    def linked_refund(self, data, part):
        original, reply = data.draw(st.sampled_from(self.approved))
        if original[3][:2] != "00":
            return
        tid = original[41].strip()
        pan = codec.decode(codec.encode(original))[35].split("=")[0]
        card = next(c for c in CARDS if TESTCARDS[c].pan == pan)
        amount = max(1, int(original[4]) * part // 100)
        message = self._request(tid, "refund", amount, card)
        message[37] = reply[37]
        self._financial(message)

    @precondition(lambda self: self.approved)
    @rule(data=st.data(), wrong_amount=st.booleans())
    def void(self, data, wrong_amount):
        original, reply = data.draw(st.sampled_from(self.approved))
        tid = original[41].strip()
        kind = "void" if original[3][:2] == "00" else "void_refund"
        amount = int(original[4]) + (1 if wrong_amount else 0)
        when = time.gmtime()
        message = m.build_financial_request(kind, amount, self._stan(tid), when, when, tid, MID,
                                            "978", pan="0", private="BN%03d%06d" % (6, self.batches[tid]))
        del message[2]
        message[37] = reply[37]
        message[90] = m.original_data(original["mti"], original[11], original[7])
        self._financial(message)

    @rule(tid=st.sampled_from(TERMINALS), card=st.sampled_from(CARDS),
          amount=st.integers(1, 60000))
    def preauth(self, tid, card, amount):
        message = self._request(tid, "preauth", amount, card)
        reply = self._financial(message)
        if reply[39] == "00":
            self.holds.append((message, reply))

    @precondition(lambda self: self.holds)
    @rule(data=st.data(), part=st.integers(0, 110), release=st.booleans())
    def close_hold(self, data, part, release):
        """A completion for part of the hold (over 100: more than it, refused) or a release."""
        original, reply = data.draw(st.sampled_from(self.holds))
        tid = original[41].strip()
        kind = "release" if release else "completion"
        amount = None if release else max(1, int(original[4]) * part // 100)
        if part > 100 and not release:
            amount = max(amount, int(original[4]) + 1)  # 101% of 1 rounds down to the hold
        when = time.gmtime()
        message = m.build_financial_request(kind, amount, self._stan(tid), when, when, tid, MID,
                                            "978", pan="0", private="BN%03d%06d" % (6, self.batches[tid]))
        del message[2]
        message[37] = reply[37]
        answer = self._financial(message)
        if part > 100 and not release:
            assert answer[39] != "00"

    @precondition(lambda self: any(r["mti"] == "0200" for r, _ in self.sent))
    @rule(data=st.data(), repeat=st.booleans())
    def reversal(self, data, repeat):
        original, reply = data.draw(st.sampled_from([s for s in self.sent if s[0]["mti"] == "0200"]))
        message = m.build_reversal(original, "timeout", response=reply, advice=repeat)
        message.pop(2, None)
        message.pop(14, None)
        answer = self._send(message)
        assert answer[39] in ("00", "12", "25", "51")
        if repeat:  # a repeat gets the same answer and changes nothing
            before = self.ledger.check()
            assert self._send(dict(message, mti="0421"))[39] == answer[39]
            assert self.ledger.check() == before

    @rule(tid=st.sampled_from(TERMINALS), card=st.sampled_from(CARDS),
          amount=st.integers(1, 200000), kind=st.sampled_from(("sale", "refund")))
    def advice(self, tid, card, amount, kind):
        when = time.gmtime()
        original = m.build_financial_request(
            kind, amount, self._stan(tid), when, when, tid, MID, "978",
            pan=TESTCARDS[card].pan, expiry=TESTCARDS[card].expiry,
            private={"BN": "%06d" % self.batches[tid]})
        message = dict(original, mti="0220")  # an advice as another terminal sends it
        message.update({38: "123456", 39: "00"})
        self.sent.append((message, self._send(message)))

    @rule(tid=st.sampled_from(TERMINALS))
    def settle(self, tid):
        batch = self.batches[tid]
        totals = self.ledger.totals(tid.ljust(8), batch)
        request = m.build_reconciliation(totals, self._stan(tid), time.gmtime(), tid, MID, "978")
        request[48] = "BN006%06d" % batch
        assert self._send(request)[39] == "00"
        self.batches[tid] += 1

    # ------------------------------------------------------------ invariants

    @precondition(lambda self: self.group is None)  # checked at its COMMIT
    @invariant()
    def double_entry_holds(self):
        assert self.ledger.check() == []
        total = self.ledger.db.execute("SELECT COALESCE(SUM(amount), 0) FROM entries").fetchone()[0]
        assert total == 0

    @precondition(lambda self: self.group is None)  # checked at its COMMIT
    @invariant()
    def no_original_is_undone_twice(self):
        for t in self.ledger.transactions():
            undone = self.ledger.db.execute(
                "SELECT (SELECT COUNT(*) FROM txns WHERE original_id = ? AND type LIKE 'void%' "
                "AND status = 'approved') + (SELECT COUNT(DISTINCT reversal_id) FROM entries "
                "WHERE txn_id = ? AND reversal_id IS NOT NULL)", (t["id"], t["id"])).fetchone()[0]
            assert undone <= 1, t
            assert (t["refunded"] or 0) <= (t["amount"] or 0)

    @precondition(lambda self: self.group is None)  # checked at its COMMIT
    @invariant()
    def balances_never_below_zero(self):
        for a in self.ledger.accounts():
            assert a["balance"] >= 0, a["number"][-4:]
            assert self.ledger._available(a["number"]) >= 0, a["number"][-4:]

    @precondition(lambda self: self.group is None)  # checked at its COMMIT
    @invariant()
    def settlement_totals_agree_with_the_postings(self):
        """Per terminal batch: the net the 0510 would carry = what the cards paid, from
        the entries of the transactions counted in it."""
        for tid in TERMINALS:
            for batch in range(1, self.batches[tid] + 1):
                totals = self.ledger.totals(tid.ljust(8), batch)
                net = (totals["debits_amount"] - totals["debits_reversal_amount"]) \
                    - (totals["credits_amount"] - totals["credits_reversal_amount"])
                paid = 0
                for t in self.ledger.db.execute(
                        "SELECT id FROM txns WHERE terminal_id = ? AND batch = ? AND status = "
                        "'approved' AND mti IN ('0200', '0220')", (tid.ljust(8), batch)):
                    paid -= sum(amount for account, amount in book.own_entries(self.ledger.db, t[0])
                                if not book.is_internal(account))
                assert net == paid, (tid, batch)

    def teardown(self):
        self.commit_group()
        self.double_entry_holds()
        self.balances_never_below_zero()
        self.ledger.close()


def _run(examples, steps):
    LedgerMachine.TestCase.settings = settings(
        max_examples=examples, stateful_step_count=steps, deadline=None,
        suppress_health_check=list(HealthCheck))
    LedgerMachine.TestCase().runTest()


def test_random_message_sequences_keep_the_ledger_invariants(engine):
    _run(examples=40 if engine == "sqlite" else 12, steps=50)  # PostgreSQL: round trips


@pytest.mark.soak
@pytest.mark.skipif(os.environ.get("KAPOS_SOAK") != "1", reason="set KAPOS_SOAK=1 (make soak)")
def test_random_message_sequences_keep_the_ledger_invariants_soak():
    _run(examples=300, steps=60)
