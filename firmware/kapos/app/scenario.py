"""Scenario scripts: the shared test language of the simulator, `make test` and HIL.

A scenario is a text file, one step per line (full grammar in docs/scenarios.md):

    config timeouts.card = 2      # settings for this run (before the first action)
    key 1                         # a logical key: 0-9 ENTER CLEAR CANCEL MENU
    keys 1235                     # digits (or names separated by spaces)
    swipe visa-debit              # a built-in test card, or: swipe raw "%B...?"
    tap token                     # a test card presented by NFC, or: tap uid 04A1B2C3
    tap emv-tap blocked-first     # ... as an emulated EMV card of that profile (sim-nfc)
    insert emv-tap mchip          # a test card into the chip slot (profile optional; sim-nfc)
    remove                        # the card out of the chip slot
    wait 0.5                      # seconds
    tamper "case opened"          # trip the enclosure tamper switch
    timeout 5                     # how long the following expectations may wait
    expect screen "APPROVED"      # the screen contains the text (waits; line breaks = spaces)
    expect no screen "ERROR"      # ... does not contain it (checked now)
    expect state IDLE
    expect result approved        # the next finished transaction: approved | declined | cancelled | error
    expect receipt "TOTAL"        # the newest receipt contains the text (waits)
    expect receipts 1             # number of receipts printed so far
    expect beep error             # a beep of that kind happened since the last beep check

A Target runs the steps: in process on the simulated board (kapos.local_target) or on a
remote terminal through the management channel. The player only awaits the target.
"""

import asyncio
import shlex

from kapos.core import keys
from kapos.errors import KaposError, ScenarioError

ACTIONS = ("key", "keys", "swipe", "tap", "insert", "remove", "wait", "tamper")
EXPECTS = ("screen", "no", "state", "result", "receipt", "receipts", "beep")
RESULTS = ("approved", "declined", "cancelled", "error")


class Step:
    def __init__(self, line_no, verb, args, source):
        self.line_no = line_no
        self.verb = verb
        self.args = args
        self.source = source

    def __repr__(self):
        return "line %d: %s" % (self.line_no, self.source)


class Scenario:
    def __init__(self, name, steps, config, clock=None, config_lines=None, clock_line=None):
        self.name = name
        self.steps = steps
        self.config = config  # [(dotted key, value text)]
        self.clock = clock  # ISO time text or None
        self.config_lines = config_lines or [0] * len(config)  # line of each config entry
        self.clock_line = clock_line

    def check(self, card_ids, states, check_config=None, check_clock=None):
        """Refuse what parse() cannot know by itself, naming the line: an unknown test
        card or state, a config key or value the terminal's config refuses, a bad clock.
        `check_config(key, value)` / `check_clock(text)` raise KaposError when wrong."""
        for (key, value), line_no in zip(self.config, self.config_lines):
            if check_config is not None:
                try:
                    check_config(key, value)
                except KaposError as exc:
                    _fail(line_no, str(exc))
        if self.clock is not None and check_clock is not None:
            try:
                check_clock(self.clock)
            except KaposError as exc:
                _fail(self.clock_line or 0, str(exc))
        for step in self.steps:
            if step.verb in ("swipe", "tap", "insert") and step.args[0] not in ("raw", "uid") \
                    and step.args[0] not in card_ids:
                _fail(step.line_no, "unknown test card %r (known: %s)"
                      % (step.args[0], ", ".join(sorted(card_ids))))
            if step.verb == "expect" and step.args[0] == "state" and step.args[1] not in states:
                _fail(step.line_no, "unknown state %r (known: %s)"
                      % (step.args[1], ", ".join(sorted(states))))


def _fail(line_no, message):
    raise ScenarioError("line %d: %s" % (line_no, message))


