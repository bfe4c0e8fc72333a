"""End to end over TCP on 127.0.0.1: HostAuthorizer -> reference host -> ledger.

Every transaction type the terminal offers, the host's decline rules as the terminal
sees them (response codes: ISO 8583:1987, references.md), settlement agreed and not
agreed, and the journal and ledger agreeing afterwards."""

import time

import pytest

from hostkit import (TESTCARDS, Rig, record_of, request, run, swipe, tap, token)
from kapos.errors import HostUnavailable
from kapos.io import journal as J


def test_sale_refund_void_balance_transfer_cash_and_settlement(tmp_path):
    async def go():
        async with Rig(tmp_path) as rig:
            auth = rig.auth
            assert auth.signed_on
            sale_req = request(1, "sale", 1250, swipe("visa-debit"), pin="1234")
            sale = await auth.authorize(sale_req)
            assert sale["approved"] and sale["code"] == "00" and sale["text"] == "Approved"
            assert len(sale["auth_code"]) == 6 and len(sale["rrn"]) == 12
            assert rig.balance("visa-debit") == 100000 - 1250

            refund = await auth.authorize(request(2, "refund", 300, swipe("amex")))
            assert refund["approved"] and rig.balance("amex") == 50300

            tapped = await auth.authorize(request(3, "sale", 900, tap("emv-tap"), pin="1234",
                                                  account="credit"))
            assert tapped["approved"] and rig.balance("emv-tap") == 99100

            void = await auth.authorize(request(4, "void", 900, None,
                                                original=record_of(request(3, "sale", 900,
                                                                           tap("emv-tap")),
                                                                   tapped)))
            assert void["approved"] and rig.balance("emv-tap") == 100000
            again = await auth.authorize(request(5, "void", 900, None,
                                                 original=record_of(request(3, "sale", 900,
                                                                            tap("emv-tap")),
                                                                    tapped)))
            assert again["code"] == "12"  # voided once only

            balance = await auth.authorize(request(6, "balance", 0, swipe("visa-debit"),
                                                   pin="1234"))
            assert balance["approved"] and balance["balance"] == 100000 - 1250

            transfer = await auth.authorize(request(7, "transfer", 2000, swipe("visa-debit"),
                                                    pin="1234", fee=25,
                                                    target=TESTCARDS["mc-credit"].pan))
            assert transfer["approved"]
            assert rig.balance("visa-debit") == 100000 - 1250 - 2025
            assert rig.balance("mc-credit") == 252000

            cash = await auth.authorize(request(8, "cash", 5000, swipe("visa-debit"), pin="1234"))
            assert cash["approved"] and cash["balance"] == 100000 - 1250 - 2025 - 5000

            tok = await auth.authorize(request(9, "sale", 150, token()))
            assert tok["approved"] and rig.balance("token") == 20000 - 150

            echo = await auth.echo()
            assert echo["ok"]

            result = await auth.settle()
            assert result["agreed"], result
            assert result["code"] == "00" and result["batch"] == 1
            totals = result["totals"]
            assert totals["debits_count"] == 5  # 2 sales + tap sale + transfer + cash
            assert totals["debits_amount"] == 1250 + 900 + 2025 + 5000 + 150
            assert totals["debits_reversal_count"] == 1 and totals["debits_reversal_amount"] == 900
            assert totals["credits_count"] == 1 and totals["credits_amount"] == 300
            assert totals["inquiries_count"] == 1 and totals["transfer_count"] == 1
            assert result["host_totals"] == totals
            assert rig.journal.current_batch() == 2

            # the next batch starts empty and agrees too
            await auth.authorize(request(10, "sale", 100, swipe("visa-debit")))
            second = await auth.settle()
            assert second["agreed"] and second["batch"] == 2
            assert second["totals"]["debits_count"] == 1
            assert rig.check() == []

    run(go())


