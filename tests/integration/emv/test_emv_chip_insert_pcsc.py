"""Chip insert through PC/SC end to end: the real pcscd, vsmartcard's vpcd driver and a
virtual EMV card (T=0, so every answer comes through 61xx + GET RESPONSE). The same kernel
as for taps: PSE, M/Chip with GENERATE AC, online PIN above the CVM limit, the 0200 with
field 55 / 23 / 52 at the reference host, the ARPC from the host sent back to the card in
the second GENERATE AC, which checks it (TC), and a forged ARPC that the card refuses (AAC:
the terminal must reverse)."""

import asyncio
import os
import time

import pytest

from kapos.app.pinseal import TestKeyPinSealer
from kapos.simdata.cards import expiry_months_ahead
from kapos import card as cards
from kapos.emv import apdu, kernel
from kapos.host import messages as m
from kapos.nfc import tlv
from kapos.ports.linux.pcsc import PcscContactReader, t0_command
from kapos.ports.sim.cards.emv_debit_multi import debit_multi
from kapos.ports.sim.cards.emv_mchip import mchip
from kapos.ports.sim import emv_cards
from kapos.ports.sim.vpcd_card import VpcdCardPair
from kapos.app import scenario as scenario_mod
from kapos_tools.host import Ledger

from emv_rig import config, sale
from pcsc_rig import running_pcscd, skip_unless_available

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
EXPIRY = expiry_months_ahead(48)
PAN = "5413330089010434"
UTC = time.gmtime()


@pytest.fixture
def chip(tmp_path):
    skip_unless_available()
    pair = VpcdCardPair(mchip(expiry=EXPIRY, contact=True), t0=True, spare=mchip(contact=True))
    with running_pcscd(pair, tmp_path):
        yield pair, PcscContactReader(reader="Virtual PCD 00 00")


@pytest.fixture
def ledger(tmp_path):
    path = tmp_path / "cards.toml"
    path.write_text('[[card]]\nid = "emv-mc"\npan = "%s"\nexpires_in_months = 48\npin = "1234"\n'
                    'balance = 100000\n' % PAN)
    ledger = Ledger(":memory:")
    ledger.load_cards(str(path))
    return ledger


def insert(reader):
    return asyncio.run(asyncio.wait_for(reader.wait_insert(), 10))


def online_request(result, pin="1234"):
    card = cards.card_from_track2(result.track2, "tap")
    block, ksn = TestKeyPinSealer().seal(bytearray(pin.encode()), len(pin), card)
    message = m.build_financial_request(
        "sale", 25000, 1, UTC, UTC, "KAPOS001", "KAPOS-MERCHANT1", "978", track2=result.track2,
        pan_entry="05", private="BN006000001", icc=result.icc_data)
    message[23] = "0" + result.pan_sequence
    message[52] = bytes(block)
    return message


def test_chip_sale_with_pin_and_an_arpc_the_card_accepts(chip, ledger):
    pair, reader = chip
    card = insert(reader)
    assert card.protocol == "T=0" and card.atr.endswith(b"KAPOS-EMV")
    trace = []
    channel = apdu.Channel(card.transceive, trace)
    result = kernel.run(channel, config(cvm_limit=10000), sale(25000), contactless=False)
    assert result.entry == "chip" and result.path == "mchip" and result.cvm == "online_pin"
    assert any(r[:1] == b"\x61" for _, r in trace)  # T=0: the data came with GET RESPONSE
    assert trace[0][0][5:19] == b"1PAY.SYS.DDF01"  # contact: the PSE
    reply = ledger.handle(online_request(result))
    assert reply[39] == "00"
    issuer = dict(tlv.parse(reply[55]))[0x91]
    assert kernel.second_generate_ac(channel, result, b"00", issuer) == kernel.CID_TC
    assert pair.slot.card.apps[0].arpc_checked is True
    card.close()


