"""Anomaly rules: repeated failed card reads, repeated PIN cancels, rapid repeated
transactions, repeated wrong merchant PINs (guessing across transactions). Pure: times
come from the events; an alarm is a notice on screen plus an ALERT command that the
runtime forwards to the host. (A technician PIN lock raises its own: core/tech_lock.py.)"""

from kapos.core import commands as C

# rule -> (count, window seconds, message); settings.monitor overrides count/window.
RULES = {
    "read_error": (3, 60, "Repeated card read failures"),
    "pin_cancel": (3, 300, "Repeated PIN cancels"),
    "rapid_txn": (4, 60, "Rapid repeated transactions"),
    "merchant_pin": (6, 600, "Repeated wrong merchant PINs"),
}


def observe(ctx, rule, now):
    """Note one occurrence; return the alarm commands when the rule fires (then it re-arms)."""
    count, window, message = RULES[rule]
    override = ctx.settings.monitor.get(rule)
    if override:
        count, window = override.get("count", count), override.get("window", window)
    times = [t for t in ctx.monitor_times.get(rule, []) if now - t < window] + [now]
    if len(times) < count:
        ctx.monitor_times[rule] = times
        return []
    ctx.monitor_times[rule] = []
    ctx.alarms += 1
    ctx.notice = ("alarm", "ALARM: %s" % message)
    return [C.Command(C.ALERT, rule=rule, detail="%d in %d s" % (count, window), time=now),
            C.beep("alarm")]
