"""A ring buffer of recent log lines for the management channel (`logs`) and `kapos diag logs`.

    buffer = logbuffer.install(capacity=1000, level=logging.INFO)   # once, at start-up
    lines, next_seq = buffer.lines(50)                               # the newest 50
    lines, next_seq = buffer.lines(since=next_seq)                   # only what came after

Every line is masked *before* it is stored: any run of 13 or more digits (a PAN has 13
to 19; a longer run may hold one; single spaces or dashes between digits, as a PAN is
often written, count as one run) becomes its first six and last four digits with `*` in
between (`411111******1111`), and anything shaped like track
data (`%B...^...^...?`, `;PAN=...?`) becomes `[track]`. The code never logs a PAN or a
PIN on purpose (see docs/security.md); this is the second line of defence, so a bug that
logs one still cannot leak it through the management channel.
"""

import collections
import logging
import re

DEFAULT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Track 1 (%B PAN ^ NAME ^ YYMM SVC DISCRETIONARY ?) and track 2 (; PAN = YYMM ... ?).
_TRACK = re.compile(r"%B\d{6,19}\^[^^\n]{0,26}\^[^?\n]*\??|;\d{6,19}=[\dA-Fa-f]*\??")
# 13 or more digits (a PAN is 13..19; a longer run may hold one), a single space or dash
# allowed between digits, not glued to other digits.
_PAN = re.compile(r"(?<![\d])\d(?:[ -]?\d){12,}(?![\d])")


def _mask_match(match):
    text = match.group(0)
    digits = [c for c in text if c.isdigit()]
    if len(digits) < 13:
        return text
    return "".join(digits[:6]) + "*" * (len(digits) - 10) + "".join(digits[-4:])


def mask_pans(text):
    """Mask every PAN-looking digit run and every track-looking string in `text`."""
    if not text:
        return text
    text = _TRACK.sub("[track]", text)
    return _PAN.sub(_mask_match, text)


def mask_value(value):
    """mask_pans over the strings of a JSON-like value (dicts, lists, scalars)."""
    if isinstance(value, str):
        return mask_pans(value)
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(v) for v in value]
    return value


class LogBuffer(logging.Handler):
    """A logging.Handler keeping the last `capacity` formatted, masked lines.

    Each stored line has a sequence number (1, 2, ...) so a client can ask for what came
    after the last line it saw (`since`), even after older lines were dropped."""

    def __init__(self, capacity=1000, level=logging.NOTSET, fmt=DEFAULT_FORMAT):
        logging.Handler.__init__(self, level)
        self.capacity = capacity
        self.setFormatter(logging.Formatter(fmt))
        self._lines = collections.deque(maxlen=capacity)  # (seq, text)
        self._seq = 0

    def emit(self, record):
        try:
            text = mask_pans(self.format(record))
        except Exception:  # a broken log call must not break the caller
            self.handleError(record)
            return
        # Handler.handle() holds self.lock around emit(): appends are serialized.
        for line in text.splitlines() or [""]:
            self._seq += 1
            self._lines.append((self._seq, line))

    def lines(self, n=None, since=None):
        """The newest `n` lines (all kept when n is None), or only those with a sequence
        number > `since`. Returns (list of str, next since value)."""
        self.acquire()
        try:
            kept = list(self._lines)
            seq = self._seq
        finally:
            self.release()
        if since is not None:
            kept = [item for item in kept if item[0] > since]
        if n is not None:
            kept = kept[-n:] if n > 0 else []
        return [text for _, text in kept], seq

    def clear(self):
        self.acquire()
        try:
            self._lines.clear()
        finally:
            self.release()


_installed = {}  # logger name -> LogBuffer


def install(logger_name="", capacity=1000, level=logging.NOTSET):
    """Attach one LogBuffer to a logger (the root by default) and return it; calling it
    again returns the same buffer. It only receives what the logger's level lets through:
    set the `kapos` logger to INFO (config `log.level`) to keep transaction lines."""
    buffer = _installed.get(logger_name)
    if buffer is None:
        buffer = LogBuffer(capacity=capacity, level=level)
        logging.getLogger(logger_name).addHandler(buffer)
        _installed[logger_name] = buffer
    return buffer


def installed(logger_name=""):
    """The buffer install() attached to that logger, or None."""
    return _installed.get(logger_name)


def uninstall(logger_name=""):
    buffer = _installed.pop(logger_name, None)
    if buffer is not None:
        logging.getLogger(logger_name).removeHandler(buffer)
    return buffer
