"""Key matrix scanning (membrane keypads 3x4 / 4x4) over injected Pin objects.

Portable (MicroPython subset, no OS knowledge). The port hands in already configured
lines: `drive` pins that this module pulls active with value(0) and releases with
value(1) (open-drain style, so two keys pressed in one sense line never short a high
output to a low one), and `sense` pins read with pull-ups (0 = a key connects it to the
active drive line). Rows may be driven and columns sensed, or the reverse.

`scan(now_ms)` reads the matrix once and returns the labels of keys that just became
pressed:
- debounce: a change counts only after the raw reading stayed the same `debounce_ms`;
- one event per press: a held key is reported once (no auto-repeat);
- ghosting guard: without diodes, three keys on the corners of a rectangle make the
  fourth read as pressed, so a reading where a key shares its row with one pressed key
  and its column with another is ambiguous and ignored.
"""

from kapos.compat import ticks_diff, ticks_ms
from kapos.errors import ConfigError


class KeypadMatrix:
    def __init__(self, rows, cols, layout, keymap=None, debounce_ms=30, drive="rows"):
        if drive not in ("rows", "cols"):
            raise ConfigError("[keypad] drive must be 'rows' or 'cols', got %r" % (drive,))
        if len(layout) != len(rows) or not rows or not cols:
            raise ConfigError("[keypad] layout has %d rows but %d row pins are given" % (len(layout), len(rows)))
        for r in range(len(layout)):
            if len(layout[r]) != len(cols):
                raise ConfigError("[keypad] layout row %d has %d keys but %d column pins are given"
                                  % (r + 1, len(layout[r]), len(cols)))
        keymap = keymap or {}
        self.rows = rows
        self.cols = cols
        self.n_cols = len(cols)
        # index r * n_cols + c -> logical key (labels not in keymap stand for themselves)
        self.keys = [keymap.get(label, label) for row in layout for label in row]
        self.debounce_ms = debounce_ms
        self.drive_rows = drive == "rows"
        self._raw = ()  # last reading (sorted key indexes)
        self._raw_since = None
        self._stable = ()  # debounced state
        self._release_all()
        self._set_all(0)  # idle: every drive line active, so one read of the sense lines sees any key

    def _drive_lines(self):
        return self.rows if self.drive_rows else self.cols

    def _sense_lines(self):
        return self.cols if self.drive_rows else self.rows

    def _set_all(self, level):
        for pin in self._drive_lines():
            pin.value(level)

    def _release_all(self):
        self._set_all(1)

    def _any_pressed(self):
        for pin in self._sense_lines():
            if not pin.value():
                return True
        return False

    def read(self):
        """The raw reading: a sorted tuple of pressed key indexes (r * n_cols + c)."""
        if not self._any_pressed():
            return ()
        pressed = []
        drive, sense = self._drive_lines(), self._sense_lines()
        self._release_all()
        for d in range(len(drive)):
            drive[d].value(0)
            for s in range(len(sense)):
                if not sense[s].value():
                    r, c = (d, s) if self.drive_rows else (s, d)
                    pressed.append(r * self.n_cols + c)
            drive[d].value(1)
        self._set_all(0)
        pressed.sort()
        return tuple(pressed)

    def is_ambiguous(self, pressed):
        """True when a pressed key has another pressed key in its row and one in its column."""
        n = self.n_cols
        for k in pressed:
            row_mate = col_mate = False
            for j in pressed:
                if j != k:
                    if j // n == k // n:
                        row_mate = True
                    elif j % n == k % n:
                        col_mate = True
            if row_mate and col_mate:
                return True
        return False

    def scan(self, now_ms=None):
        """Read once; return the logical keys newly pressed (usually none or one)."""
        now = ticks_ms() if now_ms is None else now_ms
        pressed = self.read()
        if self.is_ambiguous(pressed):
            return []  # a ghost may be among them: wait until the pattern resolves
        if pressed != self._raw or self._raw_since is None:
            self._raw = pressed
            self._raw_since = now
            return []
        if pressed == self._stable or ticks_diff(now, self._raw_since) < self.debounce_ms:
            return []
        new = [self.keys[k] for k in pressed if k not in self._stable]
        self._stable = pressed
        return new

    def release(self):
        """Leave every drive line released (before the port frees the pins)."""
        self._release_all()
