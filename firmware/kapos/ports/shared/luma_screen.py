"""Draw an app.screens.Screen on any luma device (real SSD1306/SH1106 or an emulator).

Layout for 128x64: an inverted title bar, up to four body lines, a footer line.
"""

from PIL import ImageFont

LINE_HEIGHT = 10
_FONT = None


def font():
    """PIL's built-in 6x11 bitmap font: monospaced, 21 characters across 128 pixels."""
    global _FONT
    if _FONT is None:
        loader = getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)
        _FONT = loader()
    return _FONT


def draw_screen(draw, screen, width, height):
    f = font()
    if screen.kind == "pattern":  # display test: every pixel row and column exercised
        draw.rectangle((0, 0, width - 1, height - 1), outline="white")
        for x in range(0, width, 8):
            draw.line((x, 0, x, height - 1), fill="white")
        for y in range(0, height, 8):
            draw.line((0, y, width - 1, y), fill="white")
        return
    draw.rectangle((0, 0, width - 1, LINE_HEIGHT + 1), outline="white", fill="white")
    draw.text((2, 0), screen.title, fill="black", font=f)
    y = LINE_HEIGHT + 3
    body_rows = max(1, (height - y - LINE_HEIGHT - 3) // LINE_HEIGHT)
    for line in screen.lines[:body_rows]:
        draw.text((2, y), line, fill="white", font=f)
        y += LINE_HEIGHT
    if screen.footer:
        fy = height - LINE_HEIGHT - 1
        draw.line((0, fy - 1, width - 1, fy - 1), fill="white")
        draw.text((2, fy), screen.footer, fill="white", font=f)


def show_on(device, screen):
    from luma.core.render import canvas  # here: the sim panel draws without luma (start-up time)

    with canvas(device) as draw:
        draw_screen(draw, screen, device.width, device.height)
