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
    bus.writes.clear()
    display.show(SCREEN)
    stream = bus.stream()
    assert stream[0] == (CMD, SSD1306_WINDOW)
    frame = stream[1][1]
    assert stream[1][0] == DATA and len(stream) == 2
    assert frame == expected_pages(SCREEN)
    assert frame.count(0) < 1000  # the title bar and text really are drawn


def test_sh1106_init_and_page_addressed_frame():
    display, bus = oled("sh1106")
    init = bus.stream()
    assert init[0] == (CMD, SH1106_INIT + bytes.fromhex("B0 02 10"))
    assert init[-1] == (CMD, b"\xAF")
    bus.writes.clear()
    display.show(SCREEN)
    expected = expected_pages(SCREEN)
    stream = bus.stream()
    assert len(stream) == 16
    for page in range(8):  # page address, column 2 (the SH1106 has 132 columns), then 128 bytes
        assert stream[2 * page] == (CMD, bytes([0xB0 + page, 0x02, 0x10]))
        assert stream[2 * page + 1] == (DATA, expected[page * 128:(page + 1) * 128])


def test_unchanged_screen_is_not_resent_but_a_change_is():
    display, bus = oled()
    display.show(SCREEN)
    bus.writes.clear()
    display.show(Screen("SALE", ["Amount 12.34", "Insert card"], footer="CANCEL to stop"))
    assert bus.writes == []
    display.show(Screen("SALE", ["Amount 12.35", "Insert card"], footer="CANCEL to stop"))
    assert bus.stream()[1][1] == expected_pages(Screen("SALE", ["Amount 12.35", "Insert card"],
                                                       footer="CANCEL to stop"))


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
