"""The technician menu: PIN, pages, functions run by the runtime, keypad and card tests."""

from coredriver import VISA, Driver, ev
from kapos.core import commands as C
from kapos.core import events as E
from kapos.core import states as S
from kapos.core.settings import Settings


def menu(settings=None):
    return Driver(settings).keys("MENU", "0000", "ENTER")


def test_wrong_pin_goes_back_to_idle_and_counts():
    d = Driver().keys("MENU", "1234", "ENTER")
    assert d.state == S.IDLE and d.ctx.notice == ("error", "Wrong technician PIN")
    assert d.ctx.counters["tech_pin_failures"] == 1
    assert d.ctx.tech_pin is None


def test_pin_of_other_length_is_wrong_and_digits_never_shown():
    d = Driver(Settings(tech_pin="24680")).keys("MENU", "2468", "ENTER")
    assert d.state == S.IDLE
    d = Driver(Settings(tech_pin="24680")).keys("MENU", "24680")
    assert d.shown()["data"] == {"entered": 5}
    d.keys("ENTER")
    assert d.state == S.TECH_MENU
    assert "24680" not in repr([c.data for c in d.all_commands])


def test_menu_pages_and_exit():
    d = menu()
    assert d.state == S.TECH_MENU and d.shown()["data"]["page"] == 1
    d.keys("MENU")
    assert d.shown()["data"]["page"] == 2
    d.keys("MENU")
    assert d.shown()["data"]["page"] == 1
    d.keys("CANCEL")
    assert d.state == S.IDLE


def test_selftest_runs_in_the_runtime_and_result_scrolls():
    d = menu().keys("1")
    assert d.state == S.TECH_WAIT
    assert d.find(C.DIAG)[0]["function"] == "selftest"
    d.send(ev(E.DIAG_RESULT, function="other", title="X", lines=[]))
    assert d.state == S.TECH_WAIT, "an answer to another function is not ours"
    lines = ["line %d" % i for i in range(7)]
    d.send(ev(E.DIAG_RESULT, function="selftest", title="SELF-TEST OK", lines=lines))
    assert d.state == S.TECH_INFO and d.shown()["data"]["first"] == 0
    d.keys("ENTER")
    assert d.shown()["data"]["first"] == 3
    d.keys("ENTER")
    assert d.shown()["data"]["first"] == 6
    d.keys("ENTER")
    assert d.state == S.TECH_MENU


def test_function_that_never_answers_times_out():
    d = menu().keys("6")
    d.send(ev(E.TIMEOUT, timer="host"))
    assert d.state == S.TECH_INFO and d.shown()["data"]["title"] == "TIMED OUT"


def test_second_page_functions():
    d = menu().keys("MENU", "5")
    assert d.find(C.DIAG)[0]["function"] == "settlement"
    d = menu().keys("MENU", "3")
    assert d.state == S.TECH_WAIT and d.find(C.DIAG)[0]["function"] == "counters"


def test_boot_self_test_faults_show_on_idle():
    d = Driver()
    d.send(ev(E.DIAG_RESULT, function="boot", title="SELF-TEST", lines=["printer: paper-out"]))
    assert d.state == S.IDLE and d.ctx.notice == ("error", "Self-test: printer: paper-out")
    d.send(ev(E.DIAG_RESULT, function="selftest", title="X", lines=["y"]))
    assert d.ctx.notice == ("error", "Self-test: printer: paper-out"), "only the boot result counts"


def test_keypad_test_echoes_every_key_and_cancel_twice_leaves():
    d = menu().keys("2")
    assert d.state == S.KEY_TEST
    for k in ("7", "ENTER", "CLEAR", "MENU", "CANCEL"):
        d.keys(k)
        assert d.state == S.KEY_TEST and d.shown()["data"]["key"] == k
    d.keys("CANCEL")
    assert d.state == S.TECH_MENU


def test_card_read_test_shows_masked_status():
    d = menu().keys("5").swipe(VISA)
    lines = d.shown()["data"]["lines"]
    assert d.state == S.CARD_TEST and "**** 1111" in lines[0] and "exp 3012 sc 101" in lines[1]
    assert "4111111111111111" not in repr(lines)
    d.swipe("%B1234^X^?")
    assert d.shown()["data"]["lines"][0] == "SWIPE ERROR"
    d.tap()
    assert "TOKEN" in d.shown()["data"]["lines"][0]
    d.keys("CANCEL")
    assert d.state == S.TECH_MENU


