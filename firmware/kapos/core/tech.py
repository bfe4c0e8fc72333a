"""Technician functions behind the technician PIN: a menu of data rows, and the handlers
of the TECH_* / KEY_TEST / CARD_TEST states (their cells are in table.py)."""

from kapos.compat import wipe
from kapos.core import commands as C
from kapos.core import states as S
from kapos.core.handlers import _timer, card_from_swipe, card_from_tap, go_idle, idle_screen, refuse
from kapos.errors import CardReadError, CardRejected

# (key, label, what it does): 'diag' asks the runtime, 'state' enters a test state,
# 'local' is answered by the core itself. Two pages; MENU flips between them.
PAGES = (
    (("1", "Self-test", "diag", "selftest"), ("2", "Keypad", "state", S.KEY_TEST),
     ("3", "Display", "local", "display_test"), ("4", "Printer", "diag", "printer_test"),
     ("5", "Card read", "state", S.CARD_TEST), ("6", "Host echo", "diag", "host_echo")),
    (("1", "Network", "diag", "network"), ("2", "Journal", "diag", "journal"),
     ("3", "Counters", "diag", "counters"), ("4", "Reprint", "diag", "reprint"),
     ("5", "Settlement", "diag", "settlement")),
)
TECH_PIN_MAX = 8
TECH_PIN_MIN = 4  # shorter entries (an ENTER on nothing) are neither checked nor counted
# wrong PINs lock the menu: core/tech_lock.py, imported once a PIN was wrong


def _menu_screen(ctx):
    page = PAGES[ctx.tech_page]
    return C.show("tech_menu", items=[(k, label) for k, label, _, _ in page], page=ctx.tech_page + 1,
                  pages=len(PAGES))


def _back_to_menu(ctx):
    return S.TECH_MENU, [_menu_screen(ctx), _timer(ctx, "input")]


# ---------------------------------------------------------------- technician PIN

def menu_requested(ctx, event):
    if ctx.tech_guard is not None:
        from kapos.core import tech_lock
        refused = tech_lock.refusal(ctx, event)
        if refused is not None:
            return refused
    ctx.notice = None
    _wipe_tech_pin(ctx)  # digits left by a timeout or an error
    ctx.tech_pin = bytearray(TECH_PIN_MAX)
    ctx.tech_pin_len = 0
    return S.TECH_PIN, [C.stop_timer("notice"), C.show("tech_pin", entered=0), _timer(ctx, "input")]


def tech_pin_digit(ctx, event):
    if ctx.tech_pin_len >= TECH_PIN_MAX:
        return refuse(ctx, event)
    ctx.tech_pin[ctx.tech_pin_len] = ord(event.get("key"))
    ctx.tech_pin_len += 1
    return S.TECH_PIN, [C.beep("key"), C.show("tech_pin", entered=ctx.tech_pin_len), _timer(ctx, "input")]


def tech_pin_clear(ctx, event):
    wipe(ctx.tech_pin)
    ctx.tech_pin_len = 0
    return S.TECH_PIN, [C.beep("key"), C.show("tech_pin", entered=0), _timer(ctx, "input")]


def _wipe_tech_pin(ctx):
    if ctx.tech_pin is not None:
        wipe(ctx.tech_pin)
    ctx.tech_pin = None
    ctx.tech_pin_len = 0


def _tech_pin_matches(ctx):
    check = ctx.settings.tech_pin_check
    if check is not None:  # a salted hash (host parameter set): compared in constant time there
        return check.verify(ctx.tech_pin, ctx.tech_pin_len)
    expected = ctx.settings.tech_pin  # the sim board's plain default
    entered = ctx.tech_pin
    same = ctx.tech_pin_len == len(expected)
    for i in range(min(ctx.tech_pin_len, len(expected))):  # no early exit: no timing hint
        same = same and entered[i] == ord(expected[i])
    return same


def tech_pin_enter(ctx, event):
    if ctx.tech_pin_len < TECH_PIN_MIN:  # not a PIN at all: neither checked nor counted
        return S.TECH_PIN, [C.beep("error"), C.show("tech_pin", entered=ctx.tech_pin_len),
                            _timer(ctx, "input")]
    same = _tech_pin_matches(ctx)
    _wipe_tech_pin(ctx)
    if not same:
        ctx.counters["tech_pin_failures"] += 1
        from kapos.core import tech_lock
        return tech_lock.wrong_pin(ctx, event)
    ctx.tech_guard = None  # a right PIN ends the series
    ctx.tech_page = 0
    return S.TECH_MENU, [C.beep("ok"), _menu_screen(ctx), _timer(ctx, "input")]