def test_a_forged_arpc_makes_the_card_decline(chip, ledger):
    pair, reader = chip
    card = insert(reader)
    channel = apdu.Channel(card.transceive)
    result = kernel.run(channel, config(cvm_limit=10000), sale(25000), contactless=False)
    reply = ledger.handle(online_request(result))
    issuer = bytearray(dict(tlv.parse(reply[55]))[0x91])
    issuer[0] ^= 0x01  # an attacker answering for the host without the issuer key
    assert kernel.second_generate_ac(channel, result, b"00", bytes(issuer)) == kernel.CID_AAC
    assert pair.slot.card.apps[0].arpc_checked is False
    card.close()


def test_wrong_pin_is_declined_by_the_host(chip, ledger):
    _, reader = chip
    card = insert(reader)
    result = kernel.run(apdu.Channel(card.transceive), config(cvm_limit=10000), sale(25000),
                        contactless=False)
    assert ledger.handle(online_request(result, pin="9999"))[39] == "55"
    card.close()


def test_t0_drops_le_of_case_4_only():
    assert t0_command(bytes.fromhex("00A404000E315041592E5359532E444446303100")) == \
        bytes.fromhex("00A404000E315041592E5359532E4444463031")
    assert t0_command(bytes.fromhex("00B2010C00")) == bytes.fromhex("00B2010C00")


def test_contact_card_with_three_applications_lets_the_cardholder_choose(tmp_path):
    skip_unless_available()
    pair = VpcdCardPair(debit_multi(expiry=EXPIRY, contact=True), t0=False, spare=mchip(contact=True))
    with running_pcscd(pair, tmp_path):
        card = insert(PcscContactReader(reader="Virtual PCD 00 00"))
        offered = []

        def choose(candidates):
            offered.append([c.display_name() for c in candidates])
            return candidates[1]  # the cardholder picks Maestro

        result = kernel.run(apdu.Channel(card.transceive), config(), sale(), contactless=False,
                            choose=choose)
        assert offered == [["girocard", "Maestro", "VISA DEBIT"]]
        assert result.label == "Maestro"
        card.close()


def test_terminal_chip_insert_sale_through_pcscd(tmp_path):
    """The whole terminal on a board whose [chip] is the PC/SC driver: insert into vpcd's
    reader, PIN, the 0200 with field 55 at the reference host, its ARPC back to the card in
    the second GENERATE AC (TC), approved."""
    skip_unless_available()
    from test_emv_terminal_tap import Running, _spy

    board = open(os.path.join(ROOT, "boards", "sim-nfc.toml")).read().replace(
        '[chip]\ndriver = "sim"', '[chip]\ndriver = "pcsc"\nreader = "Virtual PCD 00 00"')
    (tmp_path / "sim-pcsc.toml").write_text(board)
    from kapos.simdata.cards import load

    # vpcd connects its slots once a card answers: the card is in before the sale starts
    emv = emv_cards.card_for(load()["emv-tap"].track2_equivalent(), "mchip", contact=True)
    pair = VpcdCardPair(emv, t0=True, spare=mchip(contact=True))
    script = scenario_mod.parse('timeout 15\nkey 1\nkeys 7800\nkey ENTER\nexpect screen "1 Debit"\n'
                                'key 1\nkeys 1234\nkey ENTER\nexpect result approved\n'
                                'expect screen "Remove card"\n')

    async def go():
        async with Running(board=str(tmp_path / "sim-pcsc.toml")) as r:
            seen = _spy(r)
            await r.player.play(script)
            request, reply = seen["requests"][-1], seen["replies"][-1]
            assert request[22] == "051" and reply[39] == "00" and 0x91 in dict(tlv.parse(reply[55]))
            assert emv.apps[0].arpc_checked is True  # the card accepted the issuer's ARPC: TC
            assert r.terminal.contact.last.data[0x9F27][0] & 0xC0 == kernel.CID_TC

    with running_pcscd(pair, tmp_path):
        asyncio.run(go())
