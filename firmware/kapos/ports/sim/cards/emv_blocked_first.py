"""A card whose first-priority application is blocked (SELECT answers 6283): the
terminal must drop it and use the second one."""

from kapos.ports.sim.cards.emv_app import EmvApplication, EmvCard, EmvContactlessCard

MASTERCARD = bytes.fromhex("A0000000041010")
VISA_CREDIT = bytes.fromhex("A0000000031010")


def blocked_first(pan="4761739001010119", expiry="3012", contact=False):
    return EmvCard([
        EmvApplication(MASTERCARD, "MASTERCARD", pan, expiry, "mchip", priority=1, blocked=True),
        EmvApplication(VISA_CREDIT, "VISA CREDIT", pan, expiry, "visa", priority=2, atc=5),
    ], contact=contact)


def blocked_first_tap(uid, **options):
    return EmvContactlessCard(uid, blocked_first(**options))
