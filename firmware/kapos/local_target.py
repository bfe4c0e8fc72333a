"""The in-process scenario target: drives a Terminal on the simulated board directly."""

import asyncio

from kapos.app.scenario import Target
from kapos.errors import ConfigError, ScenarioError
from kapos.hal import Tap


class LocalTarget(Target):
    def __init__(self, terminal, testcards):
        self.terminal = terminal
        self.testcards = testcards
        self.results = []
        self.receipt_texts = []
        self._changed = asyncio.Event()
        terminal.observers.append(self._observe)

    def _observe(self, kind, payload):
        if kind == "result":
            self.results.append(payload)
        elif kind == "receipt":
            self.receipt_texts.append(payload.text())
        self._changed.set()

    def _device(self, name):
        device = self.terminal.platform.get(name)
        if device is None or not hasattr(device, "inject"):
            raise ScenarioError("this board cannot inject into its %s" % name)
        return device

    def _card(self, card_id):
        card = self.testcards.get(card_id)
        if card is None and not self.testcards:
            raise ScenarioError("test card %r: this board's card readers are real (test cards are "
                                "loaded on a simulated board only): present the card by hand" % card_id)
        if card is None:
            raise ScenarioError("unknown test card %r (known: %s)" % (card_id, ", ".join(sorted(self.testcards))))
        return card

    async def _settle(self):
        await asyncio.sleep(0)  # let the reader task queue the event

    async def press(self, key):
        self._device("keypad").inject(key)
        await self._settle()

    async def swipe(self, card_id=None, raw=None):
        if raw is None:
            raw = self._card(card_id).swipe_text()
        self._device("magstripe").inject(raw)
        await self._settle()

    async def tap(self, card_id=None, uid=None, profile=None):
        tap = tap_for(self._card(card_id)) if uid is None else Tap(bytes.fromhex(uid))
        tap.profile = profile  # the sim-nfc board's emulated EMV card (ports/sim/emv_cards.py)
        self._device("nfc").inject(tap)
        await self._settle()

    async def insert(self, card_id, profile=None):
        card = self._card(card_id)
        slot = self._device("chip")
        if not getattr(card, "pan", None) or getattr(card, "token", None):
            raise ScenarioError("test card %r has no chip (no PAN)" % card_id)
        track2 = card.track2_equivalent()
        try:
            slot.insert(track2, profile)
        except ConfigError as exc:
            raise ScenarioError(str(exc))
        await self._settle()

    async def remove(self):
        self._device("chip").remove()
        await self._settle()

    async def tamper(self, source):
        self._device("tamper").inject(source)
        await self._settle()

    async def snapshot(self):
        screen = self.terminal.screen
        buzzer = self.terminal.platform.get("buzzer")
        return {"screen": screen.text() if screen else "", "state": self.terminal.state,
                "results": list(self.results), "receipts": list(self.receipt_texts),
                "beeps": list(buzzer.beeps) if buzzer is not None else []}

    async def wait_change(self, timeout):
        self._changed.clear()
        try:
            # beeps do not notify observers: look again soon even without a change
            await asyncio.wait_for(self._changed.wait(), min(timeout, 0.05))
        except asyncio.TimeoutError:
            pass


def tap_for(card):
    """The Tap an NFC reader produces for a test card."""
    try:
        return card.tap()
    except ConfigError as exc:
        raise ScenarioError(str(exc))
