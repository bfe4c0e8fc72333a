"""Transaction types from their rows, from the keypad of the whole terminal (sim board,
core, runtime, HostAuthorizer) to the reference host's ledger over TCP: the scenarios
of the rows added for users (deposit, pre-authorization and completion, a token's
balance without PIN; tests/integration/test_scenarios.py also plays them in process) with
the ledger checked after each, and a type registered by this test's fixture only."""

import os

import pytest

from hostkit import TESTCARDS, agree, run
from kapos import txn_types
from kapos_tools.host import book
from test_host_terminal import Terminal

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SCENARIOS = os.path.join(ROOT, "tests", "scenarios")


def _play_file(name, check):
    with open(os.path.join(SCENARIOS, name)) as f:
        text = f.read()

    async def go(tmp_path):
        async with Terminal(tmp_path) as t:
            await t.play(text)
            await t.auth.wait_idle(5)
            check(t)
            assert agree(t.journal, t.ledger, t.assembly.settings.terminal_id) == []
    return go


def test_deposit_scenario_credits_the_token_against_the_cash_book(tmp_path):
    def check(t):
        assert t.ledger.balance(TESTCARDS["token"].account_key()) == 20000 + 5000
        merchant = t.assembly.settings.merchant_id
        row = t.ledger.db.execute("SELECT balance FROM books WHERE account = ?",
                                  (book.cash_account(merchant),)).fetchone()
        assert row[0] == -5000
    run(_play_file("deposit-token.scenario", check)(tmp_path))


def test_preauth_completion_scenario_charges_the_final_amount_only(tmp_path):
    def check(t):
        pan = TESTCARDS["visa-debit"].pan
        assert t.ledger.balance(pan) == 100000 - 6500
        assert t.ledger._available(pan) == 100000 - 6500  # the hold is closed
        kinds = [(r["type"], r["lifecycle"]) for r in t.ledger.transactions()]
        assert kinds == [("preauth", "completed"), ("completion", "approved")]
    run(_play_file("preauth-completion.scenario", check)(tmp_path))


def test_token_balance_scenario_asks_no_pin_and_is_approved(tmp_path):
    def check(t):
        (row,) = t.ledger.transactions()
        assert row["type"] == "balance" and row["code"] == "00"
    run(_play_file("balance-token.scenario", check)(tmp_path))


@pytest.fixture
def donation():
    """A type nobody ships: one row, here and nowhere else (menu key 0)."""
    txn_types.register("donation", label="Donation", menu="0", code="93", totals="debit",
                       posting="debit", receipt="DONATION")
    yield "donation"
    txn_types.unregister("donation")


def test_a_type_registered_in_a_fixture_runs_from_the_keypad_to_the_ledger(tmp_path, donation):
    async def go():
        async with Terminal(tmp_path) as t:
            await t.play('key 0\nexpect screen "DONATION"\nkeys 425\nkey ENTER\nswipe amex\nkey 2\n'
                         'expect screen "ENTER=OK"\nkey ENTER\nexpect result approved\n'
                         'expect receipt "DONATION"\nkey ENTER\nexpect state IDLE\n')
            await t.auth.wait_idle(5)
            assert t.ledger.balance(TESTCARDS["amex"].account_key()) == 50000 - 425
            (row,) = t.ledger.transactions()
            assert row["type"] == donation and row["total"] == 425
            title, lines = await t.assembly.diagnostics.run("settlement")
            assert title == "TOTALS AGREED", lines
            assert agree(t.journal, t.ledger, t.assembly.settings.terminal_id) == []
    run(go())
