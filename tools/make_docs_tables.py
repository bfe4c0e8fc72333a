#!/usr/bin/env python3
"""Tables in the docs that are generated from the code, so they cannot drift:

- docs/diagnostics.md: the self-test checks, in the order `Diagnostics.selftest()` runs them;
- docs/scenarios.md: the scenario steps, each example parsed by `kapos.app.scenario.parse`,
  and the emulated chip profiles of `tap ID PROFILE` / `insert ID PROFILE` (ports/sim/emv_cards.py);
- README.md: the shipped boards, from the files in `boards/`.

    python tools/make_docs_tables.py --write   # rewrite the generated blocks (make docs)
    python tools/make_docs_tables.py --check   # exit 1 naming each block out of date (tests)

The prose for each row lives here; a check or a scenario verb the code has and this file
does not (or the other way round) is an error naming it, so a new one cannot go undocumented.
"""

import argparse
import asyncio
import os
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# check -> (what it tests, when it fails)
CHECK_DOCS = {
    "display": ("the OLED driver answers on its bus",
                "I2C/SPI wiring and address: `sudo i2cdetect -y 1` must show `3c` (or `3d`); `dtparam=i2c_arm=on`; "
                "see [wiring.md](wiring.md)"),
    "keypad": ("no key is held or shorted at start (matrix scan)",
               "the named keys are stuck or rows/columns short: check the ribbon, swap `row_pins`/`col_pins` if "
               "keys come out wrong"),
    "magstripe": ("the reader is open (evdev device or serial port)",
                  "reader unplugged or another program grabbed it: `ls /dev/input/by-id/`, `sudo evtest`; the "
                  "`input` group"),
    "nfc": ("the MFRC522's VersionReg reads the expected chip version",
            "`VersionReg reads 0x00` or `0xFF`: no answer - SPI off (`dtparam=spi=on`), CS/RST/MISO wiring, 3.3 V "
            "supply (never 5 V); another value: a different or clone chip; `NFC chip not found` (sim) = absent"),
    "printer": ("status query (DLE EOT): online and paper present",
                "`paper-out`: paper roll or cover; `offline`: power, TX/RX wiring, `baudrate`; `unknown` counts as "
                "OK when the printer cannot answer status"),
    "buzzer": ("the GPIO line is claimed", "`gpio` group, pin used twice (the board check names both users)"),
    "clock": ("the clock device reads a plausible time",
              "no network time yet (the Pi has no clock battery): `timedatectl`"),
    "tamper": ("the enclosure tamper switch reads closed",
               "`OPEN (tamper)`: the case is open or the switch unwired (an opening erases the keys and locks "
               "the terminal: re-key it); a read error: the switch's GPIO pin (`tamper` in the board file), "
               "the `gpio` group"),
    "host": ("an echo (network management message) to the host, with the round trip",
             "host address, link, TLS CA; `host unreachable` = no connection; a timeout = `timeouts.host` too short "
             "or the host down"),
    "keys": ("the DUKPT key store is loaded (its KSN shown, never a key)",
             "`no keys loaded (kapos keys load)`; `keys erased after tamper: re-key the terminal` - find out why the "
             "case was opened, then load keys ([security.md](security.md))"),
    "disk": ("more than 50 MB free where the journal and keys live",
             "clean up the SD card; `journalctl --vacuum-size=50M`"),
    "time": ("the terminal's time is between 2024 and 2100",
             "receipts and the daily limit use it: fix NTP before taking payments"),
    "software": ("the running software version, the previous one, the last update and what is pending "
                 "(only with `--update-root`; always OK)",
                 "never fails: read it before and after an update"),
}

# (example, meaning): the first word is the verb (for `expect`, the first two words).
STEP_DOCS = [
    ("config KEY = VALUE", "a config override for this run (`timeouts.card = 2`); only before the first step"),
    ("clock 2026-11-25T10:00:00", "start the simulated clock at this UTC time (deterministic receipts)"),
    ("key K", "one logical key: `0`-`9`, `ENTER`, `CLEAR`, `CANCEL`, `MENU`"),
    ("keys 1235 / keys 12 ENTER", "several keys: digit runs are split, names kept"),
    ('swipe ID / swipe raw "TEXT"',
     "a built-in test card (`firmware/kapos/simdata/testcards.toml`) or raw reader text"),
    ("tap ID / tap ID PROFILE / tap uid HEX", "a test card over NFC (on sim-nfc as an emulated EMV card of PROFILE: "
     "{tap_profiles}; see [the profiles](#emulated-chip-profiles)), or a bare UID (a closed-loop token)"),
    ("insert ID / insert ID PROFILE", "a test card into the contact chip slot (board sim-nfc): an emulated EMV "
     "card of PROFILE ({insert_profiles})"),
    ("remove", "the card out of the chip slot"),
    ("wait SECONDS", "sleep"),
    ('tamper / tamper "REASON"',
     "trip the enclosure tamper switch (reason default `enclosure opened`): keys erased, terminal locked"),
    ("timeout SECONDS", "how long later expectations may wait (default 5)"),
    ('expect screen "TEXT"',
     "the screen contains TEXT; waits for it. White space and line breaks compare as one space"),
    ('expect no screen "TEXT"', "the screen does not contain TEXT, now"),
    ("expect state STATE", "the machine is in STATE (see [state-machine.md](state-machine.md)); waits"),
    ("expect result R",
     "the next transaction to finish ended R: `approved`, `declined`, `cancelled` or `error`; waits"),
    ('expect receipt "TEXT"', "the newest printed receipt contains TEXT; waits"),
    ("expect receipts N", "N receipts printed since start; waits"),
    ("expect beep TONE", "a beep of TONE (`key`, `ok`, `error`) since the last beep check"),
]

