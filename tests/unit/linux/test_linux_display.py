"""LumaOled: the real luma.oled device classes over a fake I2C bus. The bytes on the bus
must be the controller's init sequence, and a rendered Screen must reach the panel as
exactly the pixels luma's `dummy` device (the emulator path) renders for it."""

import errno

import pytest
from luma.core.device import dummy
from luma.core.interface.serial import i2c

from kapos.app.screens import Screen
from kapos.errors import ConfigError, HardwareError
from kapos.ports.linux.display import LumaOled
from kapos.ports.shared.luma_screen import show_on
from linux_fakes import FakeBus

CMD, DATA = 0x00, 0x40  # I2C control bytes: command stream / display RAM
SCREEN = Screen("SALE", ["Amount 12.34", "Insert card"], footer="CANCEL to stop")

# SSD1306 datasheet init order (luma.oled, 128x64): display off, clock, multiplex,
# offset, start line, charge pump, horizontal addressing, segment remap, COM scan
# direction, COM pins, pre-charge, VCOMH, resume RAM, normal; then contrast.
SSD1306_INIT = bytes.fromhex("AE D580 A83F D300 40 8D14 2000 A1 C8 DA12 D9F1 DB40 A4 A6 81CF")
SSD1306_WINDOW = bytes.fromhex("21 00 7F 22 00 07")  # column 0-127, page 0-7
SH1106_INIT = bytes.fromhex("AE 20 10 B0 C8 00 10 40 A1 A6 A83F A4 D300 D5F0 D922 DA12 DB20 8D14 817F")




def oled(driver="ssd1306", **kw):
    bus = FakeBus()
    display = LumaOled(driver_name=driver, serial_interface=i2c(bus=bus, address=0x3C), **kw)
    return display, bus


class PanelRam:
    """The controller's display RAM, driven by the command/data stream on the bus
    (SSD1306 horizontal addressing window 21/22, SH1106 page address B0-B7 + column)."""

    def __init__(self, controller):
        self.controller = controller
        self.ram = bytearray(1024)
        self.col, self.page, self.window = 0, 0, (0, 127, 0, 7)
        self.data_bytes = 0

    def feed(self, stream):
        for kind, data in stream:
            if kind == CMD:
                self._commands(data)
            else:
                self.data_bytes += len(data)
                for byte in data:
                    self.ram[self.page * 128 + self.col] = byte
                    self._advance()

    def _commands(self, data):
        i = 0
        while i < len(data):
            c = data[i]
            if self.controller == "ssd1306" and c in (0x21, 0x22):
                a, b = data[i + 1], data[i + 2]
                c0, c1, p0, p1 = self.window
                self.window = (a, b, p0, p1) if c == 0x21 else (c0, c1, a, b)
                self.col, self.page = self.window[0], self.window[2]
                i += 3
                continue
            if self.controller == "sh1106" and 0xB0 <= c <= 0xB7:
                self.page, self.col = c - 0xB0, 0  # (with 02 10: column 2 of 132, the first visible one)
            i += 1

    def _advance(self):
        c0, c1, p0, p1 = self.window
        self.col += 1
        if self.controller == "ssd1306" and self.col > c1:
            self.col = c0
            self.page = p0 if self.page >= p1 else self.page + 1


def shown(display, bus, screen, controller="ssd1306"):
    """Show `screen`, wait for the writer thread, return what reached the panel RAM."""
    bus.writes.clear()
    display.show(screen)
    assert display.flush()
    return bus.stream()


def expected_pages(screen):
    """What the panel RAM must hold: luma's dummy device render, packed 8 rows per byte
    (bit 0 = top row of the page), page by page."""
    emu = dummy(width=128, height=64, mode="1")
    show_on(emu, screen)
    px = emu.image.load()
    out = bytearray()
    for page in range(8):
        for x in range(128):
            out.append(sum(1 << bit for bit in range(8) if px[x, page * 8 + bit]))
    return bytes(out)


def test_ssd1306_init_sequence_on_the_bus():
    _, bus = oled()
    assert bus.stream() == [(CMD, SSD1306_INIT + SSD1306_WINDOW), (DATA, bytes(1024)), (CMD, b"\xAF")]


