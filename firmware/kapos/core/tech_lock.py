"""The technician PIN lock: three wrong PINs in a row lock the technician menu.

The first lock lasts LOCK_FIRST seconds, each further one twice the last, at most
LOCK_MAX; a right PIN ends the series. Against guessing at the keypad (10^4 four-digit
PINs: months at these rates), and every lock raises an alarm at the host. Time is the
events' monotonic stamp where the runtime gives one (a Pi's wall clock jumps when network
time comes after a boot), else their wall time. The state lives in `ctx.tech_guard`
([wrong PINs in a row, locks in the series, (start, seconds) or None]; None: nothing to
remember), and the runtime keeps it across restarts (lock_state / restore_lock,
app/techlock.py). Imported by core/tech.py only once a PIN was wrong: a terminal that
never sees one (the Pico W's sale and settlement) does not carry this module.
"""

from kapos.core import commands as C
from kapos.core.handlers import _with_alarm, go_idle

TRIES = 3
LOCK_FIRST = 60
LOCK_MAX = 3600


def _clock(event):
    return event.mono if event.mono is not None else event.time


def lock_of(ctx):
    """The lock in force as (start, seconds), or None."""
    return ctx.tech_guard[2] if ctx.tech_guard is not None else None


def locked_for(ctx, now):
    """Seconds the technician menu stays locked at `now` (0: open)."""
    guard = ctx.tech_guard
    if guard is None or guard[2] is None:
        return 0
    start, seconds = guard[2]
    if now < start:  # the clock went back (a wall clock): the lock counts from now
        guard[2] = (now, seconds)
        start = now
    left = start + seconds - now
    if left <= 0:
        guard[2] = None
        return 0
    return left


def _minutes(seconds):
    return "%d min" % int((seconds + 59) // 60)


def refusal(ctx, event):
    """(state, commands) refusing the menu while it is locked, or None."""
    left = locked_for(ctx, _clock(event))
    if not left:
        return None
    return go_idle(ctx, notice=("error", "Technician menu locked: %s" % _minutes(left)))


def wrong_pin(ctx, event):
    """(state, commands) after a wrong technician PIN: back to idle, locked after TRIES."""
    if ctx.tech_guard is None:
        ctx.tech_guard = [0, 0, None]
    guard = ctx.tech_guard
    guard[0] += 1
    notice = ("error", "Wrong technician PIN")
    alarm = []
    if guard[0] >= TRIES:
        seconds = min(LOCK_FIRST << min(guard[1], 16), LOCK_MAX)
        guard[:] = [0, guard[1] + 1, (_clock(event), seconds)]
        notice = ("error", "Wrong technician PIN %d times: locked %s" % (TRIES, _minutes(seconds)))
        # every lock reaches the host, also when the guesses were spread over restarts
        ctx.alarms += 1
        alarm = [C.Command(C.ALERT, rule="tech_pin", time=event.time,
                           detail="%d wrong technician PINs: locked %d s" % (TRIES, seconds)),
                 C.beep("alarm")]
    state, cmds = go_idle(ctx, notice=notice)
    return state, _with_alarm(ctx, cmds, alarm)


def lock_state(ctx, now):
    """What a restart must not forget: (wrong PINs in a row, locks in the series, seconds
    the lock has left at `now` or None)."""
    left = locked_for(ctx, now)
    guard = ctx.tech_guard or (0, 0, None)
    return guard[0], guard[1], (min(int(left) + (left > int(left)), LOCK_MAX) if left else None)


def restore_lock(ctx, wrong, locks, left, now):
    """lock_state() as kept, the lock's time left counted from `now`; ValueError when it
    is not one (nothing is changed then)."""
    if type(wrong) is not int or type(locks) is not int or not 0 <= wrong < TRIES \
            or not 0 <= locks <= 64:
        raise ValueError("not a technician PIN lock state")
    if left is not None and (type(left) is not int or not 0 < left <= LOCK_MAX):
        raise ValueError("not a technician PIN lock state")
    lock = None if left is None else (now, left)
    ctx.tech_guard = None if (wrong, locks, lock) == (0, 0, None) else [wrong, locks, lock]