def tech_leave(ctx, event):
    _wipe_tech_pin(ctx)
    return go_idle(ctx)


# ---------------------------------------------------------------- menu

def menu_select(ctx, event):
    for key, label, kind, what in PAGES[ctx.tech_page]:
        if key != event.get("key"):
            continue
        if kind == "diag":
            ctx.tech_function = what
            return S.TECH_WAIT, [C.Command(C.DIAG, function=what), C.show("tech_wait", label=label),
                                 C.stop_timer("input"), _timer(ctx, "host")]
        if kind == "state" and what == S.KEY_TEST:
            ctx.key_test_last = None
            ctx.key_test_count = 0
            return S.KEY_TEST, [C.show("key_test", key=None, count=0), _timer(ctx, "input")]
        if kind == "state" and what == S.CARD_TEST:
            return S.CARD_TEST, [C.show("card_test", lines=["Swipe or tap a card"]), _timer(ctx, "card")]
        if what == "display_test":
            return S.TECH_INFO, [C.show("test_pattern"), _timer(ctx, "input")]
    return refuse(ctx, event)


def menu_next_page(ctx, event):
    ctx.tech_page = (ctx.tech_page + 1) % len(PAGES)
    return _back_to_menu(ctx)


# ---------------------------------------------------------------- results

def _info(ctx, title, lines, first=0):
    ctx.tech_info = (title, list(lines))
    ctx.tech_info_at = first
    return S.TECH_INFO, [C.show("tech_info", title=title, lines=list(lines), first=first), _timer(ctx, "input")]


def diag_result(ctx, event):
    if event.get("function") != ctx.tech_function:
        return S.TECH_WAIT, []  # an answer to something else
    ctx.tech_function = None
    return _info(ctx, event.get("title", "RESULT"), event.get("lines") or [])


def diag_timeout(ctx, event):
    if event.get("timer") != "host":
        return S.TECH_WAIT, []
    ctx.tech_function = None
    return _info(ctx, "TIMED OUT", ["No answer in time"])


def info_next(ctx, event):
    """ENTER scrolls a long result; past the end it goes back to the menu."""
    info = ctx.tech_info
    if info is None:
        return _back_to_menu(ctx)
    title, lines = info
    nxt = ctx.tech_info_at + 3
    if nxt >= len(lines):
        ctx.tech_info = None
        return _back_to_menu(ctx)
    return _info(ctx, title, lines, first=nxt)


def info_back(ctx, event):
    ctx.tech_info = None
    return _back_to_menu(ctx)


def tech_timeout(ctx, event):
    if event.get("timer") not in ("input", "card"):
        return None, []
    _wipe_tech_pin(ctx)
    return go_idle(ctx)


# ---------------------------------------------------------------- keypad test

def key_test(ctx, event):
    """Echo every key; CANCEL twice in a row leaves (so CANCEL itself can be tested)."""
    key = event.get("key")
    if key == "CANCEL" and ctx.key_test_last == "CANCEL":
        return _back_to_menu(ctx)
    ctx.key_test_last = key
    ctx.key_test_count += 1
    return S.KEY_TEST, [C.beep("key"), C.show("key_test", key=key, count=ctx.key_test_count),
                        _timer(ctx, "input")]


# ---------------------------------------------------------------- card read test

def _card_lines(card):
    lines = ["%s %s" % (card.brand, card.short_masked())]
    if card.expiry:
        lines.append("exp %s sc %s" % (card.expiry, card.service_code.code if card.service_code else "-"))
    lines.append("read OK (%s)" % card.source)
    card.wipe()
    return lines


def _card_test(ctx, event, read, what):
    try:
        lines = _card_lines(read(ctx, event))
    except (CardReadError, CardRejected) as exc:
        ctx.counters["read_errors"] += 1
        lines = ["%s ERROR" % what, str(exc)]
    return S.CARD_TEST, [C.show("card_test", lines=lines), _timer(ctx, "card")]


def card_test_swipe(ctx, event):
    return _card_test(ctx, event, card_from_swipe, "SWIPE")


def card_test_tap(ctx, event):
    return _card_test(ctx, event, card_from_tap, "TAP")


def boot_result(ctx, event):
    """The start-up self-test found faults: say which on the idle screen (the terminal
    still works: e.g. without a printer, transactions complete without a receipt)."""
    if event.get("function") != "boot":
        return S.IDLE, []
    ctx.notice = ("error", "Self-test: " + "; ".join(event.get("lines") or []))
    return S.IDLE, [idle_screen(ctx), _timer(ctx, "notice")]
