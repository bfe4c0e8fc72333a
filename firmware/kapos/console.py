"""`make run`: the simulated terminal in a terminal window.

The 128x64 OLED is drawn pixel-exact with Unicode braille cells (2x4 pixels per
character cell: 64 columns by 16 rows), so the whole terminal fits an 80x24 window; a
window at least 38 rows tall gets quadrant blocks instead (2x2 pixels, 64x32). The
receipt goes to a side pane when the window is wide enough, else `r` shows it in place of
the screen; `?` lists the test cards with their PINs. A window too small for the layout
gets a warning instead of wrapped garbage. The PC keyboard is the keypad and letters
present the built-in test cards (`Controls`, which the browser simulator uses too).
"""

import asyncio
import os
import shutil
import signal
import sys

from kapos.core import keys
from kapos.local_target import tap_for

SCREEN_COLS, SCREEN_ROWS = 64, 16  # the OLED in braille cells
TALL_ROWS = 32  # the OLED in quadrant cells, for windows with room
BOX_COLS = SCREEN_COLS + 2
MIN_COLS, MIN_ROWS = BOX_COLS, 22
TALL_MIN_ROWS = MIN_ROWS + TALL_ROWS - SCREEN_ROWS
PANE_COLS = 36  # side pane (receipt, cards) when the window has room for it
KEY_HELP = "0-9 Enter Bksp=CLEAR Esc/c=CANCEL Tab=MENU  r=receipt ?=cards q=quit"
FAULT_HELP = "faults: P=paper H=host T=tamper I=chip in/out"

# (top-left, top-right, bottom-left, bottom-right) -> character
QUADRANTS = {
    (0, 0, 0, 0): " ", (1, 0, 0, 0): "\u2598", (0, 1, 0, 0): "\u259d", (0, 0, 1, 0): "\u2596",
    (0, 0, 0, 1): "\u2597", (1, 1, 0, 0): "\u2580", (0, 0, 1, 1): "\u2584", (1, 0, 1, 0): "\u258c",
    (0, 1, 0, 1): "\u2590", (1, 0, 0, 1): "\u259a", (0, 1, 1, 0): "\u259e", (1, 1, 1, 0): "\u259b",
    (1, 1, 0, 1): "\u259c", (1, 0, 1, 1): "\u2599", (0, 1, 1, 1): "\u259f", (1, 1, 1, 1): "\u2588",
}
KEY_NAMES = {"enter": keys.ENTER, "clear": keys.CLEAR, "cancel": keys.CANCEL, "menu": keys.MENU}


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


BRAILLE_BITS = ((0, 0, 0x01), (0, 1, 0x02), (0, 2, 0x04), (1, 0, 0x08), (1, 1, 0x10), (1, 2, 0x20),
                (0, 3, 0x40), (1, 3, 0x80))  # (dx, dy, dot bit) of a 2x4 braille cell


def frame_to_braille(image):
    """Render a 1-bit image with braille cells: each cell is 2x4 pixels, nothing lost."""
    if image is None:
        return []
    image = image.convert("1")
    width, height = image.size
    px = image.load()
    rows = []
    for y in range(0, height, 4):
        row = []
        for x in range(0, width, 2):
            bits = 0
            for dx, dy, bit in BRAILLE_BITS:
                if x + dx < width and y + dy < height and px[x + dx, y + dy] != 0:
                    bits |= bit
            row.append(chr(0x2800 + bits) if bits else " ")
        rows.append("".join(row))
    return rows


def frame_to_quadrants(image):
    """Render a 1-bit image with quadrant blocks: each cell is 2x2 pixels, nothing lost."""
    if image is None:
        return []
    image = image.convert("1")
    width, height = image.size
    px = image.load()

    def on(x, y):
        return 1 if x < width and y < height and px[x, y] != 0 else 0

    return ["".join(QUADRANTS[(on(x, y), on(x + 1, y), on(x, y + 1), on(x + 1, y + 1))]
                    for x in range(0, width, 2)) for y in range(0, height, 2)]


