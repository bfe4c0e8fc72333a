"""Transaction types are rows (kapos.txn_types) read by the reference host too: deposits
against the merchant's cash book, pre-authorizations (holds seen in the available
balance) with completion and release, a token's balance without a PIN, and a type that
exists only in this test's fixture, all over TCP through HostAuthorizer."""

import pytest

from hostkit import TESTCARDS, Rig, record_of, request, run, swipe, token
from kapos import txn_types
from kapos.host import messages as m
from kapos_tools.host import book

MERCHANT_CASH = book.cash_account("KAPOS-MERCHANT1")


def _book(rig, account):
    row = rig.ledger.db.execute("SELECT balance FROM books WHERE account = ?",
                                (account,)).fetchone()
    return row[0] if row else 0


def _balances(rig, reply_message):
    """(ledger, available) from the field 54 of a stored reply."""
    found = {}
    for _, kind, _, amount in m.parse_additional_amounts(reply_message[54]):
        found[kind] = amount
    return found[m.AMOUNT_LEDGER_BALANCE], found[m.AMOUNT_AVAILABLE_BALANCE]


def _stored_reply(rig, rrn):
    from kapos.host import codec
    row = rig.ledger.db.execute("SELECT response FROM txns WHERE rrn = ?", (rrn,)).fetchone()
    return codec.decode(row[0])


def test_deposit_credits_a_token_and_a_card_against_the_cash_book(tmp_path):
    async def go():
        async with Rig(tmp_path) as rig:
            reply = await rig.auth.authorize(request(1, "deposit", 5000, token()))
            assert reply["approved"], reply
            assert rig.balance("token") == 20000 + 5000
            assert reply["balance"] == 25000  # the new balance, for the receipt
            assert _book(rig, MERCHANT_CASH) == -5000  # the cash the merchant took
            card = await rig.auth.authorize(request(2, "deposit", 700, swipe("visa-debit")))
            assert card["approved"] and rig.balance("visa-debit") == 100700
            assert _book(rig, MERCHANT_CASH) == -5700
            assert rig.ledger.check() == []
            result = await rig.auth.settle()
            assert result["agreed"], result
            assert result["totals"]["credits_count"] == 2
            assert result["totals"]["credits_amount"] == 5700
            assert rig.check() == []

    run(go())


def test_a_hold_lowers_the_available_balance_and_completes_for_at_most_its_amount(tmp_path):
    async def go():
        async with Rig(tmp_path) as rig:
            hold_req = request(1, "preauth", 30000, swipe("visa-debit"), pin="1234")
            hold = await rig.auth.authorize(hold_req)
            assert hold["approved"], hold
            assert rig.balance("visa-debit") == 100000  # nothing moved
            ledger_balance, available = _balances(rig, _stored_reply(rig, hold["rrn"]))
            assert (ledger_balance, available) == (100000, 70000)
            inquiry = await rig.auth.authorize(request(2, "balance", 0, swipe("visa-debit"),
                                                       pin="1234"))
            assert _balances(rig, _stored_reply(rig, inquiry["rrn"])) == (100000, 70000)
            # the hold is spoken for: a sale beyond the available balance is declined
            big = await rig.auth.authorize(request(3, "sale", 80000, swipe("visa-debit")))
            assert big["code"] == "51"
            original = record_of(hold_req, hold)
            over = await rig.auth.authorize(request(4, "completion", 30001, None,
                                                    original=original))
            assert over["code"] == "13" and rig.balance("visa-debit") == 100000
            done = await rig.auth.authorize(request(5, "completion", 24000, None,
                                                    original=original))
            assert done["approved"], done
            assert rig.balance("visa-debit") == 100000 - 24000
            assert rig.ledger._available(TESTCARDS["visa-debit"].pan) == 76000  # hold freed
            again = await rig.auth.authorize(request(6, "completion", 1000, None,
                                                     original=original))
            assert again["code"] == "12"  # a hold completes once
            result = await rig.auth.settle()
            assert result["agreed"], result
            assert result["totals"]["debits_amount"] == 24000  # the hold itself is no debit
            assert rig.check() == []

    run(go())


def test_a_released_hold_frees_the_funds_and_a_reversed_completion_holds_them_again(tmp_path):
    async def go():
        async with Rig(tmp_path) as rig:
            hold_req = request(1, "preauth", 10000, swipe("visa-debit"), pin="1234")
            hold = await rig.auth.authorize(hold_req)
            released = await rig.auth.authorize(request(2, "release", 0, None,
                                                        original=record_of(hold_req, hold)))
            assert released["approved"], released
            assert rig.ledger._available(TESTCARDS["visa-debit"].pan) == 100000
            late = await rig.auth.authorize(request(3, "completion", 100, None,
                                                    original=record_of(hold_req, hold)))
            assert late["code"] == "12"  # released: nothing left to complete

            second_req = request(4, "preauth", 5000, swipe("visa-debit"), pin="1234")
            second = await rig.auth.authorize(second_req)
            done = await rig.auth.authorize(request(5, "completion", 5000, None,
                                                    original=record_of(second_req, second)))
            assert rig.balance("visa-debit") == 95000
            pan = TESTCARDS["visa-debit"].pan
            message = m.build_reversal(_request_of(rig, done["stan"]), "timeout")
            message.pop(2, None)
            assert rig.ledger.handle(message)[39] == "00"
            assert rig.balance("visa-debit") == 100000
            assert rig.ledger._available(pan) == 95000  # the hold is in force again
            assert rig.ledger.check() == []

    run(go())


def _request_of(rig, stan):
    """The 0200 the terminal sent with this STAN, rebuilt from the host's record."""
    row = rig.ledger.db.execute("SELECT * FROM txns WHERE stan = ?", (stan,)).fetchone()
    import time
    when = time.gmtime()
    message = m.build_financial_request(row["type"], row["amount"], int(stan), when, when,
                                        row["terminal_id"].strip(), "KAPOS-MERCHANT1", "978",
                                        pan="0")
    message[7] = row["transmission"]
    return message


def test_a_tokens_balance_needs_no_pin(tmp_path):
    async def go():
        async with Rig(tmp_path) as rig:
            reply = await rig.auth.authorize(request(1, "balance", 0, token()))
            assert reply["approved"] and reply["balance"] == 20000
            # a card with a PIN on file still needs one for its balance
            card = await rig.auth.authorize(request(2, "balance", 0, swipe("visa-debit")))
            assert card["code"] == "55"

    run(go())


@pytest.fixture
def donation():
    """A type nobody ships: one row, registered here and nowhere else."""
    txn_types.register("donation", label="Donation", menu="0", code="93", totals="debit",
                       posting="debit", receipt="DONATION")
    yield "donation"
    txn_types.unregister("donation")


def test_a_type_added_as_a_row_only_is_authorized_posted_and_settled(tmp_path, donation):
    async def go():
        async with Rig(tmp_path) as rig:
            reply = await rig.auth.authorize(request(1, donation, 250, swipe("amex")))
            assert reply["approved"], reply
            assert rig.balance("amex") == 50000 - 250
            row = rig.ledger.transactions()[-1]
            assert row["type"] == donation and row["total"] == 250
            result = await rig.auth.settle()
            assert result["agreed"] and result["totals"]["debits_amount"] == 250
            assert rig.check() == []

    run(go())