def parse(text, name="scenario"):
    steps, config, clock = [], [], None
    config_lines, clock_line = [], None
    for line_no, raw in enumerate(text.splitlines(), 1):
        try:
            words = shlex.split(raw, comments=True)
        except ValueError as exc:
            _fail(line_no, "cannot read line: %s" % exc)
        if not words:
            continue
        verb, args = words[0].lower(), words[1:]
        if verb == "config":
            if steps:
                _fail(line_no, "config lines must come before the first step")
            joined = " ".join(args)
            if "=" not in joined:
                _fail(line_no, "config needs KEY = VALUE")
            key, value = joined.split("=", 1)
            config.append((key.strip(), value.strip()))
            config_lines.append(line_no)
            continue
        if verb == "clock":
            if len(args) != 1:
                _fail(line_no, "clock needs one ISO time, e.g. 2026-11-25T10:00:00")
            clock, clock_line = args[0], line_no
            continue
        if verb == "key":
            if len(args) != 1 or not keys.is_key(args[0].upper() if len(args[0]) > 1 else args[0]):
                _fail(line_no, "key needs one of: 0-9 %s" % " ".join(keys.FUNCTION_KEYS))
            args = [args[0].upper() if len(args[0]) > 1 else args[0]]
        elif verb == "keys":
            names = []
            for word in args:
                if word.isdigit():
                    names.extend(word)
                elif keys.is_key(word.upper()):
                    names.append(word.upper())
                else:
                    _fail(line_no, "not a key: %r" % word)
            if not names:
                _fail(line_no, "keys needs at least one key")
            args = names
        elif verb in ("swipe", "tap"):
            if not args:
                _fail(line_no, "%s needs a test card id" % verb)
            if args[0] == "raw" and len(args) != 2 or args[0] == "uid" and len(args) != 2:
                _fail(line_no, "%s %s needs one value" % (verb, args[0]))
            if args[0] not in ("raw", "uid") and not (len(args) == 1 or verb == "tap" and len(args) == 2):
                _fail(line_no, "%s needs one test card id" % verb)
            if verb == "tap" and args[0] == "uid" and not _is_uid(args[1]):
                _fail(line_no, "tap uid needs 4, 7 or 10 bytes in hex, e.g. 04A1B2C3")
        elif verb == "insert":
            if len(args) not in (1, 2) or args[0] in ("raw", "uid"):
                _fail(line_no, "insert needs a test card id and, optionally, a chip profile")
        elif verb == "remove":
            if args:
                _fail(line_no, "remove takes nothing (the card in the chip slot comes out)")
        elif verb == "wait":
            args = [_number(line_no, args, "wait")]
        elif verb == "tamper":
            args = [" ".join(args) or "enclosure opened"]
        elif verb == "timeout":
            args = [_number(line_no, args, "timeout")]
        elif verb == "expect":
            args = _parse_expect(line_no, args)
        else:
            _fail(line_no, "unknown step %r" % verb)
        steps.append(Step(line_no, verb, args, raw.strip()))
    return Scenario(name, steps, config, clock, config_lines, clock_line)


def _is_uid(text):
    """ISO 14443-3 UIDs are 4, 7 or 10 bytes."""
    return len(text) in (8, 14, 20) and all(c in "0123456789abcdefABCDEF" for c in text)


def _number(line_no, args, verb):
    try:
        value = float(args[0])
    except (IndexError, ValueError):
        _fail(line_no, "%s needs a number of seconds" % verb)
    if value < 0 or value > 3600:
        _fail(line_no, "%s must be 0 to 3600 seconds" % verb)
    return value


def _parse_expect(line_no, args):
    if not args or args[0] not in EXPECTS:
        _fail(line_no, "expect needs one of: %s" % ", ".join(EXPECTS))
    what = args[0]
    if what == "no":
        if len(args) != 3 or args[1] != "screen":
            _fail(line_no, 'expect no screen "TEXT"')
        return ["no_screen", args[2]]
    if len(args) != 2:
        _fail(line_no, "expect %s needs one value" % what)
    if what == "result" and args[1] not in RESULTS:
        _fail(line_no, "expect result needs one of: %s" % ", ".join(RESULTS))
    if what == "receipts" and not args[1].isdigit():
        _fail(line_no, "expect receipts needs a count")
    return args


