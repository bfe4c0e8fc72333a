"""Events: everything that happens to the terminal, as data.

The runtime stamps each event with `time` (epoch seconds) and `date` ('YYYYMMDD',
terminal local time) so that the core never reads a clock.
"""

from kapos.core import keys

# Event kinds (what the runtime posts).
KEY = "key"  # key=<logical key>
SWIPE = "swipe"  # raw=<track text>
TAP = "tap"  # tap=<hal.Tap>
PIN_SEALED = "pin_sealed"  # block=<bytes>, ksn=<bytes or None>
PIN_FAILED = "pin_failed"  # reason=<str>
HOST_REPLY = "host_reply"  # ref=<int>, reply=<dict>
HOST_ERROR = "host_error"  # ref=<int>, reason=<str>
TIMEOUT = "timeout"  # timer=<name>
PRINTED = "printed"
PRINT_FAILED = "print_failed"  # reason=<str>
HARDWARE_ERROR = "hardware_error"  # device=<name>, reason=<str>
TAMPER = "tamper"  # source=<str>: the tamper switch opened (or keys found zeroized)
KEYS_LOADED = "keys_loaded"  # the terminal was re-keyed: a tamper lock may be cleared
DIAG_RESULT = "diag_result"  # function=<name>, title=<str>, lines=<list of str>, ok=<bool>
# Contact chip (a card in the chip reader's slot; app/chip.py runs the EMV kernel off the loop)
INSERT = "insert"  # a card went into the slot
REMOVE = "remove"  # the card left the slot
CHIP_CHOICE = "chip_choice"  # ref=<int>, names=<list of str>: the cardholder must pick an application
CHIP_READ = "chip_read"  # ref=<int>, result=<kernel Result> | error=<CardReadError / CardRejected>
CHIP_DONE = "chip_done"  # ref=<int>, cid=<int> (0x40 TC, 0x00 AAC) | error=<CardReadError>

# Table event kinds: key events are split so the table reads naturally.
DIGIT = "digit"
ENTER = "enter"
CLEAR = "clear"
CANCEL = "cancel"
MENU = "menu"

TABLE_KINDS = (
    DIGIT, ENTER, CLEAR, CANCEL, MENU,
    SWIPE, TAP, PIN_SEALED, PIN_FAILED, HOST_REPLY, HOST_ERROR,
    TIMEOUT, PRINTED, PRINT_FAILED, HARDWARE_ERROR, DIAG_RESULT, TAMPER, KEYS_LOADED,
    INSERT, REMOVE, CHIP_CHOICE, CHIP_READ, CHIP_DONE,
)

_KEY_KINDS = {keys.ENTER: ENTER, keys.CLEAR: CLEAR, keys.CANCEL: CANCEL, keys.MENU: MENU}


class Event:
    def __init__(self, kind, time=0.0, date="19700101", mono=None, **data):
        self.kind = kind
        self.time = time
        self.date = date
        # seconds of a clock that never jumps (the runtime's monotonic clock), or None:
        # what the technician PIN lock counts down by, where a wall clock set right by
        # network time after a boot would end it early
        self.mono = mono
        self.data = data

    def get(self, name, default=None):
        return self.data.get(name, default)

    def table_kind(self):
        """The column of the transition table this event falls in."""
        if self.kind != KEY:
            return self.kind
        key = self.data.get("key")
        if key is not None and len(key) == 1 and key in keys.DIGITS:
            return DIGIT
        return _KEY_KINDS.get(key)

    def __repr__(self):
        # Data values may be sensitive (track text); show only their names.
        if self.kind == KEY:
            return "Event(key)"  # a key may be a PIN digit
        return "Event(%s %s)" % (self.kind, ",".join(sorted(self.data)))


def key(name, **stamp):
    return Event(KEY, key=name, **stamp)
