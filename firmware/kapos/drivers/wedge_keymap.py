"""Keyboard-wedge magstripe readers: Linux input key codes -> track text.

Portable (MicroPython subset). A USB reader types the tracks as a US keyboard would:
digits, ';' '=' unshifted; '%' (shift+5), '^' (shift+6), '?' (shift+/) and capital
letters with shift; ENTER ends the swipe. Codes are the kernel's EV_KEY numbers
(linux/input-event-codes.h). Letters are always upper case: track 1 has no lower case,
and some readers leave caps lock on.
"""

from kapos.compat import const

KEY_ENTER = const(28)
KEY_KPENTER = const(96)
KEY_LEFTSHIFT = const(42)
KEY_RIGHTSHIFT = const(54)
MAX_CHARS = const(512)  # a stuck key or a real keyboard must not grow the buffer forever

# code: (unshifted, shifted)
US = {
    2: "1!", 3: "2@", 4: "3#", 5: "4$", 6: "5%", 7: "6^", 8: "7&", 9: "8*", 10: "9(", 11: "0)",
    12: "-_", 13: "=+", 26: "[{", 27: "]}", 39: ";:", 40: "'\"", 41: "`~", 43: "\\|",
    51: ",<", 52: ".>", 53: "/?", 57: "  ",
    # keypad (readers set to keypad digits)
    55: "**", 71: "77", 72: "88", 73: "99", 74: "--", 75: "44", 76: "55", 77: "66",
    78: "++", 79: "11", 80: "22", 81: "33", 82: "00", 83: "..", 98: "//",
}
_LETTER_ROWS = ((16, "QWERTYUIOP"), (30, "ASDFGHJKL"), (44, "ZXCVBNM"))
for _first, _row in _LETTER_ROWS:
    for _i in range(len(_row)):
        US[_first + _i] = _row[_i] + _row[_i]

KEY_UP, KEY_DOWN, KEY_HOLD = 0, 1, 2


class WedgeDecoder:
    """feed(code, value, now_ms) for each EV_KEY event (value 1 down, 0 up, 2 auto-repeat);
    returns the swipe text when ENTER goes down, else None. Unknown keys are skipped.
    A reader types a swipe in a burst (a few ms a character): characters left over after
    `char_timeout_ms` of silence (a swipe cut short, a stray key) are dropped, so they are
    never glued to the front of the next swipe."""

    def __init__(self, keymap=None, char_timeout_ms=500):
        self.keymap = keymap or US
        self.char_timeout_ms = char_timeout_ms
        self.shift = 0  # bit 0: left shift down, bit 1: right shift down
        self.chars = []
        self.dropped = 0  # characters skipped (unknown codes, overflow)
        self.partials_dropped = 0  # unfinished swipes thrown away after a silence
        self._last_ms = None

    def feed(self, code, value, now_ms=None):
        if now_ms is not None:
            if self.chars and self._last_ms is not None and now_ms - self._last_ms > self.char_timeout_ms:
                self.partials_dropped += 1
                self.chars = []
                self.shift = 0
            self._last_ms = now_ms
        if code == KEY_LEFTSHIFT or code == KEY_RIGHTSHIFT:
            bit = 1 if code == KEY_LEFTSHIFT else 2
            self.shift = (self.shift | bit) if value else (self.shift & ~bit)
            return None
        if value != KEY_DOWN:
            return None  # key up; auto-repeat never happens within a swipe
        if code == KEY_ENTER or code == KEY_KPENTER:
            text = "".join(self.chars)
            self.chars = []
            return text
        pair = self.keymap.get(code)
        if pair is None or len(self.chars) >= MAX_CHARS:
            self.dropped += 1
            return None
        self.chars.append(pair[1] if self.shift else pair[0])
        return None

    def reset(self):
        self.shift = 0
        self.chars = []
