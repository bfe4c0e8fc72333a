"""RemoteTarget: a scenario Target driving a terminal through its management channel.

    target = await RemoteTarget.connect("10.0.0.7:7700", token="s3cret")   # or "serial:/dev/ttyUSB0"
    await Player(target).play(scenario)
    await target.close()

Inputs become `inject` requests (the terminal must be in test mode; `insert`/`remove` also
need a chip slot that takes injected cards, which hello's `injectable` lists); snapshots come from
`snapshot` (one round trip: screen, state, and the results, receipts and beeps with their
running totals). `wait_change` polls every 20 ms until the terminal's change counter
moves. Results, receipts and beeps count from the moment the target connected, as for an
in-process LocalTarget.
"""

import asyncio

from kapos.app.scenario import Target
from kapos.errors import ScenarioError

from kapos_tools.diag.client import ManagementClient, ManagementError

POLL = 0.02

HINTS = {
    "key": "press the keys on the terminal",
    "swipe": "swipe a card physically",
    "tap": "tap a card physically",
    "tamper": "open the case (trip the tamper switch) by hand",
    "insert": "insert and remove the chip card by hand",
}


# the inject fields a terminal takes in test mode when its hello has no "injectable" list
INJECTABLE_BEFORE_CHIP = ("key", "swipe", "swipe_raw", "tap", "tap_uid", "tamper")


class InjectionUnavailable(ScenarioError):
    """The terminal does not take injected input: the step needs a person (or a robot)."""


class RemoteTarget(Target):
    def __init__(self, client, poll=POLL):
        self.client = client
        self.poll = poll
        hello = client.hello or {}
        self.board = hello.get("board")
        self.test_mode = bool(hello.get("test_mode"))
        # what `inject` takes here (a terminal older than the field: everything but the chip slot)
        self.injectable = set(hello.get("injectable", INJECTABLE_BEFORE_CHIP if self.test_mode else ()))
        self.results, self.receipts, self.beeps = [], [], []
        self._totals = None  # results/receipts/beeps totals at the last snapshot
        self._seq = None
        self._fresh = None  # a snapshot wait_change fetched and snapshot() has not returned

    @classmethod
    async def connect(cls, where, token=None, poll=POLL):
        client = await ManagementClient.open(where, token=token)
        target = cls(client, poll)
        try:
            await target._fetch()  # the baseline: count from now on
        except BaseException:
            await client.close()
            raise
        return target

    def can_inject(self, verb):
        return self.test_mode and verb in self.injectable  # scenario verbs name inject fields

    def injection_refusal(self, verb):
        if self.test_mode:  # in test mode, but this input has no injectable device
            return "the terminal at %s (board %s) cannot take an injected %s: %s" % (
                self.client.where, self.board, verb, HINTS.get(verb, "do it by hand"))
        return "the terminal at %s does not accept injected input (not in test mode): %s" % (
            self.client.where, HINTS.get(verb, "do it by hand"))

    async def close(self):
        await self.client.close()

    # ------------------------------------------------------------ inputs

    async def _inject(self, verb, **fields):
        if not self.test_mode:
            raise InjectionUnavailable(self.injection_refusal(verb))
        try:
            await self.client.call("inject", **fields)
        except ManagementError as exc:
            raise ScenarioError("inject %s refused: %s" % (verb, exc))

    async def press(self, key):
        await self._inject("key", key=key)

    async def swipe(self, card_id=None, raw=None):
        if raw is not None:
            await self._inject("swipe", swipe_raw=raw)
        else:
            await self._inject("swipe", swipe=card_id)

    async def tap(self, card_id=None, uid=None, profile=None):
        # profile: an emulated card's personality; a real terminal's card is what it is
        if uid is not None:
            await self._inject("tap", tap_uid=uid)
        else:
            await self._inject("tap", tap=card_id)

    async def insert(self, card_id, profile=None):
        if profile is None:
            await self._inject("insert", insert=card_id)
        else:
            await self._inject("insert", insert=card_id, profile=profile)

    async def remove(self):
        await self._inject("insert", remove=True)

    async def tamper(self, source):
        await self._inject("tamper", tamper=source)

    # ------------------------------------------------------------ observing

    async def snapshot(self):
        if self._fresh is not None:
            snap, self._fresh = self._fresh, None
            return snap
        return await self._fetch()

    async def _fetch(self):
        try:
            reply = await self.client.call("snapshot")
        except ManagementError as exc:
            raise ScenarioError("snapshot failed: %s" % exc)
        totals = {"results": reply.get("results_total") or 0, "receipts": reply.get("receipts_total") or 0,
                  "beeps": reply.get("beeps_total") or 0}
        if self._totals is not None:
            _extend(self.results, reply.get("results") or [], totals["results"] - self._totals["results"])
            _extend(self.receipts, reply.get("receipts") or [], totals["receipts"] - self._totals["receipts"])
            _extend(self.beeps, reply.get("beeps") or [], totals["beeps"] - self._totals["beeps"])
        self._totals = totals
        self._seq = reply.get("seq")
        return {"screen": reply.get("screen") or "", "state": reply.get("state"),
                "results": list(self.results), "receipts": list(self.receipts), "beeps": list(self.beeps)}

    async def wait_change(self, timeout):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        start = self._seq
        while True:
            remaining = deadline - loop.time()
            await asyncio.sleep(max(0.0, min(self.poll, remaining)))
            snap = await self._fetch()
            if self._seq != start or loop.time() >= deadline:
                self._fresh = snap
                return

    async def reset_to_idle(self, timeout=15.0):
        """Bring a long-running terminal back to IDLE before a scenario (CANCEL, or any
        key on a result screen), so one failed scenario does not fail the next ones."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            snap = await self._fetch()
            if snap["state"] == "IDLE":
                if self.can_inject("insert"):  # a card a failed scenario left in the slot
                    await self.remove()
                await self._fetch()  # new baseline
                return
            if snap["state"] == "LOCKED":
                raise ScenarioError("the terminal is LOCKED after a tamper: re-key it (kapos keys load) "
                                    "before running scenarios")
            if loop.time() > deadline:
                raise ScenarioError("the terminal did not return to IDLE within %.0f s (state %s)"
                                    % (timeout, snap["state"]))
            if self.test_mode and snap["state"] not in ("AUTHORIZING", "SEALING", "TECH_WAIT"):
                await self.press("CANCEL")
            await asyncio.sleep(0.2)


def _extend(kept, latest, new):
    """Append the `new` newest of `latest` to `kept` (placeholders if some were missed;
    nothing if the terminal restarted and its totals went down)."""
    if new <= 0:
        return
    if new > len(latest):
        kept.extend(["(not seen)"] * (new - len(latest)))
        kept.extend(latest)
    else:
        kept.extend(latest[len(latest) - new:])
