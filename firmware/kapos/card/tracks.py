"""ISO/IEC 7813 magnetic stripe tracks 1 and 2, as readers send them (ASCII).

Track 1: '%B' PAN(<=19) '^' NAME(2-26) '^' YYMM SSS discretionary '?' [LRC], <= 79 chars.
Track 2: ';' PAN(<=19) '=' YYMM SSS discretionary '?' [LRC], <= 40 chars, 0x30-0x3F only.
The limits count sentinels and the LRC (ISO/IEC 7813), so we count the LRC even when
the reader strips it.

LRC (ISO/IEC 7811-2): on the stripe each character is its data bits plus an odd
parity bit. The LRC character's data bits are the even parity, per bit position, of
the data bits of every character from the start sentinel through the end sentinel,
i.e. their XOR; its own parity bit is then computed over the LRC alone, so column
parity bits never enter it. Readers send characters as ASCII (track 1: data + 0x20,
6 bits; track 2: data + 0x30, 4 bits), so parity itself is not visible here.
"""

from kapos.errors import CardReadError, CardRejected
from kapos.card.model import Card, with_where

TRACK1_MAX = 79
TRACK2_MAX = 40
SWIPE_MAX = 512  # three full tracks and line ends fit easily

_STARTS = "%;+!"  # track 1; track 2 (and 3 in 5-bit mode); track 3 variants
_EOL = "\r\n"


def _lrc(text, base, mask):
    lrc = 0
    for c in text:
        lrc ^= (ord(c) - base) & mask
    return chr(lrc + base)


def track1_lrc(text):
    """LRC character for track 1 `text` = '%' ... '?' (6-bit set, char - 0x20)."""
    return _lrc(text, 0x20, 0x3F)


def track2_lrc(text):
    """LRC character for track 2 `text` = ';' ... '?' (4-bit set, char - 0x30)."""
    return _lrc(text, 0x30, 0x0F)


def _split_end(where, text, start, limit):
    """(body from start through '?', LRC char or '') after the structural checks."""
    if not text or text[0] != start:
        raise CardReadError(where + ": missing start sentinel")
    end = text.find("?")
    if end < 0:
        raise CardReadError(where + ": missing end sentinel")
    body, lrc = text[: end + 1], text[end + 1 :]
    if len(lrc) > 1:
        raise CardReadError(where + ": data after end sentinel")
    if len(body) + 1 > limit:
        raise CardReadError("%s: longer than %d characters" % (where, limit))
    return body, lrc


def parse_track1(text, private_prefixes=()):
    """Card from one track 1 string (sentinels included, LRC optional)."""
    where = "track 1"
    body, lrc = _split_end(where, text, "%", TRACK1_MAX)
    for i in range(1, len(body) - 1):
        c = body[i]
        if not (" " <= c <= "_"):
            raise CardReadError("%s: character outside 6-bit set at position %d" % (where, i))
        # '%' starts a track; ';' is how a reader starts track 2/3, so here it means
        # track 1's end sentinel was lost.
        if c in "%;":
            raise CardReadError(where + ": missing end sentinel")
    if lrc and lrc != track1_lrc(body):
        raise CardReadError(where + ": LRC mismatch")
    if len(body) < 3 or body[1] != "B":
        raise CardReadError(where + ": format code is not B")
    fields = body[2:-1].split("^", 2)
    if len(fields) != 3:
        raise CardReadError(where + ": missing field separator")
    pan, name, tail = fields
    if len(pan) > 19:
        raise CardReadError(where + ": PAN longer than 19 digits")
    if not 2 <= len(name) <= 26:
        raise CardReadError(where + ": name must be 2-26 characters")
    if len(tail) < 7:
        raise CardReadError(where + ": expiry or service code missing")
    try:
        return Card(pan, tail[:4], tail[4:7], name=name.strip(" "), source="swipe",
                    private_prefixes=private_prefixes)
    except (CardReadError, CardRejected) as e:
        raise with_where(where, e)


def parse_track2(text, private_prefixes=()):
    """Card from one track 2 string (sentinels included, LRC optional)."""
    where = "track 2"
    body, lrc = _split_end(where, text, ";", TRACK2_MAX)
    data = body[1:-1]
    for i in range(len(data)):
        c = data[i]
        if c in "%;":
            raise CardReadError(where + ": missing end sentinel")
        # 0x3A ':', 0x3C '<', 0x3E '>' are control characters, not data
        if c != "=" and not ("0" <= c <= "9"):
            raise CardReadError("%s: invalid character at position %d" % (where, i + 1))
    if lrc and lrc != track2_lrc(body):
        raise CardReadError(where + ": LRC mismatch")
    parts = data.split("=")
    if len(parts) < 2:
        raise CardReadError(where + ": missing field separator")
    if len(parts) > 2:
        raise CardReadError(where + ": extra field separator")
    pan, tail = parts
    if len(pan) > 19:
        raise CardReadError(where + ": PAN longer than 19 digits")
    if len(tail) < 7:
        raise CardReadError(where + ": expiry or service code missing")
    try:
        return Card(pan, tail[:4], tail[4:7], source="swipe", track2=data,
                    private_prefixes=private_prefixes)
    except (CardReadError, CardRejected) as e:
        raise with_where(where, e)


