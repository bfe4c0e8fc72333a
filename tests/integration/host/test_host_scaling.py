"""The host's work per message does not grow with the ledger or repeat itself: the
velocity rule reads an index (not every transaction), and one message derives its DUKPT
transaction key from the BDK once, for the request MAC, the card data, the PIN block and
the reply MAC together. (Timings are `make bench`'s; these check the mechanism.)"""

import time

from hostkit import new_ledger, request, run, swipe
from test_host_mac import mac_rig

from kapos.host import codec
from kapos.host.client import encode_message
from kapos_tools.host.fastkeys import HostKeys


def test_the_velocity_rule_reads_an_index_not_the_whole_ledger(tmp_path):
    ledger = new_ledger(velocity=(3, 60))
    statements = []
    ledger.db.set_trace_callback(statements.append)

    async def go():
        async with mac_rig(tmp_path, ledger=ledger) as rig:
            reply = await rig.auth.authorize(request(1, "sale", 100, swipe("visa-debit")))
            assert reply["code"] == "00"

    run(go())
    ledger.db.set_trace_callback(None)
    velocity = [s for s in statements if s.lstrip().upper().startswith("SELECT COUNT(*) FROM TXNS WHERE CARD_KEY")]
    assert velocity, "the velocity rule ran"
    plan = " ".join(str(tuple(row)) for row in ledger.db.execute("EXPLAIN QUERY PLAN " + velocity[0]))
    assert "txns_card_time" in plan and "SCAN txns" not in plan, plan


def test_no_statement_of_an_authorization_scans_the_transactions(tmp_path):
    # the held-amount sum, the velocity rule, the repeat check ...: each reads an index
    ledger = new_ledger(velocity=(3, 60))
    statements = []

    async def go():
        async with mac_rig(tmp_path, ledger=ledger) as rig:
            ledger.db.set_trace_callback(statements.append)
            reply = await rig.auth.authorize(request(1, "sale", 100, swipe("visa-debit")))
            ledger.db.set_trace_callback(None)
            assert reply["code"] == "00"

    run(go())
    scans = []
    for statement in statements:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")) and "txns" in statement:
            plan = " ".join(str(tuple(row)) for row in ledger.db.execute("EXPLAIN QUERY PLAN " + statement))
            if "SCAN txns" in plan:
                scans.append(statement)
    assert scans == []


def test_one_message_derives_its_transaction_key_once(tmp_path, monkeypatch):
    calls = []
    real = HostKeys.transaction_key  # the host's walk BDK -> IK -> transaction key
    monkeypatch.setattr(HostKeys, "transaction_key", lambda self, ksn: (calls.append(1), real(self, ksn))[1])

    async def go():
        async with mac_rig(tmp_path, sign_on=False) as rig:
            req = request(1, "sale", 700, swipe("visa-debit"))
            sm = rig.auth.mac.sm  # the terminal's DUKPT: the PIN block and the MAC share one KSN
            req["pin_block"], req["ksn"] = sm.seal(bytearray(b"1234"), 4, req["card"], req["ref"])
            message = rig.auth.build_request(req, "000009", time.gmtime(), 1)
            data = encode_message(message, rig.auth.mac)
            assert 53 in message and 52 in message  # MACed, with a DUKPT PIN block
            calls.clear()
            response = codec.decode(rig.server.process(bytes(data)))
            assert response[39] == "00"
            assert len(calls) == 1  # MAC check, card data, PIN block and reply MAC share it

    run(go())
