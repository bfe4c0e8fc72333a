"""The ledger's per-message shortcuts give what the general code gives: the effects
column's JSON, a request's fingerprint (stored: a repeat after an upgrade must still match
its row) and field 48's checked items, on random and bad inputs."""

import hashlib
import json
import random

from kapos.host import private48
from kapos_tools.host import ledger as L


def test_the_effects_column_is_the_json_of_its_daily_counts():
    """ledger._effects_json writes its usual shape without json's encoder: the same text."""
    rnd = random.Random(15)
    alphabet = "0123456789TK:abcdef\"\\\u00e9\u2603 \x01"
    for _ in range(500):
        shape = rnd.randrange(4)
        key = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(20)))
        row = [key, "%08d" % rnd.randrange(10 ** 8), rnd.randrange(-10 ** 12, 10 ** 12)]
        daily = [[], [row], [row, list(row)], [[key, True, 1.5]]][shape]
        assert L._effects_json(daily) == json.dumps({"daily": daily})
        assert json.loads(L._effects_json(daily)) == {"daily": daily}


def test_a_requests_fingerprint_is_the_one_rows_already_stored_carry():
    """The txns column `fingerprint` outlives upgrades (a repeat after one must still
    match its row): ledger._fingerprint against the formula it has always had."""
    def reference(message):
        parts = [message["mti"][:3] + "0" if message["mti"][3] in "01" else message["mti"]]
        for number in sorted(k for k in message if k not in ("mti", 52, 53, 64, 128)):
            value = message[number]
            parts.append("%d=%s" % (number, value.hex() if type(value) is bytes else value))
        return hashlib.sha256("|".join(parts).encode()).hexdigest()

    rnd = random.Random(15)
    for _ in range(300):
        message = {"mti": rnd.choice(("0200", "0201", "0100", "0220", "0221"))}
        for number in rnd.sample(range(2, 129), rnd.randrange(1, 20)):
            message[number] = rnd.choice((
                "".join(rnd.choice("0123456789ABC =|\u00e9") for _ in range(rnd.randrange(12))),
                bytes(rnd.randrange(256) for _ in range(rnd.randrange(9))), rnd.randrange(10 ** 6)))
        assert L._fingerprint(message) == reference(message)
        if message["mti"] == "0200":  # its repeat is the same request
            assert L._fingerprint(dict(message, mti="0201")) == reference(message)


def test_field_48_items_kept_per_text_are_what_parsing_it_gives():
    """ledger._private_items keeps private48.parse's result per field 48 text: the same
    items or the same refusal, a copy each time, for texts seen again and new ones."""
    def parsed(message):
        try:
            return private48.parse(message)
        except private48.BadPrivateData as exc:
            return "refused: %s" % exc

    def kept(message):
        try:
            return L._private_items(message)
        except private48.BadPrivateData as exc:
            return "refused: %s" % exc

    rnd = random.Random(48)
    texts = ["BN006000001", "BN006000002FE012000000000080", "BN00600000", "XX003abc",
             "BN006000001BN006000001", "FE012000000000080", "", "BN0060000x1"]
    for _ in range(2000):
        if rnd.random() < 0.3:  # new texts too, past the number kept
            texts.append("BN006%06d" % rnd.randrange(10 ** 6))
        message = {48: rnd.choice(texts)} if rnd.random() < 0.95 else {}
        assert kept(message) == parsed(message)
    items = L._private_items({48: "BN006000001"})
    items["BN"] = "changed"
    assert L._private_items({48: "BN006000001"}) == {"BN": "000001"}


def test_field_48_less_its_card_data_is_what_packing_the_other_items_gives():
    """mac._without_item cuts the EC item out of field 48 when the other items are in
    sorted order, instead of packing them again: the same text either way (the fingerprint
    and the stored rows see it), in any order and at any position."""
    from kapos_tools.host import mac

    rnd = random.Random(48)
    tags = ["BN", "EC", "FE", "TK", "TA", "TD", "A1", "Z9"]
    for _ in range(500):
        chosen = rnd.sample(tags, rnd.randrange(1, len(tags) + 1))
        if rnd.random() < 0.5:
            chosen.sort()
        if "EC" not in chosen:
            chosen.insert(rnd.randrange(len(chosen) + 1), "EC")
        items = [(tag, "".join(rnd.choice("0123456789ABCDEF") for _ in range(rnd.randrange(0, 40))))
                 for tag in chosen]
        text = "".join("%s%03d%s" % (tag, len(value), value) for tag, value in items)
        parsed = private48.unpack(text)
        rest = sorted((tag, value) for tag, value in items if tag != "EC")
        assert mac._without_item(text, parsed, "EC") == private48.pack(rest)
