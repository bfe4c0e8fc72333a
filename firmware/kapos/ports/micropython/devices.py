"""The Pico W's devices over `machine`, each behind the kapos.hal interface its driver
expects. Buses are injected so tests run the same code on simulated ones:
- MFRC522: `SpiBus` over machine.SPI with a chip-select Pin (kapos.drivers.mfrc522 on top);
- keypad: the matrix scan of kapos.drivers.keypad_matrix on machine.Pin lines;
- SSD1306: micropython-lib's `ssd1306` driver, 21x8 text lines;
- printer: ESC/POS bytes on machine.UART (python-escpos does not run on MicroPython; this
  is the subset the receipts use: initialise, text lines, feed, cut)."""


class MachineSpi:
    """A kapos.hal.SpiBus (by its one method, not by inheritance: importing kapos.hal would
    cost a Pico W ~3 KB of heap for base classes nothing here needs): transfer() = one
    chip-select-framed full-duplex exchange."""

    def __init__(self, spi, cs):
        self.spi = spi
        self.cs = cs
        self.cs.value(1)

    def transfer(self, data):
        out = bytearray(len(data))
        self.cs.value(0)
        try:
            self.spi.write_readinto(bytes(data), out)
        finally:
            self.cs.value(1)
        return bytes(out)


def open_keypad(section, machine=None):
    """A KeypadMatrix on machine.Pin lines from the board's [keypad] section: drive lines
    open-drain and released (1), sense lines inputs with pull-ups. `machine` is injectable
    so tests run this on a fake module."""
    if machine is None:
        import machine  # type: ignore
    from kapos.drivers.keypad_matrix import KeypadMatrix

    Pin = machine.Pin
    drive_cols = section.get("drive", "rows") == "cols"
    drive_numbers = section["col_pins"] if drive_cols else section["row_pins"]
    sense_numbers = section["row_pins"] if drive_cols else section["col_pins"]
    drive = [Pin(n, Pin.OPEN_DRAIN, value=1) for n in drive_numbers]
    sense = [Pin(n, Pin.IN, Pin.PULL_UP) for n in sense_numbers]
    rows, cols = (sense, drive) if drive_cols else (drive, sense)
    return KeypadMatrix(rows, cols, section["layout"], section.get("keymap"),
                        section.get("debounce_ms", 30), "cols" if drive_cols else "rows")


async def read_keys(matrix, on_key, sleep_ms, ticks_ms, period_ms=10, scans=None):
    """Scan the matrix every `period_ms` and await on_key(key) for each new press.
    Runs for `scans` scans (None: for ever, the terminal's key task)."""
    done = 0
    while scans is None or done < scans:
        for key in matrix.scan(ticks_ms()):
            await on_key(key)
        done += 1
        await sleep_ms(period_ms)


def open_spi(board):
    """machine.SPI + CS Pin from the board table's [nfc] section (real hardware only)."""
    import machine  # type: ignore

    spi = machine.SPI(board.get("spi_bus", 0), baudrate=board.get("baud", 1000000),
                      sck=machine.Pin(board["sck"]), mosi=machine.Pin(board["mosi"]),
                      miso=machine.Pin(board["miso"]))
    return MachineSpi(spi, machine.Pin(board["cs"], machine.Pin.OUT))


ESC_INIT = b"\x1b@"
ESC_CUT = b"\x1dV\x00"


def escpos_receipt(lines, width=32):
    """The bytes a 58 mm ESC/POS printer needs for `lines` (ASCII, cut at `width`)."""
    out = bytearray(ESC_INIT)
    for line in lines:
        text = "".join(c if 32 <= ord(c) < 127 else "?" for c in line)[:width]
        out += text.encode() + b"\n"
    out += b"\n\n\n" + ESC_CUT
    return bytes(out)


class UartPrinter:
    def __init__(self, uart, width=32):
        self.uart = uart
        self.width = width

    def print_lines(self, lines):
        self.uart.write(escpos_receipt(lines, self.width))


class Ssd1306Text:
    """Screen lines on micropython-lib's SSD1306 driver (`mip install ssd1306`)."""

    def __init__(self, oled):
        self.oled = oled

    def show(self, lines):
        self.oled.fill(0)
        for row, line in enumerate(lines[:8]):
            self.oled.text(line[:16], 0, row * 8)
        self.oled.show()


class RecordingScreen:
    """The simulated display: keeps the last lines shown."""

    def __init__(self):
        self.lines = []

    def show(self, lines):
        self.lines = list(lines)
