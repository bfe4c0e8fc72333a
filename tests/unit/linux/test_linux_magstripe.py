"""Magstripe readers: keycodes of a keyboard-wedge swipe decode to the exact track text
(the expected text made with kapos.card's track builders), the evdev reader grabs and
finds its device, and the serial reader splits lines on a pyserial loop:// port."""

import asyncio
import types

import pytest
import serial
from hypothesis import given, settings, strategies as st

from kapos.card import build_track1, build_track2, parse_swipe
from kapos.drivers.wedge_keymap import WedgeDecoder
from kapos.errors import ConfigError, HardwareError
from kapos.ports.linux.magstripe import HidWedgeReader, SerialMagstripe
from linux_fakes import FakeDevice

# Written out independently of the module under test: character -> (EV_KEY code, shift).
LSHIFT, RSHIFT, ENTER = 42, 54, 28
PLAIN = {"1": 2, "2": 3, "3": 4, "4": 5, "5": 6, "6": 7, "7": 8, "8": 9, "9": 10, "0": 11,
         "-": 12, "=": 13, "[": 26, "]": 27, ";": 39, "'": 40, "\\": 43, ",": 51, ".": 52,
         "/": 53, " ": 57}
SHIFTED = {"!": 2, "@": 3, "#": 4, "$": 5, "%": 6, "^": 7, "&": 8, "*": 9, "(": 10, ")": 11,
           "_": 12, "+": 13, ":": 39, '"': 40, "<": 51, ">": 52, "?": 53}
SHIFTED.update(zip("QWERTYUIOP", range(16, 26)))
SHIFTED.update(zip("ASDFGHJKL", range(30, 39)))
SHIFTED.update(zip("ZXCVBNM", range(44, 51)))
TRACK1_SET = "".join(chr(c) for c in range(0x20, 0x60))

PAN = "4761739001010010"
TRACK1 = build_track1(PAN, "DOE/JOHN Q", "3012", "201", "0000000123")
TRACK2 = build_track2(PAN, "3012", "201", "0000000123")


def keystrokes(text, shift=LSHIFT, enter=True):
    """(code, value) events as a wedge reader types `text`."""
    events = []
    for ch in text:
        if ch in PLAIN:
            events += [(PLAIN[ch], 1), (PLAIN[ch], 0)]
        else:
            code = SHIFTED[ch]
            events += [(shift, 1), (code, 1), (code, 0), (shift, 0)]
    if enter:
        events += [(ENTER, 1), (ENTER, 0)]
    return events


def decode(events):
    decoder, out = WedgeDecoder(), []
    for code, value in events:
        text = decoder.feed(code, value)
        if text is not None:
            out.append(text)
    return out


def test_track1_and_track2_swipe_decodes_exactly():
    assert set(TRACK1[-1] + TRACK2[-1]) <= set(TRACK1_SET)  # LRCs included
    assert decode(keystrokes(TRACK1 + TRACK2)) == [TRACK1 + TRACK2]
    card = parse_swipe(decode(keystrokes(TRACK1 + TRACK2))[0])
    assert card.name == "DOE/JOHN Q" and card.expiry == "3012"


def test_the_sentinels_and_separators_need_the_right_shift_state():
    # ';' '=' unshifted; '%' '^' '?' shifted: swapping them would garble every track
    assert decode([(39, 1), (13, 1), (LSHIFT, 1), (6, 1), (7, 1), (53, 1), (LSHIFT, 0), (ENTER, 1)]) == [";=%^?"]
    assert decode([(RSHIFT, 1), (6, 1), (RSHIFT, 0), (6, 1), (ENTER, 1)]) == ["%5"]


def test_shift_held_over_several_keys_and_both_shift_keys():
    events = [(LSHIFT, 1), (6, 1), (6, 0), (48, 1), (48, 0), (RSHIFT, 1), (LSHIFT, 0), (7, 1), (RSHIFT, 0),
              (7, 1), (ENTER, 1)]
    assert decode(events) == ["%B^6"]


