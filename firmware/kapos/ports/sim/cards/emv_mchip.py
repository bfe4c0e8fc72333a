"""A Mastercard credit card, M/Chip: GENERATE AC after the records; on contact the
second GENERATE AC checks the issuer's ARPC (method 1)."""

from kapos.ports.sim.cards.emv_app import EmvApplication, EmvCard, EmvContactlessCard

MASTERCARD = bytes.fromhex("A0000000041010")


def mchip(pan="5413330089010434", expiry="3012", atc=0x0020, contact=False):
    return EmvCard([EmvApplication(MASTERCARD, "MASTERCARD", pan, expiry, "mchip", atc=atc)],
                   contact=contact)


def mchip_tap(uid, **options):
    return EmvContactlessCard(uid, mchip(**options))
