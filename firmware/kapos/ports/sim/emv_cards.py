"""EMV cards for the sim board's taps (and inserts): a test card's track 2 equivalent
becomes an emulated card with real keys and an ATC (ports/sim/cards/emv_app.py), so the
terminal's kernel and the reference host's ARQC check see what a real card would send.

The personality comes from `tap.profile` (scenario `tap <card> <profile>`), default
"visa-qvsdc". One card object is kept per (PAN, profile) for the process, so the ATC
goes up from one tap to the next; the first ATC is taken from the wall clock (minutes)
so that a sim ledger kept across runs (data_dir/sim-host.db) still sees it rise.
"""

import threading
import time

from kapos.errors import ConfigError
from kapos.ports.sim.cards.emv_app import EmvApplication, EmvCard
from kapos.ports.sim.cards.emv_debit_multi import debit_multi

VISA_CREDIT = bytes.fromhex("A0000000031010")
VISA_DEBIT = bytes.fromhex("A0000000032010")
MASTERCARD = bytes.fromhex("A0000000041010")
MAESTRO = bytes.fromhex("A0000000043060")


def _visa(pan, expiry, sc, atc):
    return [EmvApplication(VISA_CREDIT, "VISA CREDIT", pan, expiry, "visa", service_code=sc,
                           atc=atc, preferred="Visa Credit")]


def _mchip(pan, expiry, sc, atc):
    return [EmvApplication(MASTERCARD, "MASTERCARD", pan, expiry, "mchip", service_code=sc, atc=atc)]


def _blocked_first(pan, expiry, sc, atc):
    return [EmvApplication(MASTERCARD, "MASTERCARD", pan, expiry, "mchip", priority=1,
                           service_code=sc, blocked=True),
            EmvApplication(VISA_DEBIT, "VISA DEBIT", pan, expiry, "visa", priority=2,
                           service_code=sc, atc=atc)]


def _two_apps(pan, expiry, sc, atc):
    return [EmvApplication(MAESTRO, "Maestro", pan, expiry, "mchip", priority=1,
                           service_code=sc, atc=atc),
            EmvApplication(VISA_DEBIT, "VISA DEBIT", pan, expiry, "visa", priority=2,
                           service_code=sc, atc=atc)]


def _multi_confirm(pan, expiry, sc, atc):
    """emv_debit_multi's three applications, the first asking for confirmation (87 bit 8)."""
    apps = debit_multi(pan, expiry).apps
    apps[0].priority |= 0x80
    for i, app in enumerate(apps):
        app.service_code = sc
        app.atc = atc + i
    return apps


# profile -> apps(pan, expiry 'YYMM', service code, first ATC)
PROFILES = {"visa-qvsdc": _visa, "mchip": _mchip, "blocked-first": _blocked_first,
            "two-apps": _two_apps, "multi-confirm": _multi_confirm}
DEFAULT_PROFILE = "visa-qvsdc"

_cards = {}
_lock = threading.Lock()


def _first_atc():
    return 0x10 + int(time.time() // 60) % 0xE000


def card_for(track2, profile=None, contact=False):
    """The EmvCard for a track 2 equivalent 'PAN=YYMMSSS...' (one per PAN, profile, interface)."""
    profile = profile or DEFAULT_PROFILE
    make = PROFILES.get(profile)
    if make is None:
        raise ConfigError("no EMV card profile %r (known: %s)" % (profile, ", ".join(sorted(PROFILES))))
    pan, _, rest = track2.partition("=")
    if len(rest) < 7:
        raise ConfigError("the track 2 equivalent has no expiry and service code")
    key = (pan, rest[:7], profile, contact)  # a card with another expiry is another card
    with _lock:
        card = _cards.get(key)
        if card is None:
            card = _cards[key] = EmvCard(make(pan, rest[:4], rest[4:7], _first_atc()), contact=contact)
    return card
