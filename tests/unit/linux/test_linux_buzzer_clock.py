"""GpioBuzzer: patterns reach the pin at the right times without blocking the loop;
SystemClock: UTC seconds and an unset-clock warning."""

import asyncio
import time

import pytest

from kapos.errors import ConfigError
from kapos.ports.linux.buzzer import GpioBuzzer
from kapos.ports.linux.clock import SystemClock
from linux_fakes import FakeGPIO


def levels(fake, pin=18):
    return [level for n, level in fake.outputs if n == pin]


def play(buzzer, kind, wait):
    async def go():
        loop = asyncio.get_running_loop()
        start = loop.time()
        buzzer.beep(kind)
        returned_after = loop.time() - start
        await asyncio.sleep(wait)
        return returned_after
    return asyncio.run(go())


def test_error_pattern_is_three_pulses_and_beep_returns_at_once():
    fake = FakeGPIO()
    buzzer = GpioBuzzer(signal_pin=18, gpio_module=fake)
    assert levels(fake) == [0]  # set up silent
    assert play(buzzer, "error", 0.5) < 0.01
    assert levels(fake) == [0, 1, 0, 1, 0, 1, 0]
    assert not buzzer.on


def test_a_new_beep_cuts_the_previous_pattern_short():
    fake = FakeGPIO()
    buzzer = GpioBuzzer(signal_pin=18, gpio_module=fake)

    async def go():
        buzzer.beep("alarm")
        await asyncio.sleep(0.05)
        buzzer.beep("key")
        await asyncio.sleep(0.6)

    asyncio.run(go())
    assert levels(fake) == [0, 1, 1, 0]  # alarm on, key on, key off: the alarm's steps were cancelled


def test_active_low_wiring_inverts_the_line():
    fake = FakeGPIO()
    buzzer = GpioBuzzer(signal_pin=18, active_high=False, gpio_module=fake)
    play(buzzer, "key", 0.1)
    assert levels(fake) == [1, 0, 1]


def test_passive_buzzer_gets_a_square_wave():
    events = []

    class PwmGPIO(FakeGPIO):
        def PWM(self, pin, freq):
            events.append(("pwm", pin, freq))

            class Pwm:
                def start(self, duty):
                    events.append(("start", duty))

                def stop(self):
                    events.append(("stop",))
            return Pwm()

    buzzer = GpioBuzzer(signal_pin=18, buzzer_type="passive", frequency=4000, gpio_module=PwmGPIO())
    play(buzzer, "ok", 0.3)
    assert events == [("pwm", 18, 4000), ("start", 50), ("stop",)]


def test_beep_outside_an_event_loop_does_nothing_and_close_releases():
    fake = FakeGPIO()
    buzzer = GpioBuzzer(signal_pin=18, gpio_module=fake)
    buzzer.beep("ok")
    assert levels(fake) == [0]
    buzzer.close()
    assert fake.cleaned == [18]


@pytest.mark.parametrize("kw, text", [
    (dict(buzzer_type="piezo"), "buzzer_type"),
    (dict(signal_pin=99), "99"),
    (dict(volume=3), "unknown key 'volume'"),
])
def test_bad_buzzer_keys(kw, text):
    args = dict(signal_pin=18, gpio_module=FakeGPIO())
    args.update(kw)
    with pytest.raises(ConfigError, match=text):
        GpioBuzzer(**args)


def test_system_clock():
    clock = SystemClock(driver_name="system")
    assert abs(clock.now() - time.time()) < 1
    assert clock.selftest()[0]
    ok, text = SystemClock(time_source=lambda: 86400.0).selftest()
    assert not ok and "1970-01-02" in text
    with pytest.raises(ConfigError, match="unknown key 'ntp'"):
        SystemClock(ntp=True)
