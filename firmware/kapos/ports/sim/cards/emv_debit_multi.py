"""A debit card with three applications (girocard, Maestro, a Visa debit co-badge), by
priority; `refuse_first` makes the first answer its GPO with 6985 (fallback test)."""

from kapos.ports.sim.cards.emv_app import EmvApplication, EmvCard, EmvContactlessCard

GIROCARD = bytes.fromhex("A0000003591010028001")
MAESTRO = bytes.fromhex("A0000000043060")
VISA_DEBIT = bytes.fromhex("A0000000032010")


def debit_multi(pan="6799998900000060018", expiry="3012", refuse_first=False, contact=False):
    return EmvCard([
        EmvApplication(GIROCARD, "girocard", pan, expiry, "mchip", priority=1, atc=0x30,
                       refuse_gpo=refuse_first),
        EmvApplication(MAESTRO, "Maestro", pan, expiry, "mchip", priority=2, atc=0x40),
        EmvApplication(VISA_DEBIT, "VISA DEBIT", pan, expiry, "visa", priority=3, atc=0x50),
    ], contact=contact)


def debit_multi_tap(uid, **options):
    return EmvContactlessCard(uid, debit_multi(**options))
