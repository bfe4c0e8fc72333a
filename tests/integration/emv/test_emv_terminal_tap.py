"""Taps in the terminal run the EMV kernel: board sim-nfc (the real MFRC522 driver over the
register-level emulator, NFC on its worker thread), the scenario's amount, date and type,
the reference host's engine in process verifying the ARQC and answering the ARPC."""

import asyncio
import os

from kapos.app import scenario as scenario_mod
from kapos.host.codec import MTI
from kapos.nfc import tlv
from kapos.ports.sim import emv_cards
from kapos.ports.sim.cards import emv_app
from terminalrig import SCENARIOS, Running  # tests/integration, on the path by its conftest


def _spy(r):
    """Requests as built by the terminal and replies of the host's ledger, in order."""
    seen = {"requests": [], "replies": []}
    link = r.terminal.authorizer
    build = link.build_request

    def build_request(*args, **kw):
        message = build(*args, **kw)
        seen["requests"].append(dict(message))
        return message

    link.build_request = build_request
    ledger = link.engine.ledger
    handle = ledger.handle

    def handle_spy(message, *args, **kw):
        reply = handle(message, *args, **kw)
        if reply is not None and message.get(MTI) == "0200":
            seen["replies"].append(dict(reply))
        return reply

    ledger.handle = handle_spy
    return seen


def _play(name, check, profile_patch=None):
    scenario = scenario_mod.load(os.path.join(SCENARIOS, name))

    async def go():
        async with Running(overrides=scenario.config, board="sim-nfc", clock=scenario.clock) as r:
            seen = _spy(r)
            await r.player.play(scenario)
            check(r, seen)

    asyncio.run(go())


def _icc(message):
    return dict(tlv.parse(message[55]))


def test_tap_emv_runs_the_kernel_and_the_host_verifies_the_arqc():
    def check(r, seen):
        request = seen["requests"][-1]
        assert request[22] == "071"  # contactless chip, PIN capable
        assert request[23] == "001"
        icc = _icc(request)
        assert len(icc[0x9F26]) == 8 and icc[0x9F02] == bytes.fromhex("000000000780")
        assert icc[0x5F2A] == bytes.fromhex("0978") and icc[0x9F1A] == bytes.fromhex("0276")
        assert icc[0x9F37] != bytes(4)  # the CSPRNG's, never zero by accident
        reply = seen["replies"][-1]
        assert reply[39] == "00" and 0x91 in dict(tlv.parse(reply[55]))  # the ARPC
        assert r.terminal.chip.last.label == "Visa Credit"
        assert r.terminal.records[-1]["application"] == "Visa Credit"

    _play("tap-emv.scenario", check)


def test_first_aid_blocked_pays_with_the_second_and_shows_its_label():
    def check(r, seen):
        result = r.terminal.chip.last
        assert result.dropped and result.dropped[0][0] == "A0000000041010"
        assert result.label == "VISA DEBIT"
        assert _icc(seen["requests"][-1])[0x84] == bytes.fromhex("A0000000032010")
        assert seen["replies"][-1][39] == "00"

    _play("tap-emv-blocked-first.scenario", check)


def test_two_taps_in_a_row_both_approve_the_atc_rises():
    text = ("key 1\nkeys 780\nkey ENTER\ntap emv-tap mchip\nexpect screen \"1 Debit\"\nkey 1\n"
            "keys 1234\nkey ENTER\nexpect result approved\nkey ENTER\nexpect state IDLE\n") * 2

    async def go():
        async with Running(board="sim-nfc") as r:
            seen = _spy(r)
            await r.play(text)
            atcs = [_icc(m)[0x9F36] for m in seen["requests"]]
            assert len(atcs) == 2 and atcs[1] > atcs[0]
            assert [reply[39] for reply in seen["replies"]] == ["00", "00"]

    asyncio.run(go())


class _FlippedArqc(emv_app.EmvApplication):
    """A card whose ARQC has one bit flipped on the way out (a forged or damaged cryptogram)."""

    def _arqc(self, *args, **kw):
        arqc, iad = emv_app.EmvApplication._arqc(self, *args, **kw)
        return bytes((arqc[0] ^ 0x01,)) + bytes(arqc[1:]), iad


def test_one_bit_of_9f26_flipped_is_declined_and_nothing_moves():
    def flipped(pan, expiry, sc, atc):
        return [_FlippedArqc(emv_cards.VISA_CREDIT, "VISA CREDIT", pan, expiry, "visa",
                             service_code=sc, atc=atc)]

    emv_cards.PROFILES["test-flipped-arqc"] = flipped
    text = ("key 1\nkeys 780\nkey ENTER\ntap emv-tap test-flipped-arqc\nexpect screen \"1 Debit\"\n"
            "key 1\nkeys 1234\nkey ENTER\nexpect result declined\n")

    async def go():
        async with Running(board="sim-nfc") as r:
            seen = _spy(r)
            ledger = r.terminal.authorizer.engine.ledger
            before = ledger.balance("4761739001010010")
            await r.play(text)
            assert seen["replies"][-1][39] == "05"
            assert 55 in seen["requests"][-1]
            assert before is not None and ledger.balance("4761739001010010") == before

    try:
        asyncio.run(go())
    finally:
        del emv_cards.PROFILES["test-flipped-arqc"]