@pytest.mark.parametrize("card_id,kind,amount,pin,code", [
    ("visa-debit", "sale", 500, "9999", "55"),  # wrong PIN
    ("low-funds", "sale", 5000, None, "51"),  # insufficient funds
    ("do-not-honor", "sale", 100, None, "05"),  # the card file says so
    ("visa-debit", "sale", 200001, None, "61"),  # over the per-card daily limit
    ("token", "cash", 100, "1234", "55"),  # a token with no PIN on file
])
def test_declines(tmp_path, card_id, kind, amount, pin, code):
    async def go():
        async with Rig(tmp_path) as rig:
            card = token(card_id) if card_id == "token" else swipe(card_id)
            before = rig.balance(card_id)
            if code == "61":
                rig.ledger.add_account(TESTCARDS[card_id].account_key(), 10 ** 9)
                before = 10 ** 9
            reply = await rig.auth.authorize(request(1, kind, amount, card, pin=pin))
            assert not reply["approved"] and reply["code"] == code
            assert reply["auth_code"] is None
            assert rig.balance(card_id) == before
            row = rig.journal.find_by_stan(reply["stan"])
            assert row["status"] == J.DECLINED and row["response_code"] == code
            assert rig.journal.queue_items(row["id"]) == []  # nothing to reverse
            assert rig.check() == []

    run(go())


def test_unknown_card_and_unknown_transfer_target(tmp_path):
    from kapos import card as cards

    async def go():
        async with Rig(tmp_path) as rig:
            stranger = cards.Card("4242424242424242", "3012", "101", source="swipe",
                                  track2="4242424242424242=3012101000")
            reply = await rig.auth.authorize(request(1, "sale", 100, stranger))
            assert reply["code"] == "14"
            reply = await rig.auth.authorize(request(2, "transfer", 100, swipe("visa-debit"),
                                                     pin="1234", target="12345678"))
            assert reply["code"] == "14"
            assert rig.balance("visa-debit") == 100000

    run(go())


def test_daily_limit_counts_the_day_and_a_void_gives_it_back(tmp_path):
    async def go():
        async with Rig(tmp_path) as rig:
            rig.ledger.add_account(TESTCARDS["visa-debit"].account_key(), 10 ** 6)
            first_req = request(1, "sale", 150000, swipe("visa-debit"))
            first = await rig.auth.authorize(first_req)
            assert first["approved"]
            over = await rig.auth.authorize(request(2, "cash", 60000, swipe("visa-debit"),
                                                    pin="1234"))
            assert over["code"] == "61"
            void = await rig.auth.authorize(request(3, "void", 150000, None,
                                                    original=record_of(first_req, first)))
            assert void["approved"]
            ok = await rig.auth.authorize(request(4, "cash", 60000, swipe("visa-debit"),
                                                  pin="1234"))
            assert ok["approved"]

    run(go())


def test_host_down_is_host_unavailable_and_nothing_to_reverse(tmp_path):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead_port = sock.getsockname()[1]
    sock.close()  # nothing listens there now

    async def go():
        async with Rig(tmp_path, port=dead_port) as rig:
            assert not rig.auth.signed_on
            with pytest.raises(HostUnavailable, match="Host unavailable"):
                await rig.auth.authorize(request(1, "sale", 100, swipe("visa-debit")))
            row = rig.journal.find_by_ref(1)
            assert row["status"] == J.UNSENT
            assert rig.journal.pending_count() == 0
            assert rig.ledger.transactions() == []
            with pytest.raises(HostUnavailable):
                await rig.auth.settle()
            assert rig.check() == []

    run(go())


