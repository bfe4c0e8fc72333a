"""Fakes for the linux port tests: an RPi.GPIO module with a key matrix wired to it, an
smbus-like I2C bus, and an evdev input device."""

import asyncio
import errno
import types


class FakeGPIO(types.SimpleNamespace):
    BCM, BOARD = 11, 10
    IN, OUT = 1, 0
    HIGH, LOW = 1, 0
    PUD_OFF, PUD_DOWN, PUD_UP = 20, 21, 22

    def __init__(self, clock=None):
        super().__init__()
        self.mode = None
        self.lines = {}  # number -> ("in", pull) | ("out", level)
        self.keys = {}  # label -> (row line, col line)
        self.held = set()  # labels pressed now (when no timeline)
        self.timeline = []  # (start_ms, end_ms, label)
        self.clock = clock
        self.shorts = 0
        self.outputs = []  # (number, level) history
        self.cleaned = None

    # -- the RPi.GPIO API --
    def setwarnings(self, flag):
        pass

    def setmode(self, mode):
        self.mode = mode

    def setup(self, number, direction, pull_up_down=None, initial=None):
        assert self.mode == self.BCM
        if direction == self.OUT:
            self.lines[number] = ("out", self.LOW if initial in (None, self.LOW) else self.HIGH)
            self.outputs.append((number, self.lines[number][1]))
        else:
            self.lines[number] = ("in", pull_up_down)

    def output(self, number, level):
        assert self.lines[number][0] == "out", "GPIO%d is not an output" % number
        self.lines[number] = ("out", level)
        self.outputs.append((number, level))

    def input(self, number):
        net = self._net(number)
        driven = {self.lines[n][1] for n in net if self.lines.get(n, ("in",))[0] == "out"}
        if len(driven) > 1:
            self.shorts += 1
        if self.LOW in driven:
            return self.LOW
        if driven:
            return self.HIGH
        pulls = {self.lines[n][1] for n in net if n in self.lines}
        return self.HIGH if self.PUD_UP in pulls else self.LOW

    def cleanup(self, channels=None):
        self.cleaned = channels
        for n in channels or list(self.lines):
            self.lines.pop(n, None)

    # -- the simulated keypad --
    def wire(self, layout, row_pins, col_pins):
        for r, row in enumerate(layout):
            for c, label in enumerate(row):
                self.keys[label] = (row_pins[r], col_pins[c])

    def pressed(self):
        if self.timeline:
            now = self.clock.now
            return {label for start, end, label in self.timeline if start <= now < end}
        return self.held

    def _net(self, number):
        """Lines connected to `number` through pressed keys."""
        links = [self.keys[label] for label in self.pressed()]
        net, grew = {number}, True
        while grew:
            grew = False
            for a, b in links:
                if (a in net) != (b in net):
                    net |= {a, b}
                    grew = True
        return net


class StepClock:
    """A millisecond clock that moves `step` ms each time the keypad reads it (once per scan)."""

    def __init__(self, step=10):
        self.now = 0
        self.step = step

    def __call__(self):
        self.now += self.step
        return self.now



class FakeBus:
    """An smbus-like bus that keeps every block write."""

    def __init__(self, fail=None):
        self.writes = []
        self.fail = fail

    def write_i2c_block_data(self, addr, reg, data):
        if self.fail:
            raise OSError(self.fail, "remote I/O error")
        assert addr == 0x3C and len(data) <= 32
        self.writes.append((reg, bytes(data)))

    def stream(self):
        """[(CMD|DATA, bytes)] with consecutive writes of one kind joined."""
        out = []
        for reg, data in self.writes:
            if out and out[-1][0] == reg:
                out[-1] = (reg, out[-1][1] + data)
            else:
                out.append((reg, data))
        return out



class FakeDevice:
    def __init__(self, name="USB Swipe Reader", path="/dev/input/event3", batches=(), fail=None):
        self.name, self.path = name, path
        self.batches = list(batches)  # lists of (code, value); a pause between batches
        self.fail = fail
        self.grabbed = self.closed = False

    def capabilities(self):
        return {0: [0], 1: [2, 3, 28, 42]}

    def grab(self):
        if self.grabbed:
            raise OSError(errno.EBUSY, "Device or resource busy")
        self.grabbed = True

    def ungrab(self):
        self.grabbed = False

    def close(self):
        self.closed = True

    async def async_read_loop(self):
        for batch in self.batches:
            for code, value in batch:
                yield types.SimpleNamespace(type=1, code=code, value=value)
                yield types.SimpleNamespace(type=0, code=0, value=0)  # EV_SYN
            await asyncio.sleep(0.01)
        if self.fail:
            raise OSError(errno.ENODEV, "No such device")
        await asyncio.sleep(3600)
