#!/usr/bin/env python3
"""Render the pictures in docs/img from a scripted sale on the simulated board:
screens.png (the OLED at each step, as the luma emulator draws it) and receipt.png."""

import asyncio
import os
import sys

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from PIL import Image, ImageDraw  # noqa: E402

from kapos.app.scenario import load  # noqa: E402
from kapos.harness import Harness  # noqa: E402
from kapos.ports.shared import receipt_png  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIO = os.path.join(ROOT, "tests", "scenarios", "sale-swipe-pin.scenario")
WANTED = ("Kapos test shop", "Amount:", "Swipe or tap card", "1 Debit", "PIN: ****", "APPROVED")


async def capture():
    scenario = load(SCENARIO)
    frames = []
    async with Harness("sim", overrides=scenario.config, clock=scenario.clock, default_timeout=5.0) as h:
        display = h.platform.display

        def keep(kind, screen):
            if kind == "screen":
                frames.append((screen.text(), display.image.copy() if display.image else None))

        h.terminal.observers.append(keep)
        frames.append((h.terminal.screen.text(), display.image.copy()))
        await h.player.play(scenario)
        receipt = h.terminal.receipts[-1][1]
    return frames, receipt


def pick(frames):
    chosen = []
    for wanted in WANTED:
        for text, image in reversed(frames) if wanted == "PIN: ****" else frames:
            if wanted in text and image is not None:
                chosen.append(image)
                break
    return chosen


def grid(images, scale=3, cols=3, gap=12):
    w, h = images[0].width * scale, images[0].height * scale
    rows = (len(images) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * (w + gap) + gap, rows * (h + gap) + gap), (40, 44, 52))
    for i, image in enumerate(images):
        x, y = gap + (i % cols) * (w + gap), gap + (i // cols) * (h + gap)
        oled = image.convert("L").resize((w, h), Image.NEAREST)
        tinted = Image.merge("RGB", (oled.point(lambda v: v * 0.55), oled.point(lambda v: v * 0.85), oled))
        sheet.paste(tinted, (x, y))
        ImageDraw.Draw(sheet).rectangle((x - 1, y - 1, x + w, y + h), outline=(90, 90, 90))
    return sheet


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    frames, receipt = asyncio.run(capture())
    grid(pick(frames)).save(os.path.join(out_dir, "screens.png"))
    receipt_png.save(receipt, os.path.join(out_dir, "receipt.png"))
    with open(os.path.join(out_dir, "receipt.txt"), "w") as f:
        f.write(receipt.text())
    print("wrote screens.png, receipt.png and receipt.txt in %s" % out_dir)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "docs", "img"))