# emulated chip profile -> what the card is (ports/sim/emv_cards.py PROFILES, plus the slot's `mute`)
PROFILE_DOCS = {
    "visa-qvsdc": "Visa credit, qVSDC: the cryptogram comes with GPO (the default)",
    "mchip": "Mastercard M/Chip: GENERATE AC after the records",
    "blocked-first": "its first AID (Mastercard) answers SELECT as blocked: the kernel drops it and pays "
                     "with the second (VISA DEBIT)",
    "two-apps": "two applications: Maestro (priority 1) and VISA DEBIT (priority 2)",
    "multi-confirm": "a debit card with three AIDs (`emv_debit_multi`), the first asking for cardholder "
                     "confirmation: the choice screen",
    "mute": "chip slot only: a dead chip answering 6F00 to everything (the fallback to the stripe)",
}
INSERT_ONLY = ("mute",)


def emulated_profiles():
    """The profile names the sim board knows, each with its row (or an error naming it)."""
    from kapos.ports.sim import chip_slot, emv_cards

    code = list(emv_cards.PROFILES) + [chip_slot.MUTE]
    undocumented = [p for p in code if p not in PROFILE_DOCS]
    stale = [p for p in PROFILE_DOCS if p not in code]
    if undocumented or stale:
        raise GeneratedDocError("chip profiles: add %s to / remove %s from PROFILE_DOCS in "
                                "tools/make_docs_tables.py" % (undocumented or "-", stale or "-"))
    default = emv_cards.DEFAULT_PROFILE
    return [default] + [p for p in code if p != default]


def profiles_table():
    rows = ["| profile | `tap` | `insert` | the emulated card |", "|---|---|---|---|"]
    for name in emulated_profiles():
        rows.append("| `%s` | %s | yes | %s |" % (name, "-" if name in INSERT_ONLY else "yes", PROFILE_DOCS[name]))
    return "\n".join(rows)


def _step_meaning(meaning):
    if "{" not in meaning:
        return meaning
    names = emulated_profiles()
    tap = ["%s%s" % (n, " (default)" if i == 0 else "") for i, n in enumerate(names) if n not in INSERT_ONLY]
    return meaning.format(tap_profiles=", ".join(tap), insert_profiles=", ".join(names))


# Concrete values for the placeholders, so that every example can be fed to the parser.
_SAMPLE = {"KEY = VALUE": "timeouts.card = 2", "K": "1", "ID": "visa-debit", '"TEXT"': '"x"', "HEX": "04A1B2C3",
           "SECONDS": "0.5", "STATE": "IDLE", "R": "approved", "N": "1", "TONE": "error", '"REASON"': '"x"'}


class GeneratedDocError(Exception):
    """The code and this file disagree (a row missing on one side)."""


def _marker(name):
    return ("<!-- generated by tools/make_docs_tables.py: %s (make docs); do not edit here -->" % name,
            "<!-- end of generated %s -->" % name)


# ---------------------------------------------------------------- self-test checks

class _BareTerminal:
    """Just enough of a Terminal for Diagnostics.selftest() to name every check it runs."""

    class platform:
        board = {"board": {"name": "docs"}}

        @staticmethod
        def get(name):
            return None

    class settings:
        timeouts = {"host": 1}

    authorizer = object()

    @staticmethod
    def now():
        return 1.8e9


def check_names(updates=True):
    """The checks `selftest()` runs, in order; `updates`: on a terminal run with --update-root."""
    from kapos.app.diagnostics import Diagnostics

    diagnostics = Diagnostics(_BareTerminal(), data_dir=ROOT)
    if updates:
        diagnostics.update_status = lambda: {"running": "-", "previous": "-", "last_update": "-", "pending": "-",
                                                    "parameters": "-"}
    return [c.name for c in asyncio.run(diagnostics.selftest())]


