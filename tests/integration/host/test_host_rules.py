"""The reference host's rules, message by message (Ledger.handle), and its robustness
against malformed input on the wire (logged, connection closed, host carries on)."""

import asyncio
import time

import pytest

from engines import engine  # noqa: F401 (fixtures)
from hostkit import TESTCARDS, new_ledger, run, void_message
from kapos.simdata.cards import expiry_months_ahead
from kapos.host import codec
from kapos.host import messages as m
from kapos.host.framing import TcpFramer
from kapos_tools.host import HostServer

# every rule on both ledger engines (conftest.py: SQLite, and a real PostgreSQL server)
pytestmark = pytest.mark.usefixtures("engine")

UTC = time.gmtime(time.mktime((2026, 11, 25, 10, 0, 0, 0, 0, -1)))
TID = "KAPOS001"
MID = "KAPOS-MERCHANT1"


def sale(stan, amount=1000, card_id="visa-debit", kind="sale", private="BN006000001", **kw):
    tc = TESTCARDS[card_id]
    return m.build_financial_request(kind, amount, stan, UTC, UTC, TID, MID, "978",
                                     track2=tc.track2_equivalent(), private=private, **kw)


def test_duplicate_request_gets_the_same_reply_and_is_applied_once():
    ledger = new_ledger()
    request = sale(1)
    first = ledger.handle(request)
    second = ledger.handle(dict(request))
    assert first == second and first[39] == "00"
    assert ledger.balance("4111111111111111") == 99000
    # same terminal, STAN and field 7 but another content: duplicate transaction
    other = ledger.handle(sale(1, amount=5))
    assert other[39] == "94"
    assert ledger.balance("4111111111111111") == 99000


def test_reversal_undoes_exactly_once_and_repeats_are_answered():
    ledger = new_ledger()
    request = sale(7, amount=2500)
    reply = ledger.handle(request)
    reversal = m.build_reversal(request, "timeout", response=reply)
    reversal.pop(2)
    reversal.pop(14)
    assert ledger.handle(reversal)[39] == "00"
    assert ledger.balance("4111111111111111") == 100000
    advice = dict(reversal, mti="0421")
    answer = ledger.handle(advice)
    assert answer["mti"] == "0430" and answer[39] == "00"
    assert ledger.balance("4111111111111111") == 100000
    assert ledger.reversals()[0]["received"] == 2
    assert ledger.check() == []
    # the sale's own entries and the reversal's, told apart by reversal_id (check() counts
    # an original undone twice by them)
    reversal_id = ledger.db.execute("SELECT id FROM reversals").fetchone()[0]
    rows = sorted(tuple(r) for r in ledger.db.execute(
        "SELECT COALESCE(reversal_id, 0), account, amount FROM entries"))
    assert rows == sorted([(0, "4111111111111111", -2500), (0, "merchant:" + MID, 2500),
                           (reversal_id, "4111111111111111", 2500),
                           (reversal_id, "merchant:" + MID, -2500)])


def test_reversal_before_its_original_blocks_the_original():
    ledger = new_ledger()
    request = sale(9, amount=300)
    reversal = m.build_reversal(request, "timeout")
    assert ledger.handle(reversal)[39] == "25"  # never seen
    late = ledger.handle(request)
    assert late[39] == "12"  # refused: already reversed
    assert ledger.balance("4111111111111111") == 100000
    assert ledger.transactions()[0]["status"] == "reversed"


def test_expired_card_and_missing_fields_and_unknown_processing_code():
    ledger = new_ledger()
    assert ledger.handle(sale(1, card_id="expired"))[39] == "54"
    broken = sale(2)
    del broken[25]
    assert ledger.handle(broken)[39] == "30"
    odd = sale(3)
    odd[3] = "990000"
    assert ledger.handle(odd)[39] == "12"
    assert ledger.handle(sale(4, amount=1000, private="BN0"))[39] == "30"  # bad field 48


def test_void_rules():
    ledger = new_ledger()
    original = ledger.handle(sale(1, amount=1200))

    def void(stan, amount, rrn):
        return void_message(stan, amount, rrn, UTC, TID, MID)

    assert ledger.handle(void(2, 1200, "999999999999"))[39] == "25"
    assert ledger.handle(void(3, 1100, original[37]))[39] == "13"
    assert ledger.handle(void(4, 1200, original[37]))[39] == "00"
    assert ledger.handle(void(5, 1200, original[37]))[39] == "12"
    assert ledger.balance("4111111111111111") == 100000
    refund = ledger.handle(sale(6, amount=50, kind="refund"))
    assert ledger.handle(void(7, 50, refund[37]))[39] == "12"  # a void of a refund is 22