def test_display_test_pattern():
    d = menu().keys("3")
    assert d.state == S.TECH_INFO and d.shown()["screen"] == "test_pattern"
    d.keys("CANCEL")
    assert d.state == S.TECH_MENU


# ---------------------------------------------------------------- guessing the PIN

from coredriver import DATE  # noqa: E402
from kapos.core import tech, tech_lock  # noqa: E402


def _at(d, when, *names):
    """Keys pressed at time `when` (epoch seconds)."""
    for name in names:
        for k in (list(name) if name.isdigit() else [name]):
            d.send(E.Event(E.KEY, time=when, date=DATE, key=k))
    return d


def _guess(d, when, pin="1234"):
    return _at(d, when, "MENU", pin, "ENTER")


def test_three_wrong_pins_lock_the_menu_then_it_opens_again():
    d = Driver()
    for i in range(tech_lock.TRIES):
        _guess(d, 1000 + i)
    assert d.state == S.IDLE
    assert d.ctx.counters["tech_pin_failures"] == tech_lock.TRIES
    # locked: not even the right PIN can be typed
    _at(d, 1010, "MENU")
    assert d.state == S.IDLE and d.ctx.notice == ("error", "Technician menu locked: 1 min")
    _at(d, 1010, "0000", "ENTER")
    assert d.state == S.IDLE and d.ctx.counters["tech_pin_failures"] == tech_lock.TRIES
    # once the lock has run out, the right PIN opens the menu
    _at(d, 1002 + tech_lock.LOCK_FIRST, "MENU", "0000", "ENTER")
    assert d.state == S.TECH_MENU


def test_each_further_lock_lasts_twice_as_long_up_to_the_cap():
    d = Driver()
    now, lengths = 1000.0, []
    for _ in range(9):
        for _ in range(tech_lock.TRIES):
            _guess(d, now)
        start, seconds = tech_lock.lock_of(d.ctx)
        lengths.append(seconds)
        _at(d, now + seconds - 1, "MENU")
        assert d.ctx.notice[1].startswith("Technician menu locked"), "still locked 1 s before"
        now += seconds
    assert lengths == [min(tech_lock.LOCK_FIRST * 2 ** i, tech_lock.LOCK_MAX) for i in range(9)]
    assert lengths[-1] == tech_lock.LOCK_MAX


def test_the_right_pin_ends_the_series():
    d = Driver()
    _guess(d, 1000)
    _guess(d, 1001)
    _at(d, 1002, "MENU", "0000", "ENTER", "CANCEL")
    assert d.state == S.IDLE and tech_lock.lock_of(d.ctx) is None
    _guess(d, 1003)
    _guess(d, 1004)
    _at(d, 1005, "MENU")
    assert d.state == S.TECH_PIN, "two wrong PINs after a right one do not lock"
    # and after a lock, the right PIN starts the doubling from the first length again
    _at(d, 1005, "1234", "ENTER")
    assert tech_lock.lock_of(d.ctx) == (1005, tech_lock.LOCK_FIRST)
    _at(d, 1005 + tech_lock.LOCK_FIRST, "MENU", "0000", "ENTER", "CANCEL")
    for i in range(tech_lock.TRIES):
        _guess(d, 2000 + i)
    assert tech_lock.lock_of(d.ctx)[1] == tech_lock.LOCK_FIRST


def test_a_clock_set_back_does_not_lengthen_or_lift_the_lock():
    d = Driver()
    for i in range(tech_lock.TRIES):
        _guess(d, 5000)
    _at(d, 100, "MENU")  # the clock went back by more than the lock
    assert d.ctx.notice == ("error", "Technician menu locked: 1 min")
    _at(d, 100 + tech_lock.LOCK_FIRST - 1, "MENU")
    assert d.state == S.IDLE, "still locked"
    _at(d, 100 + tech_lock.LOCK_FIRST, "MENU")
    assert d.state == S.TECH_PIN, "locked no longer than its length from the set-back time"