class Target:
    """What a scenario drives. Snapshots are dicts:
    screen (text), state, results (list of outcomes, oldest first), receipts (list of
    receipt texts, oldest first), beeps (list of tones, oldest first)."""

    async def press(self, key):
        raise NotImplementedError

    async def swipe(self, card_id=None, raw=None):
        raise NotImplementedError

    async def tap(self, card_id=None, uid=None, profile=None):
        """`profile`: the emulated EMV personality (ports/sim/emv_cards.py) where the
        board emulates the card; a real card is what it is."""
        raise NotImplementedError

    async def insert(self, card_id, profile=None):
        """A test card into the contact chip slot (an emulated EMV card of `profile`)."""
        raise NotImplementedError

    async def remove(self):
        raise NotImplementedError

    async def tamper(self, source):
        raise NotImplementedError

    async def snapshot(self):
        raise NotImplementedError

    async def wait_change(self, timeout):
        """Return after something changed, or after `timeout` seconds."""
        await asyncio.sleep(min(timeout, 0.05))


class Player:
    def __init__(self, target, default_timeout=5.0, log=None):
        self.target = target
        self.timeout = default_timeout
        self.log = log or (lambda text: None)
        self._results_seen = 0
        self._beeps_seen = 0

    async def play(self, scenario):
        start = await self.target.snapshot()
        self._results_seen = len(start["results"])
        self._beeps_seen = len(start.get("beeps", []))
        for step in scenario.steps:
            self.log(repr(step))
            await self.run_step(step)

    async def run_step(self, step):
        verb, args = step.verb, step.args
        if verb == "key":
            await self.target.press(args[0])
        elif verb == "keys":
            for key in args:
                await self.target.press(key)
        elif verb == "swipe":
            if args[0] == "raw":
                await self.target.swipe(raw=args[1])
            else:
                await self.target.swipe(card_id=args[0])
        elif verb == "tap":
            if args[0] == "uid":
                await self.target.tap(uid=args[1])
            elif len(args) == 2:
                await self.target.tap(card_id=args[0], profile=args[1])
            else:
                await self.target.tap(card_id=args[0])
        elif verb == "insert":
            await self.target.insert(args[0], args[1] if len(args) == 2 else None)
        elif verb == "remove":
            await self.target.remove()
        elif verb == "wait":
            await asyncio.sleep(args[0])
        elif verb == "tamper":
            await self.target.tamper(args[0])
        elif verb == "timeout":
            self.timeout = args[0]
        elif verb == "expect":
            await self.expect(step)

    async def expect(self, step):
        what, value = step.args[0], step.args[1]
        if what == "no_screen":
            snap = await self.target.snapshot()
            if _flat(value) in _flat(snap["screen"]):
                raise ScenarioError("%r failed: the screen shows %r" % (step, snap["screen"]))
            return
        check = getattr(self, "_check_" + what)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            snap = await self.target.snapshot()
            ok, seen = check(snap, value)
            if ok:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ScenarioError("%r failed after %.1f s: %s" % (step, self.timeout, seen))
            await self.target.wait_change(remaining)

    def _check_screen(self, snap, text):
        return _flat(text) in _flat(snap["screen"]), "screen was %r" % snap["screen"]

    def _check_state(self, snap, state):
        return snap["state"] == state, "state was %s" % snap["state"]

    def _check_result(self, snap, outcome):
        results = snap["results"]
        if len(results) <= self._results_seen:
            return False, "no transaction finished (last: %s)" % (results[-1] if results else "none")
        got = results[self._results_seen]
        self._results_seen += 1
        if got != outcome:
            raise ScenarioError("expect result %s failed: the transaction ended %s" % (outcome, got))
        return True, got

    def _check_receipt(self, snap, text):
        receipts = snap["receipts"]
        if not receipts:
            return False, "no receipt printed"
        return text in receipts[-1], "newest receipt was:\n%s" % receipts[-1]

    def _check_receipts(self, snap, count):
        return len(snap["receipts"]) == int(count), "%d receipts printed" % len(snap["receipts"])

    def _check_beep(self, snap, tone):
        beeps = snap.get("beeps", [])
        new = beeps[self._beeps_seen:]
        if tone in new:
            self._beeps_seen = len(beeps)
            return True, tone
        return False, "beeps since last check: %s" % (", ".join(new) or "none")


def _flat(text):
    """Screen text compares with runs of white space (and line breaks) as one space:
    a message may wrap differently on another display width."""
    return " ".join(text.split())


def load(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise ScenarioError("cannot read scenario %s: %s" % (path, exc.strerror))
    return parse(text, name=path)
