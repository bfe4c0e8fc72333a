"""Helpers to drive the pure state machine with real events (no runtime, no clock).

Imported by name (`from coredriver import ...`): a helper module called conftest would be
shadowed by another directory's conftest.py when pytest collects several directories."""

from kapos import card as cards
from kapos.core import commands as C
from kapos.core import events as E
from kapos.core import machine
from kapos.core.settings import Settings
from kapos.hal import Tap

DATE = "20261125"
VISA = cards.build_track1("4111111111111111", "TEST/VISA", "3012", "101") + \
    cards.build_track2("4111111111111111", "3012", "101")
MC_CREDIT = cards.build_track2("5555555555554444", "3106", "201")  # no PIN by service code
ATM_ONLY = cards.build_track2("6011111111111117", "3001", "103")
EXPIRED = cards.build_track2("4012888888881881", "2001", "101")
TOKEN_UID = bytes.fromhex("04A2B3C4D5E6F7")


MERCHANT_PIN = "5678"  # the test merchant PIN (the default config holds its hash)


class FakeMerchantPin:
    """A verifier like app.merchantpin.MerchantPinCheck without the hashing; it notes the
    buffers it was given so tests can check they were wiped afterwards."""

    def __init__(self, pin=MERCHANT_PIN):
        self._pin = pin.encode()
        self.seen = []

    def verify(self, buffer, length):
        self.seen.append(buffer)
        return bytes(buffer[:length]) == self._pin


def ev(kind, **data):
    return E.Event(kind, time=1795000000.0, date=DATE, **data)


def key(k):
    return ev(E.KEY, key=k)


class Driver:
    """Feeds events into step() and keeps state, ctx and the last commands."""

    def __init__(self, settings=None):
        settings = settings or Settings()
        if settings.merchant_pin_check is None:
            settings.merchant_pin_check = FakeMerchantPin()
        self.state, self.ctx, self.commands = machine.start(settings)
        self.all_commands = list(self.commands)

    def send(self, event):
        self.state, self.ctx, self.commands = machine.step(self.state, self.ctx, event)
        self.all_commands += self.commands
        return self

    def keys(self, *names):
        for name in names:
            for k in (list(name) if name.isdigit() else [name]):
                self.send(key(k))
        return self

    def swipe(self, raw=VISA):
        return self.send(ev(E.SWIPE, raw=raw))

    def tap(self, uid=TOKEN_UID, track2=None):
        return self.send(ev(E.TAP, tap=Tap(uid, track2=track2)))

    def find(self, kind):
        return [c for c in self.commands if c.kind == kind]

    def shown(self):
        shows = self.find(C.SHOW)
        return shows[-1] if shows else None

    def authorize_command(self):
        found = self.find(C.AUTHORIZE)
        assert found, "no AUTHORIZE in %r" % self.commands
        return found[0]

    def sealed(self, block=b"\x11" * 16):
        return self.send(ev(E.PIN_SEALED, block=block, ksn=None))

    def reply(self, approved=True, code=None, **extra):
        ref = self.ctx.txn.ref
        reply = {"approved": approved, "code": code or ("00" if approved else "05"),
                 "text": "Approved" if approved else "Do not honor", "auth_code": "123456" if approved else None,
                 "rrn": "000000000001"}
        reply.update(extra)
        return self.send(ev(E.HOST_REPLY, ref=ref, reply=reply))



def merchant(d, pin=MERCHANT_PIN):
    return d.keys(pin, "ENTER")


def sale_to_pin(d, amount="1235"):
    return d.keys("1", amount, "ENTER").swipe(VISA).keys("1")


def approved_sale(d, amount="1235"):
    sale_to_pin(d, amount).keys("1234", "ENTER").sealed().reply(True)
    return d


# ---------------------------------------------------------------- contact chip

CHIP_TRACK2 = "5413330089010434=3012201000"


def chip_settings(**kw):
    return Settings(has_chip_reader=True, **kw)


def chip_result(completion=True, cvm="online_pin"):
    """What the kernel hands the core for an inserted M/Chip card (no card behind it)."""
    from kapos.emv.kernel import Result

    result = Result()
    result.track2 = CHIP_TRACK2
    result.icc_data = bytes.fromhex("9F2608") + bytes(8)
    result.pan_sequence = "01"
    result.entry = "chip"
    result.path = "mchip"
    result.label = "MASTERCARD"
    result.cvm = cvm
    if completion:
        result.data[0x8D] = b"\x8a\x02"
    return result


def chip_sale(d, amount="7800"):
    """A sale on a chip board brought to CHIP_READ by an insert."""
    d.keys("1", amount, "ENTER")
    return d.send(ev(E.INSERT))


def chip_read(d, result=None, error=None):
    ref = d.ctx.txn.ref
    if error is not None:
        return d.send(ev(E.CHIP_READ, ref=ref, error=error))
    return d.send(ev(E.CHIP_READ, ref=ref, result=result or chip_result()))
