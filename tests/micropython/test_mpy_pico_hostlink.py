"""Attack tests of the Pico W port's host link and key state (run on CPython: the port
imports nothing of `machine` at module level)."""

import asyncio

import pytest

from kapos.simdata.keys import TEST_BDK, ik_id_for
from kapos.card.model import card_from_track2
from kapos.errors import RemoteProtocolError
from kapos.host import codec
from kapos.host import messages as m
from kapos.host.framing import TcpFramer
from kapos.ports.micropython.hostlink import HostLink
from kapos.ports.micropython.keystate import FlashKeyState
from kapos.security.dukpt import derive_initial_key

NOW = (2026, 12, 1, 10, 0, 0)


def keys(tmp_path):
    state = FlashKeyState(str(tmp_path / "dukpt.bin"))
    ik_id = ik_id_for("KAPOS001")
    state.load_initial_key(derive_initial_key(TEST_BDK, ik_id), ik_id)
    return state


class ForgedHost:
    """Answers every request 00 with a MAC of zeros (an attacker without the keys)."""

    def __init__(self):
        self.framer = TcpFramer()
        self.out = b""

    def write(self, data):
        (request_bytes,) = self.framer.receive(data)
        request = codec.decode(request_bytes)
        reply = m.build_response(request, "00", {38: "123456", 37: "000000000001"})
        reply[codec.mac_field(reply)] = bytes(8)
        self.out = TcpFramer().frame(codec.encode(reply))

    async def drain(self):
        pass

    async def read(self, n):
        out, self.out = self.out, b""
        return out

    def close(self):
        pass


def test_a_forged_approval_without_the_mac_key_is_no_approval(tmp_path):
    host = ForgedHost()

    async def opener(h, p):
        return host, host

    link = HostLink(keys(tmp_path), "KAPOS001", "KAPOS-MERCHANT1", "978", ("127.0.0.1", 1), opener)
    card = card_from_track2("4111111111111111D3012101", source="swipe")
    request = {"type": "sale", "amount": 1260, "account": "debit", "card": card}
    with pytest.raises(RemoteProtocolError, match="MAC"):
        asyncio.run(link.authorize(request, NOW, NOW))


def test_the_counter_is_on_flash_before_the_keys_are_used(tmp_path):
    state = keys(tmp_path)
    before = state.counter()
    ksn, tk = state.next_transaction()
    # a power cut now: a fresh start reads the flash and must not get the same KSN again
    reborn = FlashKeyState(state.path)
    assert reborn.counter() > before
    again, _ = reborn.next_transaction()
    assert again != ksn


class HandedKeys:
    """The key state, remembering every transaction's keys it hands out."""

    def __init__(self, state):
        self.state = state
        self.handed = []

    def next_transaction(self):
        ksn, tk = self.state.next_transaction()
        self.handed.append((bytes(ksn), tk))
        return ksn, tk


def test_sales_ended_after_their_pin_leave_one_set_of_keys_in_ram_not_one_each(tmp_path):
    """Cancelled or timed out after the PIN, a sale never sends its 0200: its transaction
    keys were kept by KSN for good (RAM growing per such sale, keys left unwiped)."""
    state = HandedKeys(keys(tmp_path))
    link = HostLink(state, "KAPOS001", "KAPOS-MERCHANT1", "978", ("127.0.0.1", 1), None)
    card = card_from_track2("4111111111111111D3012101", source="swipe")
    for _ in range(3):
        block, _ = link.seal_pin(bytearray(b"1234"), 4, card.pan_for_host(), lambda n: bytes(n))
    live = [tk for _, tk in state.handed if not tk._wiped]
    assert live == [state.handed[-1][1]], "earlier PINs' keys are still live"
    # the last PIN's 0200 goes under that PIN's keys, and then no keys are held
    ksn, tk = state.handed[-1]
    request = {"type": "sale", "amount": 1260, "account": "debit", "card": card, "pin_block": block, "ksn": ksn}
    message, data, used = link.build(request, NOW, NOW)
    assert used is tk and message[53] == ksn and len(state.handed) == 3
    assert link._take_sealed(ksn) is None


def test_a_forged_settlement_reply_keeps_the_batch_closed_and_its_totals_for_the_next_try(tmp_path):
    from kapos.ports.micropython.batch import BatchTotals

    host = ForgedHost()

    async def opener(h, p):
        return host, host

    batch = BatchTotals(str(tmp_path / "batch.json"))
    batch.add("sale", 1260)
    link = HostLink(keys(tmp_path), "KAPOS001", "KAPOS-MERCHANT1", "978", ("127.0.0.1", 1), opener, batch)
    with pytest.raises(RemoteProtocolError, match="MAC"):
        asyncio.run(link.settle(NOW))
    # a restart reads the flash: batch 1 is still waiting for its 0510, sales go to batch 2
    reborn = BatchTotals(batch.path)
    assert reborn.number == 2 and reborn.totals["debits_count"] == 0
    number, totals = reborn.close()
    assert (number, totals["debits_count"], totals["debits_amount"]) == (1, 1, 1260)


def test_a_damaged_batch_file_is_refused_by_name_and_left_alone(tmp_path):
    from kapos.errors import ConfigError
    from kapos.ports.micropython.batch import BatchTotals

    path = tmp_path / "batch.json"
    path.write_text('{"number": 3, "totals": {"debits_count": -1}}')
    with pytest.raises(ConfigError, match="batch.json"):
        BatchTotals(str(path))
    assert path.read_text() == '{"number": 3, "totals": {"debits_count": -1}}'
