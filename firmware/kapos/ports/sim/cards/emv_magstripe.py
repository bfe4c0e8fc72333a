"""A Mastercard in the mag-stripe profile: track data only in 9F6B, a CVC3 from COMPUTE
CRYPTOGRAPHIC CHECKSUM over the unpredictable number (UDOL 9F6A04), no ARQC."""

from kapos.ports.sim.cards.emv_app import EmvApplication, EmvCard, EmvContactlessCard

MASTERCARD = bytes.fromhex("A0000000041010")


def magstripe(pan="5413330089020011", expiry="3012"):
    return EmvCard([EmvApplication(MASTERCARD, "MASTERCARD", pan, expiry, "magstripe", atc=7)])


def magstripe_tap(uid, **options):
    return EmvContactlessCard(uid, magstripe(**options))
