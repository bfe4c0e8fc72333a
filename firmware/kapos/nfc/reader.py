"""What one tap yields, over any frontend: the UID and, by card type, the card number of
an ISO-DEP payment card or a token block (MIFARE Classic). The card is left halted.

nfc knows no EMV (layer rule): an ISO-DEP card is handed, as its `exchange` function,
to whatever the caller passes -- on a terminal the EMV kernel (kapos.emv.kernel.run in a
sale, kapos.emv.tap.TrackReader outside one).

A MIFARE Classic whose token sector refuses the key gives token None (the UID alone
still identifies a closed-loop token); every other failure raises.
"""

from kapos.errors import CardReadError
from kapos.nfc import iso14443a
from kapos.nfc.isodep import IsoDep
from kapos.nfc.mifare_classic import KEY_A, TRANSPORT_KEY, MifareClassic

TOKEN_BLOCK = 4  # sector 1, block 0


def read_target(fe, target, key=TRANSPORT_KEY, key_type=KEY_A, token_block=TOKEN_BLOCK,
                read_dep=None):
    """Read a selected card (a Target from iso14443a.activate). Returns (track2, token):
    track2 is what `read_dep(exchange)` gave for an ISO-DEP card (None without read_dep)."""
    if target.iso_dep and read_dep is not None:
        return run_emv(fe, target, read_dep), None
    token = None
    if target.mifare_classic and token_block is not None:
        mc = MifareClassic(fe, target.uid)
        try:
            try:
                mc.authenticate(token_block, key, key_type)
            except CardReadError:
                return None, None  # not our key; the card is back in IDLE
            token = mc.read_block(token_block)
            mc.halt()
        finally:
            mc.stop()
    else:
        iso14443a.halt(fe)
    return None, token


def run_emv(fe, target, session):
    """`session(exchange)` over an ISO-DEP card (the EMV kernel: a Result, a track 2 or
    None). The card is deselected afterwards, whatever the kernel said."""
    dep = IsoDep(fe)
    dep.activate()
    try:
        return session(dep.exchange)
    finally:
        dep.deselect()
