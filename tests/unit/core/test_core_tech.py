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
