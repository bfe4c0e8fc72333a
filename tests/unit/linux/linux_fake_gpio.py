"""A stand-in for the RPi.GPIO module: BCM lines with modes, pulls and levels, plus a
key matrix wired between them. A line reads low when a pressed key (or a chain of
them) connects it to a line driven low; conflicts (high tied to low) count as shorts."""

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
