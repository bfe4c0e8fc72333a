"""What one tap yields, over any frontend: the UID and, by card type, the EMV track 2
equivalent (ISO-DEP cards) or a token block (MIFARE Classic). The card is left halted.

A MIFARE Classic whose token sector refuses the key gives token None (the UID alone
still identifies a closed-loop token); every other failure raises.
"""

from kapos.errors import CardReadError
from kapos.nfc import emv, iso14443a
from kapos.nfc.isodep import IsoDep
from kapos.nfc.mifare_classic import KEY_A, TRANSPORT_KEY, MifareClassic

TOKEN_BLOCK = 4  # sector 1, block 0


def read_target(fe, target, key=TRANSPORT_KEY, key_type=KEY_A, token_block=TOKEN_BLOCK,
                read_emv=True, terminal_data=None):
    """Read a selected card (a Target from iso14443a.activate). Returns (track2, token)."""
    track2 = None
    token = None
    if target.iso_dep and read_emv:
        dep = IsoDep(fe)
        dep.activate()
        try:
            track2 = emv.read_track2(dep, terminal_data)
        finally:
            dep.deselect()
    elif target.mifare_classic and token_block is not None:
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
    return track2, token



def run_emv(fe, target, session):
    """The EMV kernel over an ISO-DEP card: `session(exchange)` -> kernel Result. The
    card is deselected afterwards, whatever the kernel said."""
    dep = IsoDep(fe)
    dep.activate()
    try:
        return session(dep.exchange)
    finally:
        dep.deselect()