def test_ssd1306_frame_equals_the_emulator_render():
    display, bus = oled()
    panel = PanelRam("ssd1306")
    panel.feed(shown(display, bus, SCREEN))
    assert bytes(panel.ram) == expected_pages(SCREEN)
    assert panel.ram.count(0) < 1000  # the title bar and text really are drawn
    assert bus.stream()[0][1][:1] == b"\x21"  # a window first, then the data


def test_frames_are_written_off_the_callers_thread():
    import threading
    display, bus = oled()
    threads = []
    original = bus.write_i2c_block_data

    def record(*args):
        threads.append(threading.current_thread())
        return original(*args)

    bus.write_i2c_block_data = record
    display.show(SCREEN)
    assert display.flush()
    assert threads and threading.current_thread() not in threads


def test_sh1106_init_and_page_addressed_frame():
    display, bus = oled("sh1106")
    init = bus.stream()
    assert init[0] == (CMD, SH1106_INIT + bytes.fromhex("B0 02 10"))
    assert init[-1] == (CMD, b"\xAF")
    expected = expected_pages(SCREEN)
    stream = shown(display, bus, SCREEN)
    for i in range(0, len(stream), 2):  # page address, column 2 (the SH1106 has 132 columns), then 128 bytes
        page = stream[i][1][0] - 0xB0
        assert stream[i] == (CMD, bytes([0xB0 + page, 0x02, 0x10]))
        assert stream[i + 1] == (DATA, expected[page * 128:(page + 1) * 128])
    panel = PanelRam("sh1106")
    panel.feed(stream)
    assert bytes(panel.ram) == expected


@pytest.mark.parametrize("controller", ["ssd1306", "sh1106"])
def test_unchanged_screen_is_not_resent_and_a_change_sends_only_its_pages(controller):
    display, bus = oled(controller)
    panel = PanelRam(controller)
    panel.feed(shown(display, bus, SCREEN))
    assert shown(display, bus, Screen("SALE", ["Amount 12.34", "Insert card"], footer="CANCEL to stop")) == []
    changed = Screen("SALE", ["Amount 12.35", "Insert card"], footer="CANCEL to stop")
    before = panel.data_bytes
    panel.feed(shown(display, bus, changed))
    assert bytes(panel.ram) == expected_pages(changed)
    assert panel.data_bytes - before == 256  # one text line changed: the two 8-row pages it spans


def test_only_the_newest_frame_is_written_when_the_bus_is_busy():
    import threading
    display, bus = oled()
    gate = threading.Event()
    original = bus.write_i2c_block_data
    bus.write_i2c_block_data = lambda *a: (gate.wait(5), original(*a))[1]
    frames = [Screen("SALE", ["Amount %d" % n]) for n in range(5)]
    for screen in frames:
        display.show(screen)
    gate.set()
    assert display.flush()
    panel_pages = display._pages.panel
    from kapos.ports.shared.oled_frames import pages_of, render
    assert panel_pages == pages_of(render(frames[-1]))
    assert display._worker.frames_written <= 2  # the first (already on the bus) and the newest


def test_contrast_key_is_sent():
    _, bus = oled(contrast=0x40)
    assert bus.stream()[-1] == (CMD, bytes.fromhex("AF 8140"))


def test_absent_panel_is_a_hardware_error():
    with pytest.raises(HardwareError, match="does not answer"):
        LumaOled(serial_interface=i2c(bus=FakeBus(fail=errno.EREMOTEIO), address=0x3C))


def test_close_blanks_the_panel():
    display, bus = oled()
    bus.writes.clear()
    display.close()
    assert bus.stream()[0][1].startswith(b"\xAE")  # display off, then the blank frame
    display.close()  # twice is fine


@pytest.mark.parametrize("kw, text", [
    (dict(colour="blue"), "unknown key 'colour'"),
    (dict(driver_name="ssd1331"), "ssd1306 or sh1106"),
    (dict(width=128, height=32), "only 128x64"),
    (dict(spi_port=0), "needs dc_pin"),
    (dict(contrast=300), "contrast"),
])
def test_bad_board_keys(kw, text):
    kw.setdefault("serial_interface", i2c(bus=FakeBus(), address=0x3C))
    with pytest.raises(ConfigError, match=text):
        LumaOled(**kw)