class Controls:
    """The terminal's inputs and simulated faults, by name: the console's keys and the
    browser simulator's buttons go through these same objects."""

    def __init__(self, assembly):
        self.assembly = assembly
        self.platform = assembly.terminal.platform
        self.cards = assembly.testcards

    def press(self, name):
        key = KEY_NAMES.get(name, name)
        if key not in keys.DIGITS and key not in KEY_NAMES.values():
            raise ValueError("not a keypad key")
        self.platform.keypad.inject(key)

    def present(self, card_id):
        card = self.cards.get(card_id)
        if card is None:
            raise ValueError("unknown test card")
        if card.present == "tap":
            self.platform.nfc.inject(tap_for(card))
            return "tapped %s" % card.id
        self.platform.magstripe.inject(card.swipe_text())
        return "swiped %s" % card.id

    def insert(self, card_id="emv-tap", profile="mchip"):
        """The chip slot (a board with [chip]): insert that card, or take out the one in it."""
        slot = self.platform.get("chip")
        if slot is None or not hasattr(slot, "insert"):
            return "this board has no chip slot (try --board sim-nfc)"
        if slot.card is not None:
            slot.remove()
            return "card removed"
        card = self.cards.get(card_id)
        if card is None or not getattr(card, "pan", None):
            raise ValueError("unknown chip test card")
        slot.insert(card.track2_equivalent(), profile)
        return "inserted %s (%s)" % (card.id, profile)

    def toggle(self, fault):
        if fault == "paper":
            printer = self.platform.get("printer")
            printer.paper_out = not printer.paper_out
            return "printer paper-out: %s" % printer.paper_out
        if fault == "host":
            link = self.assembly.authorizer
            link.online = not getattr(link, "online", True)
            return "host link online: %s" % link.online
        if fault == "tamper":
            if self.platform.get("tamper") is None:
                raise ValueError("this board has no tamper switch")
            self.platform.tamper.inject("case opened (simulator)")
            return "tamper switch opened: re-key with `kapos keys load`"
        raise ValueError("unknown fault")

    def faults(self):
        printer = self.platform.get("printer")
        return {"paper_out": bool(getattr(printer, "paper_out", False)),
                "host_online": bool(getattr(self.assembly.authorizer, "online", True)),
                "tampered": self.assembly.terminal.state == "LOCKED"}

    def card_list(self):
        """(hotkey, id, how, PIN) of each test card, for help panes and buttons."""
        out = []
        for card in sorted(self.cards.values(), key=lambda c: (c.present != "swipe", c.hotkey or "~", c.id)):
            out.append((card.hotkey or "", card.id, card.present, getattr(card, "pin", None) or ""))
        return out


