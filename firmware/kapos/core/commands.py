"""Commands: every side effect the core asks for, as data. The runtime executes them."""

SHOW = "show"  # screen=<screen id>, data=<dict>
BEEP = "beep"  # tone='key' | 'ok' | 'error'
START_TIMER = "start_timer"  # timer=<name>, seconds=<number>
STOP_TIMER = "stop_timer"  # timer=<name>
SEAL_PIN = "seal_pin"  # pin=<bytearray of ASCII digits, wiped by the executor>, card=<Card>
AUTHORIZE = "authorize"  # request=<dict>, see machine.authorization_request
CANCEL_AUTHORIZATION = "cancel_authorization"  # ref=<int>, reason=<str>
PRINT = "print"  # record=<dict>: a masked transaction record
RECORD = "record"  # record=<dict>: the finished transaction (masked), for the journal / log
ALERT = "alert"  # rule=<name>, detail=<str>, time=<epoch>: an anomaly, sent to the host
ZEROIZE = "zeroize"  # erase every key (tamper)
DIAG = "diag"  # function=<name>: run a technician function; the runtime answers DIAG_RESULT
# Contact chip: executed by app/chip.py's ContactChip (the kernel runs off the loop)
READ_CHIP = "read_chip"  # ref=<int>, type=<txn type>, amount=<minor units>: answers CHIP_CHOICE / CHIP_READ
CHOOSE_APP = "choose_app"  # ref=<int>, index=<int or None (cancelled)>: the cardholder's pick
COMPLETE_CHIP = "complete_chip"  # ref=<int>, code=<field 39>, icc=<reply field 55 or None>: answers CHIP_DONE
END_CHIP = "end_chip"  # ref=<int>: the transaction ended; stop waiting for the cardholder


class Command:
    def __init__(self, kind, **data):
        self.kind = kind
        self.data = data

    def __getitem__(self, name):
        return self.data[name]

    def get(self, name, default=None):
        return self.data.get(name, default)

    def __repr__(self):
        if self.kind == SHOW:
            return "Command(show %s)" % self.data.get("screen")
        if self.kind in (START_TIMER, STOP_TIMER):
            return "Command(%s %s)" % (self.kind, self.data.get("timer"))
        return "Command(%s)" % self.kind

    def __eq__(self, other):
        return isinstance(other, Command) and self.kind == other.kind and self.data == other.data


def show(screen, **data):
    return Command(SHOW, screen=screen, data=data)


def beep(tone):
    return Command(BEEP, tone=tone)


def start_timer(timer, seconds):
    return Command(START_TIMER, timer=timer, seconds=seconds)


def stop_timer(timer):
    return Command(STOP_TIMER, timer=timer)
