"""What the output devices are handed (L1, beside their interfaces): a Screen for a
`Display`, a Receipt of Lines for a `Printer`. Plain values - the app builds them
(app/screens.py, app/receipts.py), ports draw or print them - so the HAL names no type
of a layer above it."""

PAPER_CHARS = 32  # 58 mm paper, font A


class Screen:
    def __init__(self, title, lines=(), footer="", kind="normal"):
        self.title = title
        self.lines = list(lines)
        self.footer = footer
        self.kind = kind  # normal | approved | declined | error | info

    def text(self):
        return "\n".join([self.title] + self.lines + ([self.footer] if self.footer else []))

    def __repr__(self):
        return "Screen(%r)" % self.text()

    def __eq__(self, other):
        return isinstance(other, Screen) and self.text() == other.text() and self.kind == other.kind


class Line:
    def __init__(self, text="", align="left", bold=False, double=False):
        self.text = text
        self.align = align  # left | center | right
        self.bold = bold
        self.double = double  # double height and width

    def __repr__(self):
        return "Line(%r)" % self.text


class Receipt:
    def __init__(self, lines, copy="customer"):
        self.lines = lines
        self.copy = copy

    def text(self, width=PAPER_CHARS):
        out = []
        for line in self.lines:
            w = width // 2 if line.double else width
            text = line.text[:w]
            if line.align == "center":
                text = text.center(w).rstrip()
            elif line.align == "right":
                text = " " * (w - len(text)) + text
            out.append(text)
        return "\n".join(out) + "\n"
