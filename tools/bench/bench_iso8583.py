"""Benchmark: pack + unpack of a typical 0200 with kapos.host.codec and with pyiso8583.

Both codecs encode the same fields (2,3,4,7,11,12,13,14,22,25,35,41,42,49,52,53,64) in
the same run, each with the same dialect (pyiso8583's `default` spec with our fields 52
and 53). Each figure is the best of 5 runs of about 0.5 s; one op = encode + decode. The
ratio is recomputed here every run, never quoted: the two codecs are timed in alternating
rounds, so a busy machine slows both alike, and the spread of the per-round ratios is shown.

    .venv/bin/python tools/bench/bench_iso8583.py
"""

import copy
import time

from kapos.host import codec

# A typical 0200: swiped card, PIN (AES format 4 block + AES DUKPT KSN), MAC in 64.
PIN_BLOCK = bytes.fromhex("8a3b7c1f22d9e04b5a6c7d8e9f012345")
KSN = bytes.fromhex("123456789012345600000001")
MAC = bytes.fromhex("0123456789abcdef")

OURS = {
    "mti": "0200",
    2: "4761739001010010",
    3: "000000",
    4: "000000012345",
    7: "1125143015",
    11: "000042",
    12: "153015",
    13: "1125",
    14: "2812",
    22: "021",
    25: "00",
    35: "4761739001010010=28122011143804400000",
    41: "KAPOS001",
    42: "MERCHANT0000001",
    49: "978",
    52: PIN_BLOCK,
    53: KSN,
    64: MAC,
}


def pyiso8583_spec():
    """pyiso8583's standard ASCII/binary spec with our two deviations (fields 52, 53)."""
    from iso8583.specs import default

    spec = copy.deepcopy(default)
    spec["52"] = dict(spec["52"], max_len=16)
    spec["53"] = {"data_enc": "b", "len_enc": "ascii", "len_type": 2, "max_len": 16,
                  "desc": "Security Related Control Information (KSN)"}
    return spec


def theirs_message():
    """The same message as pyiso8583 wants it: str keys, binary fields as hex strings."""
    doc = {"t": OURS["mti"]}
    for key, value in OURS.items():
        if key != "mti":
            doc[str(key)] = value.hex().upper() if isinstance(value, bytes) else value
    return doc


def _calibrate(fn, seconds):
    """Calls of `fn` that take about `seconds`."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        spent = time.perf_counter() - start
        if spent >= 0.05:
            return max(1, int(n * seconds / spent))
        n *= 2


def _once(fn, n):
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def _best(fn, seconds=0.5, repeat=5):
    """Best time per call (seconds) over `repeat` runs of about `seconds` each."""
    n = _calibrate(fn, seconds)
    return min(_once(fn, n) for _ in range(repeat))


def _alternating(a, b, seconds=0.5, rounds=5):
    """(best of a, best of b, [b/a per round]) with a and b timed in turn, round by round."""
    na, nb = _calibrate(a, seconds), _calibrate(b, seconds)
    times_a, times_b = [], []
    for _ in range(rounds):
        times_a.append(_once(a, na))
        times_b.append(_once(b, nb))
    return min(times_a), min(times_b), [tb / ta for ta, tb in zip(times_a, times_b)]


def main():
    import iso8583

    spec = pyiso8583_spec()
    doc = theirs_message()

    ours_bytes = codec.encode(OURS)
    theirs_bytes = bytes(iso8583.encode(dict(doc), spec)[0])
    assert ours_bytes == theirs_bytes, "the two codecs disagree on the wire format"
    assert codec.decode(theirs_bytes) == OURS

    def ours():
        codec.decode(codec.encode(OURS))

    def theirs():
        iso8583.decode(iso8583.encode(dict(doc), spec)[0], spec)

    ours_both, theirs_both, ratios = _alternating(ours, theirs)
    rows = [
        ("kapos.host.codec encode", _best(lambda: codec.encode(OURS))),
        ("kapos.host.codec decode", _best(lambda: codec.decode(ours_bytes))),
        ("kapos.host.codec encode+decode", ours_both),
        ("pyiso8583 encode", _best(lambda: iso8583.encode(dict(doc), spec))),
        ("pyiso8583 decode", _best(lambda: iso8583.decode(theirs_bytes, spec))),
        ("pyiso8583 encode+decode", theirs_both),
    ]
    print("typical 0200, %d bytes, %d fields; best of 5 x ~0.5 s; pyiso8583 %s"
          % (len(ours_bytes), len(OURS) - 1, getattr(iso8583, "__version__", "")))
    for name, per in rows:
        print("  %-32s %8.2f us/op" % (name, per * 1e6))
    ratio = theirs_both / ours_both
    print("  pyiso8583 / kapos (encode+decode), this run: %.2fx %s; per round %.2f-%.2fx"
          % (ratio, "(kapos faster)" if ratio >= 1 else "(kapos SLOWER)", min(ratios), max(ratios)))
    return ratio


if __name__ == "__main__":
    main()