def test_key_up_repeat_and_unknown_codes_add_nothing():
    decoder = WedgeDecoder()
    for code, value in [(2, 1), (2, 2), (2, 0), (183, 1), (58, 1), (3, 1)]:  # F13, caps lock
        assert decoder.feed(code, value) is None
    assert decoder.feed(ENTER, 1) == "12"
    assert decoder.dropped == 2


def test_letters_are_upper_case_even_without_shift():
    assert decode([(30, 1), (48, 1), (ENTER, 1)]) == ["AB"]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=TRACK1_SET, min_size=1, max_size=79), st.sampled_from([LSHIFT, RSHIFT]))
def test_any_track1_character_round_trips(text, shift):
    assert decode(keystrokes(text, shift)) == [text]


# ---- HidWedgeReader over a fake evdev device ----



def fake_evdev(devices):
    by_path = {d.path: d for d in devices}
    return types.SimpleNamespace(list_devices=lambda: list(by_path),
                                 InputDevice=lambda path: by_path[path])


def swipe(reader):
    async def go():
        try:
            return await asyncio.wait_for(reader.read_swipe(), 5)
        finally:
            reader.close()
    return asyncio.run(go())


def test_wedge_reader_grabs_and_returns_the_swipe():
    dev = FakeDevice(batches=[keystrokes(TRACK1 + TRACK2)])
    reader = HidWedgeReader(input_device=dev)
    assert dev.grabbed
    assert swipe(reader) == TRACK1 + TRACK2
    assert dev.closed and not dev.grabbed


def test_wedge_reader_joins_tracks_sent_with_one_enter_each():
    dev = FakeDevice(batches=[keystrokes(TRACK1), keystrokes(TRACK2)])
    text = swipe(HidWedgeReader(input_device=dev, track_gap=0.5))
    assert text == TRACK1 + "\n" + TRACK2
    assert parse_swipe(text).name == "DOE/JOHN Q"


def test_auto_finds_the_card_reader_among_input_devices():
    keyboard = FakeDevice("AT Translated Set 2 keyboard", "/dev/input/event0")
    reader_dev = FakeDevice("Mag-Tek USB Swipe Reader", "/dev/input/event5")
    reader = HidWedgeReader(device="auto", evdev_module=fake_evdev([keyboard, reader_dev]))
    assert reader_dev.grabbed and keyboard.closed and not keyboard.grabbed
    assert "event5" in reader.selftest()[1]


def test_auto_without_a_reader_names_what_it_saw():
    with pytest.raises(HardwareError, match="'AT Translated Set 2 keyboard'.*by-id"):
        HidWedgeReader(evdev_module=fake_evdev([FakeDevice("AT Translated Set 2 keyboard", "/dev/input/event0")]))


def test_reader_held_by_another_program():
    dev = FakeDevice()
    dev.grabbed = True
    with pytest.raises(HardwareError, match="another program"):
        HidWedgeReader(input_device=dev)
    assert dev.closed


def test_unplugged_reader_is_a_hardware_error():
    dev = FakeDevice(batches=[[(2, 1)]], fail=True)
    with pytest.raises(HardwareError, match="stopped"):
        swipe(HidWedgeReader(input_device=dev))


def test_wedge_unknown_key():
    with pytest.raises(ConfigError, match="unknown key 'baudrate'"):
        HidWedgeReader(input_device=FakeDevice(), baudrate=9600)


# ---- SerialMagstripe over pyserial's loop:// ----

def serial_reader(**kw):
    port = serial.serial_for_url("loop://", timeout=0.05)
    return SerialMagstripe(serial_port=port, **kw), port


def test_serial_reader_returns_one_line_without_the_line_end():
    reader, port = serial_reader()
    port.write((TRACK1 + TRACK2 + "\r\n").encode())
    assert swipe(reader) == TRACK1 + TRACK2