def test_network_messages_and_non_requests():
    ledger = new_ledger()
    sign_on = m.build_network("001", 1, UTC, TID)
    assert ledger.handle(sign_on)[39] == "00"
    assert ledger.handle(m.build_network("301", 2, UTC, TID))[70] == "301"
    assert ledger.handle(m.build_network("101", 3, UTC, TID))[39] == "12"
    assert ledger.handle({"mti": "0210", 11: "000001", 39: "00", 41: TID}) is None


def test_reconciliation_replay_for_a_closed_batch():
    ledger = new_ledger()
    ledger.handle(sale(1, amount=1000))
    totals = dict.fromkeys(m.TOTALS_FIELDS, 0)
    totals.update(debits_count=1, debits_amount=1000)
    request = m.build_reconciliation(totals, 2, UTC, TID, MID, "978")
    request[48] = "BN006000001"
    first = ledger.handle(request)
    assert first[39] == "00" and first[97] == "D0000000000001000"
    again = dict(request)
    again[11] = "000003"
    replay = ledger.handle(again)
    assert replay[39] == "00" and replay[11] == "000003"


def test_malformed_input_closes_that_connection_and_the_host_carries_on():
    async def go():
        ledger = new_ledger()
        server = HostServer(ledger)
        _, port = await server.start_tcp("127.0.0.1", 0)
        framer = TcpFramer()

        async def exchange(data, expect_close):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(data)
            await writer.drain()
            got = await asyncio.wait_for(reader.read(65536), 2)
            writer.close()
            if expect_close:
                assert got == b""
            return got

        await exchange(b"\x00\x00", True)  # zero length frame
        await exchange(framer.frame(b"0200garbage-not-iso"), True)  # does not decode
        await exchange(framer.frame(b"\x00" * 30), True)
        await exchange(b"\xff\xff" + b"A" * 10, True)  # over the maximum length
        reply = await exchange(framer.frame(codec.encode(sale(1))), False)
        assert codec.decode(TcpFramer().receive(reply)[0])[39] == "00"
        assert server.stats["errors"] == 4
        await server.close()

    run(go())


def test_cards_file_with_shared_accounts_and_host_only_keys(tmp_path):
    from kapos_tools.host import Ledger

    path = tmp_path / "cards.toml"
    path.write_text('''
[[account]]
number = "700100"
name = "Savings"
balance = 10000

[[card]]
id = "club-card"
pan = "6000001234567899"
expires_in_months = 48
pin = "2468"
account = "700100"
daily_limit = 500

[[card]]
id = "club-card-2"
pan = "6000001234567881"
expires_in_months = 48
account = "700100"
''')
    ledger = Ledger(":memory:")
    assert ledger.load_cards(str(path)) == 2
    assert ledger.card_account("6000001234567899") == ledger.card_account("6000001234567881")

    def club(stan, amount, pan):
        return m.build_financial_request("sale", amount, stan, UTC, UTC, TID, MID, "978",
                                         track2=pan + "=" + expiry_months_ahead(48) + "101000",
                                         private="BN006000001")

    assert ledger.handle(club(1, 400, "6000001234567899"))[39] == "00"
    assert ledger.handle(club(2, 200, "6000001234567899"))[39] == "61"  # this card's limit
    assert ledger.handle(club(3, 200, "6000001234567881"))[39] == "00"  # the other card
    assert ledger.balance("700100") == 10000 - 600
    ledger.load_cards(str(path))  # loading again keeps balances
    assert ledger.balance("700100") == 9400
    ledger.load_cards(str(path), reset=True)
    assert ledger.balance("700100") == 10000