def test_repeated_wrong_pins_raise_an_alarm_to_the_host():
    d = Driver()
    alerts = []
    for i in range(3):
        _guess(d, 1000 + i)
        alerts += [c for c in d.commands if c.kind == C.ALERT]
    assert [a.data["rule"] for a in alerts] == ["tech_pin"]
    assert alerts[0].data["detail"] == "3 wrong technician PINs: locked %d s" % tech_lock.LOCK_FIRST
    # the screen says what happened at the keypad; the alarm sounds and goes to the host
    assert d.ctx.notice == ("error", "Wrong technician PIN 3 times: locked 1 min")
    assert any(c.kind == C.BEEP and c.data.get("tone") == "alarm" for c in d.commands)
    assert "1234" not in repr([c.data for c in d.all_commands])


def test_a_kept_lock_state_comes_back_and_a_bad_one_is_refused_unchanged():
    d = Driver()
    for i in range(tech_lock.TRIES):
        _guess(d, 1000 + i)
    kept = tech_lock.lock_state(d.ctx, 1012)
    assert kept == (0, 1, tech_lock.LOCK_FIRST - 10)
    fresh = Driver()
    tech_lock.restore_lock(fresh.ctx, *kept, now=5000)  # counted from the restore, not the wall
    _at(fresh, 5000 + tech_lock.LOCK_FIRST - 11, "MENU")
    assert fresh.ctx.notice == ("error", "Technician menu locked: 1 min")
    _at(fresh, 5000 + tech_lock.LOCK_FIRST - 10, "MENU")
    assert fresh.state == S.TECH_PIN
    nan = float("nan")
    for bad in ((tech_lock.TRIES, 0, None), (-1, 0, None), (0, "1", None), (True, 0, None),
                (0, 0, tech_lock.LOCK_MAX + 1), (0, 0, 0), (0, 0, "60"), (0, 0, 60.5), (0, 0, nan),
                (0, 0, float("inf")), (0, 65, None)):
        other = Driver()
        before = tech_lock.lock_state(other.ctx, 0)
        try:
            tech_lock.restore_lock(other.ctx, *bad, now=0)
        except ValueError:
            pass
        else:
            raise AssertionError("%r was taken" % (bad,))
        assert tech_lock.lock_state(other.ctx, 0) == before


def _mono(d, wall, mono, *names):
    """Keys pressed with both stamps: the wall clock and the runtime's monotonic clock."""
    for name in names:
        for k in (list(name) if name.isdigit() else [name]):
            d.send(E.Event(E.KEY, time=wall, date=DATE, mono=mono, key=k))
    return d


def test_the_lock_counts_by_the_monotonic_clock_not_a_wall_clock_set_right_later():
    # a Pi boots with its clock behind; network time then moves it on by hours
    d = Driver()
    for i in range(tech_lock.TRIES):
        _mono(d, 1000.0, 50.0 + i, "MENU", "1234", "ENTER")
    _mono(d, 1000.0 + 7200, 60.0, "MENU")
    assert d.ctx.notice == ("error", "Technician menu locked: 1 min"), "the wall jump ends nothing"
    _mono(d, 1000.0 + 7200, 52.0 + tech_lock.LOCK_FIRST, "MENU")
    assert d.state == S.TECH_PIN


def test_an_entry_too_short_for_a_pin_is_neither_checked_nor_counted():
    d = _at(Driver(), 1000, "MENU")
    for _ in range(2 * tech_lock.TRIES):
        _at(d, 1000, "ENTER", "123", "ENTER", "CLEAR")
    assert d.state == S.TECH_PIN and d.ctx.counters["tech_pin_failures"] == 0
    assert tech_lock.lock_of(d.ctx) is None
    _at(d, 1000, "CLEAR", "0000", "ENTER")
    assert d.state == S.TECH_MENU


def test_digits_left_by_a_timeout_are_wiped():
    d = Driver()
    _at(d, 1000, "MENU", "43")
    buffer = d.ctx.tech_pin
    d.send(ev(E.TIMEOUT, timer="input"))
    assert d.state == S.IDLE and bytes(buffer) == bytes(len(buffer))


def test_a_lock_after_guesses_spread_over_restarts_still_alerts_the_host():
    d = Driver()
    tech_lock.restore_lock(d.ctx, tech_lock.TRIES - 1, 0, None, now=1000)  # two kept from before
    _guess(d, 1000)
    assert [c.data["rule"] for c in d.commands if c.kind == C.ALERT] == ["tech_pin"]
    assert tech_lock.lock_of(d.ctx) == (1000, tech_lock.LOCK_FIRST)