class Console:
    def __init__(self, assembly, out=sys.stdout, web_url=None):
        self.assembly = assembly
        self.terminal = assembly.terminal
        self.controls = Controls(assembly)
        self.out = out
        self.web_url = web_url
        self.hotkeys = {c.hotkey: c for c in assembly.testcards.values() if c.hotkey}
        self.message = ""
        self.receipt = None
        self.pane = None  # None, "receipt" or "cards": shown in place of the OLED when narrow
        self.size = None  # (columns, rows) for tests; None: ask the terminal
        self.done = asyncio.Event()
        self.terminal.observers.append(self._observe)

    def _observe(self, kind, payload):
        if kind == "receipt":
            self.receipt = payload.text()
            self.message = "receipt printed" + ("" if self._wide() else ": r shows it")
        if kind in ("screen", "receipt", "state"):
            self.redraw()

    def card_help(self):
        return "  ".join("%s=%s" % (k, c.id) for k, c in sorted(self.hotkeys.items()))

    def window(self):
        if self.size is not None:
            return self.size
        try:
            size = os.get_terminal_size(self.out.fileno())
        except (AttributeError, OSError, ValueError):
            size = shutil.get_terminal_size((80, 24))
        return size.columns, size.lines

    def _wide(self):
        cols, _ = self.window()
        return cols >= BOX_COLS + 1 + PANE_COLS

    def _tall(self):
        return self.window()[1] >= TALL_MIN_ROWS

    def screen_lines(self):
        display = self.terminal.platform.get("display")
        image = getattr(display, "image", None)
        if image is not None:
            return frame_to_quadrants(image) if self._tall() else frame_to_braille(image)
        text = self.terminal.screen.text() if self.terminal.screen else ""
        return text.split("\n")

    def _pane(self, kind, height, width):
        if kind == "receipt":
            lines = (self.receipt or "(no receipt yet)").rstrip("\n").split("\n")
            lines = ["--- receipt ---"] + lines
            return [line[:width] for line in lines[-height:]]
        lines = ["test cards (key  card  PIN)"]
        for hotkey, card_id, how, pin in self.controls.card_list():
            lines.append(("%s %-13s %-5s %s" % (hotkey or " ", card_id[:13], how, pin or "-"))[:width])
        lines.append("merchant PIN 5678, technician 0000"[:width])
        lines.append("transfer to: another card's PAN"[:width])
        lines.append("  e.g. 5555555555554444 (mc-credit)"[:width])
        return lines[:height]

    def render(self):
        """The whole window as text lines, each at most the window's width."""
        cols, rows = self.window()
        if cols < MIN_COLS or rows < MIN_ROWS:
            text = ["kapos: window %dx%d" % (cols, rows), "too small: needs %dx%d" % (MIN_COLS, MIN_ROWS),
                    "enlarge it (q quits)"]
            return [line[:cols] for line in text][:max(1, rows)]
        title = "kapos simulated terminal   state: %s" % self.terminal.state
        if self.web_url and len(title) + len(self.web_url) + 8 <= cols:
            title += "   web: " + self.web_url
        height = TALL_ROWS if self._tall() else SCREEN_ROWS
        body = [line[:SCREEN_COLS].ljust(SCREEN_COLS) for line in self.screen_lines()[:height]]
        body += [" " * SCREEN_COLS] * (height - len(body))
        if self.pane is not None and not self._wide():
            pane = self._pane(self.pane, height, SCREEN_COLS)
            body = [line.ljust(SCREEN_COLS) for line in pane] + [" " * SCREEN_COLS] * (height - len(pane))
        box = ["+" + "-" * SCREEN_COLS + "+"] + ["|%s|" % line for line in body] + ["+" + "-" * SCREEN_COLS + "+"]
        if self._wide():
            width = min(cols - BOX_COLS - 1, 48)
            side = self._pane(self.pane or ("receipt" if self.receipt else "cards"), len(box), width)
            box = [line + " " + (side[i] if i < len(side) else "") for i, line in enumerate(box)]
        lines = [title] + box + [KEY_HELP, FAULT_HELP + "   cards: " + " ".join(sorted(self.hotkeys)) + " (? lists)"]
        if self.message:
            lines.append(self.message)
        return [line[:cols] for line in lines][:rows]

    def redraw(self):
        self.out.write("\x1b[H\x1b[2J" + "\r\n".join(self.render()))
        self.out.flush()

    def on_input(self, data):
        if data.startswith("\x1b[") or data.startswith("\x1bO"):
            return  # arrow and function keys: not on a terminal keypad
        for ch in data:
            self.message = ""
            try:
                self._key(ch)
            except ValueError as exc:
                self.message = str(exc)
        self.redraw()

    def _key(self, ch):
        if ch in keys.DIGITS:
            self.controls.press(ch)
        elif ch in "\r\n":
            self.controls.press("enter")
        elif ch in "\x7f\x08":
            self.controls.press("clear")
        elif ch in "\x1bc":
            self.controls.press("cancel")
        elif ch == "\t":
            self.controls.press("menu")
        elif ch in ("q", "\x03", "\x04"):
            self.done.set()
        elif ch == "I":  # insert the EMV test card into the chip slot, or take it out
            self.message = self.controls.insert()
        elif ch in "PHT":
            self.message = self.controls.toggle({"P": "paper", "H": "host", "T": "tamper"}[ch])
        elif ch in "r?":
            kind = "receipt" if ch == "r" else "cards"
            self.pane = None if self.pane == kind else kind
        elif ch in self.hotkeys:
            self.message = self.controls.present(self.hotkeys[ch].id)

    async def run(self):
        import termios
        import tty

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        loop = asyncio.get_running_loop()
        tty.setcbreak(fd)
        loop.add_reader(fd, lambda: self.on_input(os.read(fd, 64).decode("utf-8", "replace")))
        try:
            loop.add_signal_handler(signal.SIGWINCH, self.redraw)
        except (AttributeError, NotImplementedError, RuntimeError):
            pass
        try:  # the terminal itself runs beside this UI (kapos.cli.run_with_management, kapos.harness)
            self.redraw()
            await self.done.wait()
        finally:
            loop.remove_reader(fd)
            try:
                loop.remove_signal_handler(signal.SIGWINCH)
            except (AttributeError, NotImplementedError, RuntimeError):
                pass
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
            self.out.write("\r\nbye\r\n")
