"""Boards as data: load a boards/*.toml file, check it, build its Platform.

Choosing a driver is a lookup in DRIVERS (peripheral -> driver name -> "module:Class"),
imported only when a board uses it, so Pi-only libraries load only on a Pi. A board that
names an unknown driver, uses a GPIO pin twice, or gives two devices one UART is refused
with a message that names the section and the key.
"""

import importlib
import os
import tomllib

from kapos.errors import ConfigError, HardwareError
from kapos.hal import Platform

PERIPHERALS = ("display", "keypad", "magstripe", "nfc", "chip", "printer", "buzzer", "clock", "tamper")

DRIVERS = {
    "display": {
        "sim": "kapos.ports.sim.outputs:SimDisplay",
        "ssd1306": "kapos.ports.linux.display:LumaOled",
        "sh1106": "kapos.ports.linux.display:LumaOled",
    },
    "keypad": {
        "sim": "kapos.ports.sim.inputs:SimKeypad",
        "matrix": "kapos.ports.linux.keypad:MatrixKeypad",
    },
    "magstripe": {
        "sim": "kapos.ports.sim.inputs:SimMagstripe",
        "hid-wedge": "kapos.ports.linux.magstripe:HidWedgeReader",
        "serial": "kapos.ports.linux.magstripe:SerialMagstripe",
    },
    "nfc": {
        "sim": "kapos.ports.sim.inputs:SimNfc",
        "mfrc522": "kapos.ports.linux.nfc:Mfrc522Reader",
        "mfrc522-emulated": "kapos.ports.sim.nfc_emulated:EmulatedMfrc522Reader",
    },
    "chip": {  # a contact chip reader: [chip] driver = "pcsc", reader = "<part of its PC/SC name>"
        "sim": "kapos.ports.sim.chip_slot:SimChipSlot",
        "pcsc": "kapos.ports.linux.pcsc:PcscContactReader",
    },
    "printer": {
        "sim": "kapos.ports.sim.outputs:SimPrinter",
        "escpos-serial": "kapos.ports.linux.printer:SerialEscposPrinter",
        "escpos-usb": "kapos.ports.linux.printer:UsbEscposPrinter",
    },
    "buzzer": {
        "sim": "kapos.ports.sim.outputs:SimBuzzer",
        "gpio": "kapos.ports.linux.buzzer:GpioBuzzer",
    },
    "clock": {
        "sim": "kapos.ports.sim.outputs:SimClock",
        "system": "kapos.ports.linux.clock:SystemClock",
    },
    "tamper": {
        "sim": "kapos.ports.sim.inputs:SimTamper",
        "gpio": "kapos.ports.linux.tamper:GpioTamperSwitch",
    },
}

# GPIO (BCM) lines a bus takes on the 40-pin header.
BUS_PINS = {
    "i2c1": (2, 3),
    "spi0": (9, 10, 11),
    "spi0.0": (9, 10, 11, 8),
    "spi0.1": (9, 10, 11, 7),
    "spi1.0": (19, 20, 21, 18),
    "uart0": (14, 15),
    "usb": (),
    # Raspberry Pi Pico W (RP2040 GP numbers; a board with runtime = "micropython")
    "pico-i2c0": (4, 5),
    "pico-spi0": (16, 17, 18, 19),
    "pico-uart0": (0, 1),
}
EXCLUSIVE_BUSES = ("uart0", "pico-uart0")  # one device per UART
PICO_RESERVED = (23, 24, 25, 29)  # the Pico W's Wi-Fi chip

BOARDS_DIR = os.environ.get("KAPOS_BOARDS") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "boards")


def board_path(name_or_path):
    if name_or_path.endswith(".toml") or os.sep in name_or_path:
        return name_or_path
    return os.path.join(BOARDS_DIR, name_or_path + ".toml")


def available_boards():
    try:
        return sorted(f[:-5] for f in os.listdir(BOARDS_DIR) if f.endswith(".toml"))
    except OSError:
        return []


def load_board(name_or_path):
    path = board_path(name_or_path)
    try:
        with open(path, "rb") as f:
            board = tomllib.load(f)
    except FileNotFoundError:
        known = ", ".join(available_boards()) or "none found"
        raise ConfigError("no board file %s (boards: %s)" % (path, known))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("board file %s is not valid TOML: %s" % (path, exc))
    validate_board(board, path)
    return board


