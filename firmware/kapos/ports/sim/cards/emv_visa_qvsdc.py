"""A Visa credit card, qVSDC: the ARQC comes back with GET PROCESSING OPTIONS."""

from kapos.ports.sim.cards.emv_app import EmvApplication, EmvCard, EmvContactlessCard

VISA_CREDIT = bytes.fromhex("A0000000031010")


def visa_qvsdc(pan="4761739001010010", expiry="3012", atc=0x0010, ctq=None, contact=False):
    return EmvCard([EmvApplication(VISA_CREDIT, "VISA CREDIT", pan, expiry, "visa", atc=atc,
                                   ctq=ctq, preferred="Visa Credit")], contact=contact)


def visa_qvsdc_tap(uid, **options):
    return EmvContactlessCard(uid, visa_qvsdc(**options))
