"""Draw an app.receipts.Receipt as a picture of a 58 mm thermal receipt (PNG for docs/tests).

Text is drawn with PIL's built-in 6x11 bitmap font at 32 characters a line, then scaled
2x to the printer's 384 dots, which is close to what a thermal printer's font A prints.
"""

from PIL import Image, ImageDraw

from kapos.ports.shared.luma_screen import font

CHARS = 32
CELL_W, CELL_H = 6, 12
MARGIN = 4


def _line_image(line):
    scale = 2 if line.double else 1
    chars = CHARS // scale
    text = line.text[:chars]
    if line.align == "center":
        text = text.center(chars)
    elif line.align == "right":
        text = text.rjust(chars)
    image = Image.new("1", (chars * CELL_W, CELL_H), 1)
    draw = ImageDraw.Draw(image)
    for col, ch in enumerate(text):  # one cell per character: a monospaced grid
        draw.text((col * CELL_W, 0), ch, fill=0, font=font())
        if line.bold:
            draw.text((col * CELL_W + 1, 0), ch, fill=0, font=font())
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    return image


def render(receipt):
    rows = [_line_image(line) for line in receipt.lines]
    height = sum(r.height for r in rows) + 2 * MARGIN
    page = Image.new("1", (CHARS * CELL_W + 2 * MARGIN, height), 1)
    y = MARGIN
    for row in rows:
        page.paste(row, (MARGIN, y))
        y += row.height
    return page.resize((page.width * 2, page.height * 2), Image.NEAREST).convert("L")


def save(receipt, path):
    render(receipt).save(path)