def _to_text(raw):
    """The swipe as str, after refusing anything but printable ASCII and CR/LF."""
    if not isinstance(raw, (str, bytes, bytearray)):
        raise TypeError("swipe data must be str or bytes")
    if len(raw) > SWIPE_MAX:
        raise CardReadError("swipe data longer than %d characters" % SWIPE_MAX)
    for i in range(len(raw)):
        b = ord(raw[i]) if isinstance(raw, str) else raw[i]
        if not (0x20 <= b <= 0x7E or b == 0x0D or b == 0x0A):
            raise CardReadError("non-printable character at offset %d" % i)
    if isinstance(raw, str):
        return raw
    return bytes(raw).decode("ascii")


def _has_lrc(text, k, expected):
    """Whether text[k], right after an end sentinel, is that track's LRC.

    A reader may strip the LRC, and an LRC can itself look like a start sentinel;
    a sentinel-looking character counts as the LRC only if it matches and what
    follows it cannot be track data.
    """
    if k >= len(text) or text[k] in _EOL:
        return False
    c = text[k]
    if c not in _STARTS:
        return True  # in the LRC position; the track parser verifies it
    if c != expected:
        return False
    return k + 1 >= len(text) or text[k + 1] in _EOL or text[k + 1] in _STARTS


def _split_swipe(text):
    """{1: track text or 'E', 2: ..., 3: ...}; 'E' marks a reader's read-error report."""
    tracks = {}
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _EOL:
            i += 1
            continue
        if c not in _STARTS:
            raise CardReadError("missing start sentinel (offset %d)" % i)
        if c == "%":
            num = 1
        elif c == ";" and 2 not in tracks:
            num = 2
        else:
            num = 3
        if num in tracks:
            raise CardReadError("track %d appears twice" % num)
        j = i + 1
        while j < n and text[j] != "?":
            if text[j] in "%;" or text[j] in _EOL:
                raise CardReadError("track %d: missing end sentinel" % num)
            j += 1
        if j >= n:
            raise CardReadError("track %d: missing end sentinel" % num)
        body = text[i : j + 1]
        if body[1:] == "E?":  # e.g. '%E?', ';E?': the reader could not read this track
            tracks[num] = "E"
            i = j + 1
            continue
        expected = None  # track 3 is skipped, its LRC unchecked
        if num == 1:
            expected = track1_lrc(body)
        elif num == 2:
            expected = track2_lrc(body)
        end = j + 2 if _has_lrc(text, j + 1, expected) else j + 1
        tracks[num] = text[i:end]
        i = end
    return tracks


def parse_swipe(raw, private_prefixes=()):
    """Card from what a magstripe reader sends for one swipe.

    Tracks 1, 2 (and 3, ignored) concatenated, optionally separated or followed by
    CR/LF; '%E?' / ';E?' mark tracks the reader could not read. Track 2 gives PAN,
    expiry and service code; track 1 the name. When both are readable they must agree.
    Raises CardReadError for malformed data, CardRejected for unusable service codes.
    """
    tracks = _split_swipe(_to_text(raw))
    t1, t2 = tracks.get(1), tracks.get(2)
    if t1 is None and t2 is None:
        raise CardReadError("no track 1 or track 2 data" if tracks else "no track data")
    if t1 in (None, "E") and t2 in (None, "E"):
        if t1 == "E" and t2 == "E":
            raise CardReadError("track 1 and track 2: reader error")
        raise CardReadError("track %d: reader error" % (1 if t1 == "E" else 2))
    card1 = parse_track1(t1, private_prefixes) if t1 not in (None, "E") else None
    card2 = parse_track2(t2, private_prefixes) if t2 not in (None, "E") else None
    if card2 is None:
        return card1
    if card1 is not None:
        if card1.pan_for_host() != card2.pan_for_host():
            raise CardReadError("PAN differs between track 1 and track 2")
        if card1.expiry != card2.expiry:
            raise CardReadError("expiry differs between track 1 and track 2")
        if card1.service_code != card2.service_code:
            raise CardReadError("service code differs between track 1 and track 2")
        card2.name = card1.name
        card1.wipe()
    return card2


def _check_charset(where, text, low, high):
    for c in text:
        if not (low <= c <= high):
            raise ValueError(where + ": character outside the track character set")


def build_track1(pan, name, yymm, sc, disc="", lrc=True):
    """Track 1 string as a reader would send it, with its LRC unless lrc=False.

    Not validated beyond the character set, so tests can build bad cards too.
    """
    body = "%B" + pan + "^" + name + "^" + yymm + sc + disc + "?"
    _check_charset("track 1", body, " ", "_")
    return body + track1_lrc(body) if lrc else body


def build_track2(pan, yymm, sc, disc="", lrc=True):
    """Track 2 string as a reader would send it, with its LRC unless lrc=False."""
    body = ";" + pan + "=" + yymm + sc + disc + "?"
    _check_charset("track 2", body, "0", "?")
    return body + track2_lrc(body) if lrc else body
