"""`make run`: the simulated terminal in a terminal window.

The OLED frame is drawn with Unicode half blocks (two pixels per character cell), the PC
keyboard is the keypad, letters present the built-in test cards, and the receipt appears
under the screen when it is printed.
"""

import asyncio
import os
import sys
import termios
import tty

from kapos.core import keys
from kapos.local_target import tap_for

HELP = ("keys: 0-9  Enter=ENTER  Backspace=CLEAR  Esc/c=CANCEL  Tab=MENU  q=quit\n"
        "faults: P=toggle paper-out  H=toggle host offline  T=open the case (tamper)")


def frame_to_text(image):
    """Render a 1-bit image with half blocks: each cell is (top pixel, bottom pixel)."""
    if image is None:
        return ""
    image = image.convert("1")
    width, height = image.size
    px = image.load()
    rows = []
    for y in range(0, height, 2):
        row = []
        for x in range(width):
            top = px[x, y] != 0
            bottom = y + 1 < height and px[x, y + 1] != 0
            row.append("█" if top and bottom else "▀" if top else "▄" if bottom else " ")
        rows.append("".join(row))
    return "\n".join(rows)


class Console:
    def __init__(self, assembly, out=sys.stdout):
        self.assembly = assembly
        self.terminal = assembly.terminal
        self.out = out
        self.hotkeys = {c.hotkey: c for c in assembly.testcards.values() if c.hotkey}
        self.message = ""
        self.receipt = None
        self.done = asyncio.Event()
        self.terminal.observers.append(self._observe)

    def _observe(self, kind, payload):
        if kind == "receipt":
            self.receipt = payload.text()
        if kind in ("screen", "receipt", "state"):
            self.redraw()

    def card_help(self):
        return "  ".join("%s=%s" % (k, c.id) for k, c in sorted(self.hotkeys.items()))

    def redraw(self):
        display = self.terminal.platform.get("display")
        image = getattr(display, "image", None)
        screen = frame_to_text(image) if image is not None else (
            self.terminal.screen.text() if self.terminal.screen else "")
        parts = ["\x1b[H\x1b[2J", "kapos simulated terminal   state: %s\n" % self.terminal.state,
                 "+" + "-" * 128 + "+\n"]
        parts += ["|%s|\n" % line for line in screen.split("\n")]
        parts += ["+" + "-" * 128 + "+\n", HELP + "\n", "cards: " + self.card_help() + "\n"]
        if self.message:
            parts.append(self.message + "\n")
        if self.receipt:
            parts.append("\n--- receipt ---\n" + self.receipt)
        self.out.write("".join(parts).replace("\n", "\r\n"))
        self.out.flush()

    def on_input(self, data):
        platform = self.terminal.platform
        if data.startswith("\x1b[") or data.startswith("\x1bO"):
            return  # arrow and function keys: not on a terminal keypad
        for ch in data:
            self.message = ""
            if ch in keys.DIGITS:
                platform.keypad.inject(ch)
            elif ch in "\r\n":
                platform.keypad.inject(keys.ENTER)
            elif ch in "\x7f\x08":
                platform.keypad.inject(keys.CLEAR)
            elif ch in "\x1bc":
                platform.keypad.inject(keys.CANCEL)
            elif ch == "\t":
                platform.keypad.inject(keys.MENU)
            elif ch == "T" and platform.get("tamper") is not None:
                platform.tamper.inject("case opened (console)")
                self.message = "tamper switch opened: re-key with `kapos keys load`"
            elif ch in ("q", "\x03", "\x04"):
                self.done.set()
            elif ch == "P":
                printer = platform.get("printer")
                printer.paper_out = not printer.paper_out
                self.message = "printer paper-out: %s" % printer.paper_out
            elif ch == "H":
                link = self.assembly.authorizer
                link.online = not getattr(link, "online", True)
                self.message = "host link online: %s" % link.online
            elif ch in self.hotkeys:
                card = self.hotkeys[ch]
                if card.present == "tap":
                    platform.nfc.inject(tap_for(card))
                    self.message = "tapped %s" % card.id
                else:
                    platform.magstripe.inject(card.swipe_text())
                    self.message = "swiped %s" % card.id
            self.redraw()

    async def run(self):
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        loop = asyncio.get_running_loop()
        tty.setcbreak(fd)
        loop.add_reader(fd, lambda: self.on_input(os.read(fd, 64).decode("utf-8", "replace")))
        runner = asyncio.ensure_future(self.terminal.run())
        try:
            self.redraw()
            await self.done.wait()
        finally:
            loop.remove_reader(fd)
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
            self.terminal.stop()
            await runner
            self.out.write("\r\nbye\r\n")
