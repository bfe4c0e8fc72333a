"""The fault matrix: the host processes the request, then the reply is lost, late,
truncated, duplicated, garbled, for another STAN, or the connection is reset.

After recovery the journal and the ledger must agree: no double charge, no approval
for a reversed transaction, nothing left to send (hostkit.agree). A reply that does not
match counts as no reply (references.md: "Responses are matched on MTI + terminal id +
STAN"); the terminal reverses (0400, then 0420/0421 repeats) until the host answers."""

import pytest

from hostkit import Rig, request, run, swipe
from kapos.errors import HostUnavailable
from kapos.io import journal as J

REPLY_LOST = ["drop", "delay", "truncate", "wrong_stan", "garble", "reset"]


@pytest.mark.parametrize("fault", REPLY_LOST)
def test_sale_reply_fault_is_reversed_and_ledger_agrees(tmp_path, fault):
    async def go():
        async with Rig(tmp_path, proxy=True, timeout=0.3) as rig:
            rig.proxy.fault(fault, arg=0.6)
            with pytest.raises(HostUnavailable, match="No reply from host"):
                await rig.auth.authorize(request(1, "sale", 2500, swipe("visa-debit")))
            assert rig.proxy.applied == [(fault, "0210")]
            row = rig.journal.find_by_ref(1)
            assert row["status"] in (J.REVERSAL_PENDING, J.REVERSED)
            await rig.auth.wait_idle(5)
            assert rig.journal.find_by_ref(1)["status"] == J.REVERSED
            host = [t for t in rig.ledger.transactions() if t["stan"] == row["stan"]]
            assert len(host) == 1 and host[0]["status"] == "reversed"  # it had been approved
            assert rig.balance("visa-debit") == 100000  # charged once, undone once
            # the link works again afterwards
            ok = await rig.auth.authorize(request(2, "sale", 100, swipe("visa-debit")))
            assert ok["approved"] and rig.balance("visa-debit") == 99900
            assert rig.check() == []
            if fault == "delay":
                import asyncio
                await asyncio.sleep(0.4)  # the late reply is long due: nothing changed
                assert rig.check() == []
            settle = await rig.auth.settle()
            assert settle["agreed"] and settle["totals"]["debits_amount"] == 100

    run(go())


def test_duplicate_reply_is_ignored_not_taken_for_the_next(tmp_path):
    async def go():
        async with Rig(tmp_path, proxy=True, timeout=0.5) as rig:
            rig.proxy.fault("duplicate")
            first = await rig.auth.authorize(request(1, "sale", 1000, swipe("visa-debit")))
            second = await rig.auth.authorize(request(2, "sale", 5000, swipe("low-funds")))
            assert rig.proxy.applied == [("duplicate", "0210")]
            assert first["approved"]
            assert second["code"] == "51" and second["stan"] != first["stan"]
            assert rig.journal.find_by_ref(2)["status"] == J.DECLINED
            assert rig.balance("visa-debit") == 99000
            assert rig.check() == []

    run(go())


def test_unanswered_reversal_is_repeated_as_0420_0421_and_applied_once(tmp_path):
    async def go():
        async with Rig(tmp_path, proxy=True, timeout=0.2, retry_base=0.02) as rig:
            rig.proxy.fault("drop")  # the 0210
            rig.proxy.fault("drop", mti="0410")  # the first reversal's answer
            rig.proxy.fault("drop", mti="0430", count=2)  # two reversal advices' answers
            with pytest.raises(HostUnavailable):
                await rig.auth.authorize(request(1, "sale", 3000, swipe("visa-debit")))
            await rig.auth.wait_idle(5)
            reversals = rig.ledger.reversals()
            assert len(reversals) == 1
            assert reversals[0]["applied"] == 1 and reversals[0]["received"] == 4
            assert reversals[0]["mti"] == "0400" and reversals[0]["reason"] == "68"
            item = rig.journal.queue_items()[0]
            assert item["state"] == J.DONE and item["attempts"] == 4
            assert rig.balance("visa-debit") == 100000
            assert rig.check() == []

    run(go())