def test_cancel_after_approval_reverses_once(tmp_path):
    async def go():
        async with Rig(tmp_path) as rig:
            reply = await rig.auth.authorize(request(7, "sale", 4000, swipe("visa-debit")))
            assert reply["approved"] and rig.balance("visa-debit") == 96000
            rig.auth.cancel(7, "hardware error")  # e.g. the receipt could not be printed
            rig.auth.cancel(7, "hardware error")  # twice: still one reversal
            await rig.auth.wait_idle()
            assert rig.balance("visa-debit") == 100000
            row = rig.journal.find_by_ref(7)
            assert row["status"] == J.REVERSED
            reversals = rig.ledger.reversals()
            assert len(reversals) == 1 and reversals[0]["applied"] == 1
            assert reversals[0]["reason"] == "06"  # terminal error after approval
            assert reversals[0]["mti"] == "0400"
            # a declined transaction has nothing to reverse
            declined = await rig.auth.authorize(request(8, "sale", 100, swipe("do-not-honor")))
            rig.auth.cancel(8, "timeout")
            assert rig.journal.find_by_ref(8)["status"] == J.DECLINED
            assert declined["code"] == "05"
            settle = await rig.auth.settle()
            assert settle["agreed"] and settle["totals"]["debits_count"] == 0
            assert rig.check() == []

    run(go())


def test_void_of_a_reversed_sale_is_refused(tmp_path):
    async def go():
        async with Rig(tmp_path) as rig:
            sale_req = request(1, "sale", 700, swipe("visa-debit"))
            sale = await rig.auth.authorize(sale_req)
            rig.auth.cancel(1, "timeout")
            await rig.auth.wait_idle()
            void = await rig.auth.authorize(request(2, "void", 700, None,
                                                    original=record_of(sale_req, sale)))
            assert void["code"] == "12"
            assert rig.balance("visa-debit") == 100000
            assert rig.check() == []

    run(go())


def test_settlement_not_agreed_and_replayed(tmp_path):
    async def go():
        async with Rig(tmp_path) as rig:
            await rig.auth.authorize(request(1, "sale", 1000, swipe("visa-debit")))
            # the host loses track of one approval (an operator edit, a bug...)
            rig.ledger.db.execute("UPDATE txns SET status = 'declined' WHERE type = 'sale'")
            result = await rig.auth.settle()
            assert not result["agreed"] and result["code"] == "95"
            assert result["text"] == "Totals not agreed"
            assert result["totals"]["debits_count"] == 1
            assert result["host_totals"]["debits_count"] == 0
            batches = rig.journal.batches()
            assert batches[0]["state"] == "not agreed"
            assert rig.journal.settling_batch() is None

    run(go())


def test_settlement_reply_lost_is_resent_for_the_same_batch(tmp_path):
    async def go():
        async with Rig(tmp_path, proxy=True, timeout=0.3) as rig:
            await rig.auth.authorize(request(1, "sale", 1000, swipe("visa-debit")))
            rig.proxy.fault("drop", mti="0510")
            with pytest.raises(HostUnavailable):
                await rig.auth.settle()
            assert rig.journal.settling_batch() == 1
            # meanwhile, the terminal goes on selling: batch 2
            await rig.auth.authorize(request(2, "sale", 500, swipe("visa-debit")))
            again = await rig.auth.settle()
            assert again["agreed"] and again["batch"] == 1
            assert again["totals"]["debits_amount"] == 1000
            third = await rig.auth.settle()
            assert third["agreed"] and third["batch"] == 2
            assert third["totals"]["debits_amount"] == 500
            assert rig.check() == []

    run(go())


def test_journal_keeps_no_clear_card_data(tmp_path):
    async def go():
        async with Rig(tmp_path) as rig:
            await rig.auth.authorize(request(1, "sale", 100, swipe("visa-debit"), pin="1234"))
            await rig.auth.authorize(request(2, "sale", 100, tap("emv-tap"), pin="1234"))
            await rig.auth.authorize(request(3, "transfer", 100, swipe("visa-debit"),
                                             pin="1234", target=TESTCARDS["amex"].pan))
            rig.auth.cancel(3, "timeout")
            await rig.auth.wait_idle()
            rig.auth.journal.db.execute("PRAGMA wal_checkpoint(FULL)")
        return rig

    rig = run(go())
    blob = b""
    journal_dir = tmp_path / "journal"
    for path in journal_dir.iterdir():
        blob += path.read_bytes()
    for card_id in ("visa-debit", "emv-tap", "amex"):
        pan = TESTCARDS[card_id].pan.encode()
        assert pan not in blob, card_id
    for card_id in ("visa-debit", "emv-tap", "amex"):
        separator_and_expiry = ("=" + TESTCARDS[card_id].expiry).encode()
        assert separator_and_expiry not in blob, card_id  # no track 2 separator + expiry


