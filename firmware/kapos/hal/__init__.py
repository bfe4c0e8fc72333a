"""HAL interfaces (L1): what the runtime needs from each peripheral.

Base classes raise NotImplementedError; a port (linux, sim) subclasses them. Inputs are
awaited (`async def read...`) so the runtime never busy-waits; a driver that has to poll
a chip does so at its own configured rate with the radio/bus idle in between.
Every interface has a simulated twin in `kapos.ports.sim`. What a display draws and a
printer prints are the plain values of `kapos.hal.output` (built by the app, never imported
from it).
"""


class Device:
    """Common life cycle: a device is ready once constructed."""

    name = "device"

    def close(self):
        """Release the bus / file handles. Safe to call twice."""

    def selftest(self):
        """Return (ok, reason) after a quick non-destructive check."""
        return True, "no self-test"


# ---- buses (drivers in kapos.drivers are written against these) ----

class SpiBus:
    def transfer(self, data):
        """Full-duplex transfer: send `data` (bytes), return as many bytes read."""
        raise NotImplementedError


class Pin:
    """A GPIO line. `value()` reads, `value(x)` drives."""

    def value(self, level=None):
        raise NotImplementedError


# ---- peripherals ----

class Keypad(Device):
    name = "keypad"

    async def read_key(self):
        """Wait for the next key press; return a logical key name (see core.keys)."""
        raise NotImplementedError


class MagstripeReader(Device):
    name = "magstripe"

    async def read_swipe(self):
        """Wait for the next swipe; return the raw track text (str), tracks joined
        as the reader sends them (e.g. '%B...?;...?'). Decoding is card.tracks' job."""
        raise NotImplementedError


class Tap:
    """What an NFC read produced: a UID and, for an EMV-style card, the track 2
    equivalent data read from it (str of digits and '=') or None."""

    def __init__(self, uid, track2=None, token=None, emv=None, error=None):
        self.uid = uid  # bytes
        self.track2 = track2
        self.token = token  # bytes read from a closed-loop token's memory, or None
        self.emv = emv  # kapos.emv.kernel.Result when the EMV kernel ran on the card
        self.error = error  # CardReadError / CardRejected of the kernel (the card said no)
        self.profile = None  # sim only: the emulated EMV personality (ports/sim/emv_cards.py)

    def __repr__(self):
        return "Tap(uid=%s, track2=%s)" % (self.uid.hex(), "yes" if self.track2 else "no")


class NfcReader(Device):
    name = "nfc"

    async def read_tap(self):
        """Wait for a card in the field; return a Tap."""
        raise NotImplementedError

    def set_emv_session(self, session):
        """`session(exchange) -> kernel Result` runs the EMV kernel on the next ISO-DEP
        card (None: the track 2 equivalent is read as before). Readers without ISO-DEP
        ignore it."""


class Display(Device):
    name = "display"
    width = 128
    height = 64

    def show(self, screen):
        """Draw a `kapos.hal.output.Screen` (title, lines, footer, kind)."""
        raise NotImplementedError


class Printer(Device):
    name = "printer"

    async def print_receipt(self, receipt):
        """Print a `kapos.hal.output.Receipt` (Lines: text, align, bold, double). Raises
        HardwareError when the printer reports paper-out or is offline."""
        raise NotImplementedError

    def status(self):
        """Return 'ok', 'paper-out', 'offline' or 'unknown'."""
        return "unknown"


class TamperSwitch(Device):
    name = "tamper"

    async def wait_tamper(self):
        """Wait until the enclosure is opened; return a short description of the source."""
        raise NotImplementedError


class Buzzer(Device):
    name = "buzzer"

    def beep(self, kind):
        """kind: 'key', 'ok', 'error', 'alarm'."""


class Clock(Device):
    name = "clock"

    def now(self):
        """Seconds since the epoch (float), UTC."""
        raise NotImplementedError

    def monotonic(self):
        """Seconds of a clock that never jumps (from an unspecified start), or None where
        the port has none (then what counts down goes by now())."""
        return None


class Platform:
    """The peripherals of one board, built from its board file."""

    def __init__(self, board, devices):
        self.board = board  # the parsed board definition (dict)
        self.devices = devices  # name -> Device

    def __getattr__(self, name):
        devices = self.__dict__.get("devices", {})
        if name in devices:
            return devices[name]
        raise AttributeError(name)

    def get(self, name):
        return self.devices.get(name)

    def close(self):
        for device in self.devices.values():
            try:
                device.close()
            except Exception:  # closing must not mask the real error
                pass
