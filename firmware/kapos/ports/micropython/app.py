"""The Pico W terminal at power-on: `main.py` (written by `kapos flash`) calls main().

/kapos.json (written by `kapos flash`) holds the board table (boards/pico-w.toml as JSON:
MicroPython has no TOML parser) with its buses' GP numbers, the terminal and merchant ids, the host address and the
Wi-Fi network. Keys are in /keys/dukpt.bin, the batch in /batch.json. Real devices only:
this module imports machine, network and micropython-lib's ssd1306 (docs/pico.md). Not yet
run on a Pico: the pieces under it (devices, host link, keys, batch, terminal) are tested
inside MicroPython on simulated buses."""

import json

CONFIG_PATH = "/kapos.json"
KEYS_PATH = "/keys/dukpt.bin"
BATCH_PATH = "/batch.json"
WIFI_WAIT_S = 20


def load_config(path=CONFIG_PATH):
    from kapos.errors import ConfigError

    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError):
        raise ConfigError("%s is missing or not JSON: run kapos flash --board pico-w again" % path)
    for key in ("board", "terminal_id", "merchant_id", "host", "port"):
        if key not in config:
            raise ConfigError("%s has no %s" % (path, key))
    return config


def connect_wifi(config, sleep):
    import network  # type: ignore

    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    wifi = config.get("wifi") or {}
    if wifi.get("ssid"):
        wlan.connect(wifi["ssid"], wifi.get("password", ""))
    for _ in range(WIFI_WAIT_S * 2):  # bounded: the terminal shows the error and goes on offline
        if wlan.isconnected():
            return True
        sleep(0.5)
    return False


def clock():
    import time

    t = time.time()
    utc = time.gmtime(t)[:6]
    return t, "%04d%02d%02d" % utc[:3], utc, utc  # local time = UTC: a Pico has no zone data


def random_bytes(n):
    import os

    return bytes(os.urandom(n))


def build(config):
    """The Terminal and its keypad matrix from the configuration (real devices)."""
    import asyncio
    import machine  # type: ignore
    import ssd1306  # type: ignore  (mpremote mip install ssd1306)

    from kapos.ports.micropython.batch import BatchTotals
    from kapos.ports.micropython.devices import Ssd1306Text, UartPrinter, open_keypad
    from kapos.ports.micropython.hostlink import HostLink
    from kapos.ports.micropython.keystate import FlashKeyState
    from kapos.ports.micropython.terminal import Terminal

    board, buses = config["board"], config.get("buses") or {}
    Pin = machine.Pin
    display = board["display"]
    sda, scl = buses.get(display.get("bus"), (4, 5))
    i2c = machine.I2C(display.get("i2c_port", 0), sda=Pin(sda), scl=Pin(scl))
    oled = ssd1306.SSD1306_I2C(display.get("width", 128), display.get("height", 64), i2c,
                               addr=display.get("i2c_address", 0x3C))
    printer = board["printer"]
    tx, rx = buses.get(printer.get("bus"), (0, 1))
    uart = machine.UART(0, baudrate=printer.get("baudrate", 9600), tx=Pin(tx), rx=Pin(rx))
    link = HostLink(FlashKeyState(KEYS_PATH), config["terminal_id"], config["merchant_id"],
                    config.get("currency", "978"), (config["host"], config["port"]),
                    asyncio.open_connection, BatchTotals(BATCH_PATH))
    term = Terminal(link, Ssd1306Text(oled), UartPrinter(uart), clock, random_bytes)
    return term, open_keypad(board["keypad"], machine)


async def run(term, matrix):
    import asyncio
    import time

    from kapos.core import events as E
    from kapos.ports.micropython.devices import read_keys

    async def on_key(key):
        await term.feed(term.event(E.KEY, key=key))

    await term._run()
    await read_keys(matrix, on_key, asyncio.sleep_ms, time.ticks_ms)


def main():
    import asyncio
    import gc
    import time

    config = load_config()
    connect_wifi(config, time.sleep)
    term, matrix = build(config)
    gc.collect()  # start-up garbage (JSON, Wi-Fi) gone before the first sale
    asyncio.run(run(term, matrix))