def test_fuzzed_messages_never_crash_the_host():
    """Mutated valid requests: the host answers, ignores, or raises a protocol error
    (the server then closes that connection) - never anything else."""
    from hypothesis import given, settings, strategies as st

    from kapos.errors import KaposError

    ledger = new_ledger()
    server = HostServer(ledger)
    seeds = [codec.encode(sale(1)), codec.encode(m.build_network("301", 2, UTC, TID)),
             codec.encode(m.build_reversal(sale(3), "timeout"))]

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from(seeds), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)),
                                            max_size=4), st.integers(0, 400))
    def check(seed, flips, cut):
        data = bytearray(seed)
        for pos, value in flips:
            if pos < len(data):
                data[pos] = value
        data = bytes(data[:max(4, len(data) - cut % 8)])
        try:
            out = server.process(data)
        except KaposError:
            return
        assert out is None or isinstance(out, bytes)

    check()
    assert ledger.check() == []


def test_any_message_shape_gets_a_reply_from_the_ledger_never_an_exception():
    """Random and mutated field dicts straight into Ledger.handle: every request MTI gets
    a reply (96 at worst), nothing raises, and the book still balances."""
    from hypothesis import given, settings, strategies as st

    ledger = new_ledger()
    seeds = [sale(1), sale(2, kind="refund"), sale(3, kind="cash"),
             m.build_reversal(sale(4), "timeout"), m.build_network("301", 5, UTC, TID)]
    values = st.one_of(st.text(max_size=40), st.binary(max_size=20), st.integers(-10 ** 40, 10 ** 40),
                       st.none(), st.just("9" * 30), st.just("FE030" + "9" * 30))
    fields = st.sampled_from([2, 3, 4, 7, 11, 14, 22, 35, 37, 39, 41, 42, 48, 52, 53, 90])

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from(seeds), st.dictionaries(fields, values, max_size=4),
           st.sampled_from(["0200", "0220", "0400", "0420", "0500", "0800", "0201", "0421"]))
    def check(seed, changes, mti):
        message = dict(seed, mti=mti)
        message.update(changes)
        reply = ledger.handle(message)
        assert reply is not None and reply[39]

    check()
    assert ledger.check() == []


def test_check_names_the_transaction_that_breaks_the_double_entry():
    ledger = new_ledger()
    reply = ledger.handle(sale(1, amount=700))
    assert reply[39] == "00" and ledger.check() == []
    ledger.db.execute("UPDATE entries SET amount = amount + 1 WHERE id = "
                      "(SELECT MIN(id) FROM entries)")
    problems = ledger.check()
    assert any("txn 1 " in p and "sum to 1" in p for p in problems), problems
    assert any("all entries sum to 1" in p for p in problems), problems


def test_a_version_1_ledger_is_migrated_and_a_foreign_file_refused(tmp_path):
    import sqlite3

    import pytest

    from kapos_tools.host import Ledger
    from kapos_tools.host.schema import LedgerSchemaError

    old = tmp_path / "old.db"  # the schema of kapos hosts before the double-entry book
    db = sqlite3.connect(str(old))
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('rrn', '1');
        CREATE TABLE accounts (number TEXT PRIMARY KEY, name TEXT, balance INTEGER NOT NULL,
            initial INTEGER NOT NULL DEFAULT 0);
        INSERT INTO accounts VALUES ('4111111111111111', 'v', 99000, 100000);
        CREATE TABLE txns (id INTEGER PRIMARY KEY AUTOINCREMENT, terminal_id TEXT NOT NULL,
            stan TEXT NOT NULL, transmission TEXT NOT NULL, mti TEXT NOT NULL, type TEXT,
            amount INTEGER, fee INTEGER, total INTEGER, card_key TEXT, account TEXT, target TEXT,
            code TEXT, auth_code TEXT, rrn TEXT, batch INTEGER, status TEXT NOT NULL, effects TEXT,
            original_id INTEGER, voided_by INTEGER, response BLOB, fingerprint TEXT,
            created REAL NOT NULL, UNIQUE (terminal_id, stan, transmission));
        INSERT INTO txns (terminal_id, stan, transmission, mti, type, amount, fee, total, status,
            effects, created) VALUES ('KAPOS001', '000001', '1125100000', '0200', 'sale', 1000, 0,
            1000, 'approved', '{"accounts": [["4111111111111111", -1000]]}', 0);
    """)
    db.close()
    ledger = Ledger(str(old))
    assert ledger.check() == []
    assert ledger.transactions()[0]["lifecycle"] == "approved"
    ledger.close()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(LedgerSchemaError, match="cannot be opened as a kapos host ledger"):
        Ledger(str(garbage))