def test_serial_reader_joins_tracks_on_separate_lines_and_keeps_the_next_swipe():
    reader, port = serial_reader(track_gap=0.3)
    port.write((TRACK1 + "\r" + TRACK2 + "\r\n").encode())

    async def two():
        first = await reader.read_swipe()
        port.write((TRACK2 + "\n").encode())
        second = await asyncio.wait_for(reader.read_swipe(), 5)
        reader.close()
        return first, second

    assert asyncio.run(two()) == (TRACK1 + "\n" + TRACK2, TRACK2)


def test_serial_swipe_without_line_end_ends_after_silence():
    reader, port = serial_reader(timeout=0.2)
    port.write(TRACK2.encode())
    assert swipe(reader) == TRACK2


def test_serial_reader_needs_a_port():
    with pytest.raises(ConfigError, match="needs port"):
        SerialMagstripe()


# ---- a stray partial swipe, readers found by USB id ----

def test_a_partial_swipe_followed_by_silence_is_not_glued_to_the_next():
    decoder = WedgeDecoder(char_timeout_ms=500)
    t = 0
    for code, value in keystrokes("%B4111", enter=False):  # a swipe cut short: no ENTER
        assert decoder.feed(code, value, t) is None
        t += 2
    t += 3000  # silence, then a good swipe
    text = None
    for code, value in keystrokes(TRACK2):
        text = decoder.feed(code, value, t) or text
        t += 2
    assert text == TRACK2 and decoder.partials_dropped == 1


class TimedEvents(FakeDevice):
    """Events stamped like evdev's (timestamp() in s): a partial, a long silence, a swipe."""

    def __init__(self, parts, **kw):
        FakeDevice.__init__(self, **kw)
        self.parts = parts  # [(start_s, [(code, value)])]

    async def async_read_loop(self):
        for start, events in self.parts:
            for i, (code, value) in enumerate(events):
                stamp = start + i * 0.002
                yield types.SimpleNamespace(type=1, code=code, value=value, timestamp=lambda s=stamp: s)
        await asyncio.sleep(3600)


def test_wedge_reader_drops_a_stray_partial_by_the_kernel_timestamps():
    dev = TimedEvents([(100.0, keystrokes("%B41", enter=False)), (105.0, keystrokes(TRACK1 + TRACK2))])
    assert swipe(HidWedgeReader(input_device=dev)) == TRACK1 + TRACK2


def with_usb_id(dev, vendor, product):
    dev.info = types.SimpleNamespace(bustype=3, vendor=vendor, product=product, version=1)
    return dev


def test_auto_finds_a_reader_by_its_usb_vendor_when_its_name_says_nothing():
    keyboard = with_usb_id(FakeDevice("USB Keyboard", "/dev/input/event0"), 0x046D, 0xC31C)
    anonymous = with_usb_id(FakeDevice("HID 0801:0001", "/dev/input/event4"), 0x0801, 0x0001)  # MagTek
    reader = HidWedgeReader(device="auto", evdev_module=fake_evdev([keyboard, anonymous]))
    assert anonymous.grabbed and keyboard.closed
    reader.close()


def test_usb_ids_pick_one_reader_over_a_name_match():
    named = with_usb_id(FakeDevice("Generic Swipe Reader", "/dev/input/event3"), 0xFFFF, 0x0035)
    mine = with_usb_id(FakeDevice("HID Keyboard Device", "/dev/input/event6"), 0x1234, 0x5678)
    reader = HidWedgeReader(device="auto", usb_ids=["1234:5678"], evdev_module=fake_evdev([named, mine]))
    assert mine.grabbed and named.closed and not named.grabbed
    reader.close()
    with pytest.raises(ConfigError, match="usb_ids"):
        HidWedgeReader(device="auto", usb_ids=["magtek"], evdev_module=fake_evdev([mine]))
