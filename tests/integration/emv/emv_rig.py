"""Shared set-up for the EMV integration tests: a tap through the REAL MFRC522 driver and
ISO-DEP stack on the register-level emulator, the kernel on top, and the issuer side."""

import os

from kapos.emv import apdu, kernel
from kapos.emv.terminal import TerminalConfig, Transaction
from kapos.nfc import iso14443a
from kapos.nfc.isodep import IsoDep
from kapos.ports.sim.mfrc522_emu import emulated_chip

UID = bytes.fromhex("08112233")


def config(**options):
    options.setdefault("random_bytes", os.urandom)
    options.setdefault("currency", 978)
    return TerminalConfig(**options)


def sale(amount=1250, date="261201"):
    return Transaction("sale", amount, date, "101500")


def tap(card, txn=None, cfg=None, trace=None, **kw):
    """Put `card` (an EmvContactlessCard) in the emulated field and run the kernel."""
    emu, chip = emulated_chip()
    emu.add_card(card)
    target = iso14443a.activate(chip)
    assert target is not None and target.iso_dep
    dep = IsoDep(chip)
    dep.activate()
    try:
        return kernel.run(apdu.Channel(dep.exchange, trace), cfg or config(), txn or sale(), **kw)
    finally:
        dep.deselect()


def pan_of(result):
    return result.track2.split("=")[0]