def _pins_of(section):
    """(key, pin) pairs of a section: keys ending in _pin (int) or _pins (list of ints)."""
    for key, value in section.items():
        if key.endswith("_pin"):
            yield key, value
        elif key.endswith("_pins"):
            if not isinstance(value, list):
                yield key, value
            else:
                for pin in value:
                    yield key, pin


def validate_board(board, where="board"):
    if not isinstance(board.get("board"), dict) or "name" not in board["board"]:
        raise ConfigError("%s: missing [board] section with a name" % where)
    unknown = [s for s in board if s not in PERIPHERALS and s != "board"]
    if unknown:
        raise ConfigError("%s: unknown section [%s] (known: %s)" % (where, unknown[0], ", ".join(PERIPHERALS)))
    pico = board["board"].get("runtime") == "micropython"
    top_pin = 28 if pico else 27
    owners = {}  # pin -> (who, shared bus or None)
    buses = {}
    for name in PERIPHERALS:
        section = board.get(name)
        if section is None:
            continue
        driver = section.get("driver")
        if driver is None:
            raise ConfigError("%s: [%s] has no driver" % (where, name))
        if driver != "none" and driver not in DRIVERS[name]:
            raise ConfigError("%s: [%s] driver %r is unknown (known: %s)"
                              % (where, name, driver, ", ".join(sorted(DRIVERS[name]))))
        claims = []  # (who, pin, bus or None)
        for key, pin in _pins_of(section):
            if not isinstance(pin, int) or isinstance(pin, bool) or not 0 <= pin <= top_pin \
                    or (pico and pin in PICO_RESERVED):
                raise ConfigError("%s: [%s] %s must be a GPIO number 0-%d%s, got %r" % (
                    where, name, key, top_pin, " (not 23-25: Wi-Fi)" if pico else "", pin))
            claims.append(("[%s] %s" % (name, key), pin, None))
        bus = section.get("bus")
        if bus is not None:
            if bus not in BUS_PINS:
                raise ConfigError("%s: [%s] bus %r is unknown (known: %s)"
                                  % (where, name, bus, ", ".join(sorted(BUS_PINS))))
            if bus in EXCLUSIVE_BUSES:
                if bus in buses:
                    raise ConfigError("%s: bus %s is used by both [%s] and [%s]" % (where, bus, buses[bus], name))
                buses[bus] = name
            for pin in BUS_PINS[bus]:
                claims.append(("[%s] bus %s" % (name, bus), pin, bus.split(".")[0]))
        for who, pin, shared in claims:
            previous = owners.get(pin)
            # Devices on one SPI or I2C bus share its data lines; nothing else may.
            if previous is not None and not (shared and previous[1] == shared):
                raise ConfigError("%s: GPIO %d is used twice: by %s and by %s" % (where, pin, previous[0], who))
            owners.setdefault(pin, (who, shared))
    return board


def _factory(peripheral, driver):
    target = DRIVERS[peripheral][driver]
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError("[%s] driver %r cannot load: %s" % (peripheral, driver, exc))
    return getattr(module, class_name)


def build_platform(board, extra=None):
    """Construct every device the board names. `extra` adds options per peripheral
    (e.g. an output directory for the simulator's frames)."""
    extra = extra or {}
    devices = {}
    missing = []  # (section, HardwareError): every absent device is named at once
    try:
        for name in PERIPHERALS:
            section = board.get(name)
            if section is None or section.get("driver") == "none":
                continue
            options = {k: v for k, v in section.items() if k != "driver"}
            options["driver_name"] = section["driver"]
            options.update(extra.get(name, {}))
            try:
                devices[name] = _factory(name, section["driver"])(**options)
            except HardwareError as exc:
                missing.append((name, exc))
        if len(missing) == 1:
            raise missing[0][1]
        if missing:
            raise HardwareError("%d devices cannot start: %s" % (
                len(missing), "; ".join("[%s] %s" % (name, exc) for name, exc in missing)))
    except Exception:
        Platform(board, devices).close()
        raise
    return Platform(board, devices)