def test_reversal_waits_with_backoff_while_the_host_is_away(tmp_path):
    async def go():
        async with Rig(tmp_path, proxy=True, timeout=0.2, retry_base=0.05,
                       retry_max=0.2) as rig:
            rig.proxy.fault("drop")
            rig.proxy.fault("reset", mti="0410")
            rig.proxy.fault("reset", mti="0430", count=3)
            with pytest.raises(HostUnavailable):
                await rig.auth.authorize(request(1, "sale", 3000, swipe("visa-debit")))
            await rig.auth.wait_idle(5)
            item = rig.journal.queue_items()[0]
            assert item["attempts"] == 5 and item["response_code"] == "00"
            assert rig.balance("visa-debit") == 100000
            assert rig.check() == []

    run(go())


def test_cancel_while_in_flight_reverses_a_late_approval(tmp_path):
    import asyncio

    async def go():
        async with Rig(tmp_path, proxy=True, timeout=2.0) as rig:
            rig.proxy.fault("delay", arg=0.3)
            task = asyncio.ensure_future(
                rig.auth.authorize(request(1, "sale", 800, swipe("visa-debit"))))
            await asyncio.sleep(0.1)
            rig.auth.cancel(1, "timeout")  # the core's host timer fired first
            reply = await task
            assert reply["approved"]  # what the host said; the core has moved on
            await rig.auth.wait_idle(5)
            assert rig.journal.find_by_ref(1)["status"] == J.REVERSED
            assert rig.balance("visa-debit") == 100000
            assert rig.check() == []

    run(go())


def test_reversal_for_a_request_the_host_never_saw(tmp_path):
    """A request lost on the way in: the reversal finds nothing (25), the journal
    marks it reversed and nothing is in force anywhere."""
    async def go():
        async with Rig(tmp_path) as rig:
            rig.server.response_delay = None
            ledger_handle = rig.ledger.handle

            def lose_sales(message, **kw):
                if message["mti"] == "0200":
                    return None  # as if it never arrived
                return ledger_handle(message, **kw)

            rig.ledger.handle = lose_sales
            rig.auth.timeout = 0.2
            with pytest.raises(HostUnavailable):
                await rig.auth.authorize(request(1, "sale", 100, swipe("visa-debit")))
            await rig.auth.wait_idle(5)
            assert rig.ledger.reversals()[0]["code"] == "25"
            assert rig.journal.find_by_ref(1)["status"] == J.REVERSED
            assert rig.check() == []

    run(go())


def _enrolled_mac_rig(tmp_path, **kw):
    """A rig with DUKPT MACs both ways whose host enforces the terminal registry (enrolled
    KAPOS001, KSN counters must be fresh), as `kapos host` does."""
    import os

    from kapos.simdata.keys import TEST_BDK, ik_id_for
    from kapos.security import dukpt
    from kapos.io.keystore import KeyStore
    from kapos.app.secmodule import DukptMac, SecurityModule
    from kapos_tools.host.mac import HostDukptMac
    from kapos_tools.host.registry import TerminalRegistry

    store = KeyStore(os.path.join(str(tmp_path), "keys"))
    ik_id = ik_id_for("KAPOS001")
    store.install(dukpt.derive_initial_key(TEST_BDK, ik_id), ik_id)
    rig = Rig(tmp_path, mac=DukptMac(SecurityModule(store)), host_mac=HostDukptMac(TEST_BDK),
              sign_on=False, **kw)
    registry = TerminalRegistry(rig.ledger.db)
    registry.enroll("KAPOS001", "KAPOS-MERCHANT1", ik_id)
    return rig, registry


def test_reversal_repeats_pass_the_terminal_registry(tmp_path):
    """0400, 0420, 0421, 0421: each attempt takes a fresh KSN, so the host's "never the
    same KSN twice" rule refuses none of them and the original is undone once."""
    async def go():
        rig, registry = _enrolled_mac_rig(tmp_path, proxy=True, timeout=0.2, retry_base=0.02)
        async with rig:
            rig.server.registry = registry
            rig.proxy.fault("drop")  # the 0210
            rig.proxy.fault("drop", mti="0410")
            rig.proxy.fault("drop", mti="0430", count=2)
            with pytest.raises(HostUnavailable):
                await rig.auth.authorize(request(1, "sale", 3000, swipe("visa-debit")))
            await rig.auth.wait_idle(5)
            reversals = rig.ledger.reversals()
            assert reversals[0]["applied"] == 1 and reversals[0]["received"] == 4
            assert rig.server.stats["refused_messages"] == 0
            assert rig.balance("visa-debit") == 100000
            ok = await rig.auth.authorize(request(2, "sale", 100, swipe("visa-debit")))
            assert ok["approved"] and rig.check() == []
            assert registry.terminals()[0]["last_counter"] >= 6

    run(go())
