"""Draw an app.receipts.Receipt as a picture of a 58 mm thermal receipt (PNG for docs/tests).

Text is drawn with PIL's built-in 6x11 bitmap font at 32 characters a line, then scaled
2x to the printer's 384 dots, which is close to what a thermal printer's font A prints.
"""

from PIL import Image, ImageChops, ImageDraw

from kapos.ports.shared.luma_screen import font

CHARS = 32
CELL_W, CELL_H = 6, 12
MARGIN = 4
DOTS = 2  # printer dots per font pixel


def _line_image(line):
    scale = (2 if line.double else 1) * DOTS
    chars = CHARS * DOTS // scale
    text = line.text[:chars]
    if line.align == "center":
        text = text.center(chars)
    elif line.align == "right":
        text = text.rjust(chars)
    chars = CHARS * DOTS // scale
    image = Image.new("L", (chars * CELL_W, CELL_H), 255)
    draw = ImageDraw.Draw(image)
    for col, ch in enumerate(text):  # one cell per character: a monospaced grid
        draw.text((col * CELL_W, 0), ch, fill=0, font=font())
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    if line.bold:  # thermal printers embolden by a one-dot wider stroke
        image = ImageChops.darker(image, ImageChops.offset(image, 1, 0))
    return image


def render(receipt):
    rows = [_line_image(line) for line in receipt.lines]
    margin = MARGIN * DOTS
    page = Image.new("L", (CHARS * CELL_W * DOTS + 2 * margin, sum(r.height for r in rows) + 2 * margin), 255)
    y = margin
    for row in rows:
        page.paste(row, (margin, y))
        y += row.height
    return page


def save(receipt, path):
    render(receipt).save(path)