def test_requests_carry_what_the_dialect_says(tmp_path):
    from kapos.host import codec

    seen = []

    async def go():
        async with Rig(tmp_path) as rig:
            original = rig.ledger.handle

            def spy(message, **kw):
                seen.append(dict(message))
                return original(message, **kw)

            rig.ledger.handle = spy
            await rig.auth.authorize(request(1, "sale", 100, swipe("visa-debit"), pin="1234",
                                             fee=5, account="credit"))
            await rig.auth.authorize(request(2, "sale", 100, tap("emv-tap")))
            await rig.auth.authorize(request(3, "sale", 100, token()))
            await rig.auth.authorize(request(4, "balance", 0, swipe("visa-debit"), pin="1234"))

    run(go())
    swiped, tapped, tokened, balance = [m for m in seen if m["mti"] == "0200"]
    assert swiped[3] == "003000" and swiped[22] == "021" and 35 in swiped and 2 not in swiped
    assert len(swiped[52]) == 16 and 53 not in swiped  # test key PIN block, no DUKPT KSN
    assert "FE012000000000005" in swiped[48] and "BN006000001" in swiped[48]
    assert tapped[22] == "071" and 35 in tapped
    assert tokened[22] == "001" and 2 not in tokened and 35 not in tokened
    assert "TK01404A2B3C4D5E6F7" in tokened[48]
    assert balance[3] == "312000" and 4 not in balance
    for message in (swiped, tapped, tokened):
        assert message[41] == "KAPOS001" and message[42] == "KAPOS-MERCHANT1" and message[49] == "978"
    assert codec.encode(swiped)  # re-encodes


def test_stan_survives_a_restart_and_is_unique(tmp_path):
    async def one(n):
        async with Rig(tmp_path) as rig:
            replies = [await rig.auth.authorize(request(i, "sale", 10, swipe("visa-debit")))
                       for i in range(n)]
            return [r["stan"] for r in replies], rig.journal.last_stan

    first, last = run(one(3))
    second, _ = run(one(3))
    assert len(set(first + second)) == 6
    assert int(second[0]) > int(last)  # the sign-on of the second run took one more


def test_local_time_fields_come_from_the_request_time(tmp_path):
    seen = []

    async def go():
        async with Rig(tmp_path) as rig:
            original = rig.ledger.handle
            rig.ledger.handle = lambda message, **kw: (seen.append(message),
                                                       original(message, **kw))[1]
            when = time.mktime((2026, 11, 25, 10, 30, 15, 0, 0, -1))
            await rig.auth.authorize(request(1, "sale", 10, swipe("visa-debit"), when=when))

    run(go())
    message = [m for m in seen if m["mti"] == "0200"][0]
    assert message[12] == "103015" and message[13] == "1125"


def test_a_repeat_of_a_pin_sale_with_its_pin_block_enciphered_anew_gets_the_same_answer(tmp_path):
    """A client that enciphers a repeat's PIN block again (other bytes for the same PIN,
    under its own KSN; the kapos terminal keeps the block) sends the same request: it gets
    the stored response, and nothing is applied twice (the PIN is not looked at again)."""
    from kapos.host import codec

    async def go():
        async with Rig(tmp_path) as rig:
            when = time.gmtime()
            sale = request(1, "sale", 900, swipe("visa-debit"), pin="1234")
            first = rig.auth.build_request(sale, "000021", when, 1)
            reply = codec.decode(rig.server.process(codec.encode(first)))
            again = dict(first, mti="0201")
            again[52] = bytes(b ^ 0x5A for b in first[52])  # as enciphered anew
            repeat = codec.decode(rig.server.process(codec.encode(again)))
            assert reply[39] == repeat[39] == "00"
            assert (repeat[37], repeat[38]) == (reply[37], reply[38])
            assert rig.balance("visa-debit") == 100000 - 900

    run(go())