def checks_table():
    from kapos.app.diagnostics import ESSENTIAL

    names = check_names()
    undocumented = [n for n in names if n not in CHECK_DOCS]
    stale = [n for n in CHECK_DOCS if n not in names]
    if undocumented or stale:
        raise GeneratedDocError("self-test checks: add %s to / remove %s from CHECK_DOCS in "
                                "tools/make_docs_tables.py" % (undocumented or "-", stale or "-"))
    rows = ["| check | what it tests | when it fails |", "|---|---|---|"]
    for name in names:
        what, fails = CHECK_DOCS[name]
        rows.append("| `%s`%s | %s | %s |" % (name, " *" if name in ESSENTIAL else "", what, fails))
    rows.append("")
    rows.append("%d checks (%d with `--update-root`); * essential: the terminal cannot take payments without it."
                % (len(check_names(updates=False)), len(names)))
    return "\n".join(rows)


# ---------------------------------------------------------------- scenario steps

def parser_verbs():
    """Every step the parser accepts: its actions, its settings lines and each `expect` form."""
    from kapos.app import scenario

    return set(scenario.ACTIONS) | {"config", "clock", "timeout"} | {"expect " + e for e in scenario.EXPECTS}


def _verb(example):
    words = example.split()
    return " ".join(words[:2]) if words[0] == "expect" else words[0]


def _concrete(example):
    example = example.replace("KEY = VALUE", _SAMPLE["KEY = VALUE"])
    return " ".join(_SAMPLE.get(word, word) for word in example.split())


def steps_table():
    from kapos.app import scenario

    documented = set()
    for example, _ in STEP_DOCS:
        for form in example.split(" / "):
            documented.add(_verb(form))
            try:
                scenario.parse(_concrete(form) + "\n")
            except Exception as exc:  # the documented form is not what the parser reads
                raise GeneratedDocError("scenario step %r: the parser refuses it: %s" % (form, exc))
    verbs = parser_verbs()
    if verbs != documented:
        raise GeneratedDocError("scenario steps: add %s to / remove %s from STEP_DOCS in "
                                "tools/make_docs_tables.py" % (sorted(verbs - documented) or "-",
                                                               sorted(documented - verbs) or "-"))
    rows = ["| step | meaning |", "|---|---|"]
    for example, meaning in STEP_DOCS:
        rows.append("| %s | %s |" % (" / ".join("`%s`" % f for f in example.split(" / ")), _step_meaning(meaning)))
    return "\n".join(rows)


# ---------------------------------------------------------------- boards

def board_files():
    folder = os.path.join(ROOT, "boards")
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".toml"))


def boards_table():
    rows = ["| board | what it is |", "|---|---|"]
    for path in board_files():
        with open(path, "rb") as f:
            board = tomllib.load(f)["board"]
        rows.append("| `%s` | %s |" % (board["name"], board.get("description", "")))
    return "\n".join(rows)


# ---------------------------------------------------------------- the blocks

BLOCKS = [  # (file, block name, generator)
    ("docs/diagnostics.md", "self-test checks", checks_table),
    ("docs/scenarios.md", "scenario steps", steps_table),
    ("docs/scenarios.md", "emulated chip profiles", profiles_table),
    ("README.md", "boards", boards_table),
]


def render(text, name, body):
    """`text` with the generated block `name` replaced by `body`."""
    begin, end = _marker(name)
    if begin not in text or end not in text:
        raise GeneratedDocError("the markers of the generated %s block are missing" % name)
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + "\n" + body + "\n" + end + tail


def outdated(root=ROOT):
    """[(file, block name)] whose text differs from what the code generates now."""
    found = []
    for path, name, generate in BLOCKS:
        with open(os.path.join(root, path), encoding="utf-8") as f:
            text = f.read()
        if render(text, name, generate()) != text:
            found.append((path, name))
    return found


def write(root=ROOT):
    for path, name, generate in BLOCKS:
        full = os.path.join(root, path)
        with open(full, encoding="utf-8") as f:
            text = f.read()
        new = render(text, name, generate())
        if new != text:
            with open(full, "w", encoding="utf-8") as f:
                f.write(new)
            print("wrote the %s table in %s" % (name, path))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the generated blocks")
    mode.add_argument("--check", action="store_true", help="exit 1 if a generated block is out of date")
    args = parser.parse_args(argv)
    try:
        if args.write:
            write()
            return 0
        stale = outdated()
    except GeneratedDocError as exc:
        print("make_docs_tables: %s" % exc, file=sys.stderr)
        return 1
    for path, name in stale:
        print("make_docs_tables: the %s table in %s is out of date: run make docs" % (name, path), file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
