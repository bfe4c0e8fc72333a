"""The runtime side of the EMV kernel: real terminal data for the card in the field.

While the card screen is up, the NFC reader holds a session for this transaction
(type, amount, the terminal's date and time, currency and country from the config, a
fresh 9F37 from the OS CSPRNG for every card). The kernel runs on the reader's worker
thread, never on the loop; its Result rides on the Tap into the core, which puts field
55, 23 and the entry mode on the card for the host request. Off the card screen the
reader gets a TrackReader instead (kapos.emv.tap: the kernel's entry point, GPO and
records for the card number, with this terminal's data), so a card tapped at idle or in
the card test is not asked for a cryptogram.
"""

import asyncio
import logging
import os
import queue
import threading
import time

from kapos.core import commands as C
from kapos.core import events as E
from kapos.emv import apdu, kernel
from kapos.emv.tap import TrackReader
from kapos.emv.terminal import TXN_TYPES, TerminalConfig, Transaction
from kapos.errors import CardReadError, CardRejected
from kapos.nfc import tlv

log = logging.getLogger("kapos.chip")

# transaction types the kernel knows by 9C; others go as a purchase (00)
_KERNEL_TYPE = {name: name for name in TXN_TYPES}


def terminal_config(settings, random_bytes=os.urandom):
    """TerminalConfig from the core Settings (emv: country, limits)."""
    emv = getattr(settings, "emv", None) or {}
    return TerminalConfig(country=int(emv.get("country_code", "826")),
                          currency=int(settings.currency_code),
                          contactless_limit=emv.get("contactless_limit", 5000),
                          cvm_limit=emv.get("cvm_limit", 5000),
                          terminal_id=settings.terminal_id.encode()[:8],
                          random_bytes=random_bytes)


def kernel_transaction(kind, amount, epoch):
    """The kernel's Transaction: 9C from the type, 9A / 9F21 from the terminal's local time."""
    now = time.localtime(epoch)
    return Transaction(_KERNEL_TYPE.get(kind, "purchase"), int(amount or 0),
                       time.strftime("%y%m%d", now), time.strftime("%H%M%S", now))


class ChipSession:
    """Armed by the card screen, withdrawn by any other; `__call__(exchange)` is what
    the NFC worker runs on an ISO-DEP card.

    Cardholder choice on a tap (the kernel asks when a candidate wants confirmation or
    several share the top priority): the worker thread posts CHIP_CHOICE (tap=True) to the
    loop and waits, the card in the field, for CHOOSE_APP / END_CHIP (`execute`) or a
    screen that ends the choice; the same APP_CHOICE state as an inserted card."""

    COMMANDS = (C.CHOOSE_APP, C.END_CHIP)
    KEEP_CHOICE = ("card", "app_choice", "chip_wait")  # screens during which a pick may come

    def __init__(self, settings, clock=time.time, random_bytes=os.urandom, post=None):
        # settings: the core Settings, or a callable giving the current ones (a parameter
        # update replaces them: the next card gets the new limits)
        self._settings = settings if callable(settings) else (lambda: settings)
        self._random = random_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._txn = None  # (type, amount, ref) while the card screen is up
        self._post = post  # the runtime's post(kind, **data), loop thread only
        self._loop = None  # the loop follow() runs on (the kernel's thread posts through it)
        self._choice = None  # (ref, queue.Queue) while the kernel waits for the cardholder
        self._abandoned = False  # the wait ended without a pick (the sale is over)
        self.idle_reader = TrackReader(lambda: terminal_config(self._settings(), self._random),
                                       self._today)
        self.last = None  # the last Result (tests, diagnostics); no card data in its repr

    def follow(self, reader, screen, data):
        """The runtime calls this on every screen: arm on 'card', withdraw elsewhere."""
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
        if screen == "card" and data.get("amount") is not None:
            with self._lock:
                self._txn = (data.get("type"), int(data.get("amount") or 0), data.get("ref"))
            reader.set_emv_session(self)
        elif screen != "card":
            with self._lock:
                self._txn = None
            reader.set_emv_session(self.idle_reader)
            if screen not in self.KEEP_CHOICE:  # the sale ended: the kernel stops waiting
                self._answer(None, None, any_ref=True)

    def execute(self, command):
        """CHOOSE_APP (the cardholder's pick) and END_CHIP for a tap waiting for one."""
        if command.kind == C.CHOOSE_APP:
            self._answer(command.get("ref"), command.get("index"))
        elif command.kind == C.END_CHIP:
            self._answer(command.get("ref"), None)

    def _answer(self, ref, index, any_ref=False):
        waiting = self._choice
        if waiting is not None and (any_ref or waiting[0] == ref):
            waiting[1].put(index)

    def _choose(self, ref):
        """The kernel's choose() on the NFC worker thread: ask the loop, wait for the pick."""
        loop, post = self._loop, self._post
        if loop is None or post is None:  # no runtime to ask: the card's first choice
            return lambda candidates: candidates[0]

        def choose(candidates):
            picked = wait_for_pick(self, ref, candidates, lambda names: loop.call_soon_threadsafe(
                lambda: post(E.CHIP_CHOICE, ref=ref, names=names, tap=True)))
            if picked is None:
                self._abandoned = True
            return picked

        return choose

    def _today(self):
        now = time.localtime(self._clock())
        return time.strftime("%y%m%d", now), time.strftime("%H%M%S", now)

    def transaction(self):
        with self._lock:
            armed = self._txn
        if armed is None:
            return None
        kind, amount, _ = armed
        return kernel_transaction(kind, amount, self._clock())

    def __call__(self, exchange):
        with self._lock:
            armed = self._txn
        txn = self.transaction()
        if txn is None or armed is None:  # withdrawn between the poll and the read: no cryptogram
            return None
        config = terminal_config(self._settings(), self._random)
        self._abandoned = False
        try:
            result = kernel.run(apdu.Channel(exchange), config, txn, contactless=True,
                                choose=self._choose(armed[2]))
        except CardRejected:
            if self._abandoned:  # the sale ended while the cardholder chose: no tap to report
                return False
            raise
        self.last = result
        return result


CHOICE_WAIT_S = 120  # a kernel thread never waits longer than this for the cardholder's pick


def wait_for_pick(owner, ref, candidates, announce):
    """On the kernel's thread: `announce(names)` asks the loop, then wait for what the loop
    puts in `owner._choice` (CHOOSE_APP's index, None to give up). The Candidate, or None."""
    answers = queue.Queue()
    owner._choice = (ref, answers)
    announce([c.display_name() for c in candidates])
    try:
        index = answers.get(timeout=CHOICE_WAIT_S)
    except queue.Empty:
        index = None
    finally:
        owner._choice = None
    if index is None or not 0 <= index < len(candidates):
        return None
    return candidates[index]


class ContactChip:
    """The chip slot's side of the runtime (a card inserted in a contact reader: the sim
    slot or PC/SC). `watch()` turns insertion and removal into INSERT / REMOVE events;
    READ_CHIP runs the kernel (contact: PSE or the AID list) on a worker thread and
    answers CHIP_READ, asking the cardholder through CHIP_CHOICE / CHOOSE_APP when the
    card has several applications or wants confirmation; COMPLETE_CHIP sends the host's
    answer (8A and the ARPC in 91) in the second GENERATE AC and answers CHIP_DONE.
    The kernel's Result (card data) is kept only until the transaction ends."""

    COMMANDS = (C.READ_CHIP, C.CHOOSE_APP, C.COMPLETE_CHIP, C.END_CHIP)

    def __init__(self, slot, settings, post, clock=time.time, random_bytes=os.urandom):
        self.slot = slot
        self._settings = settings if callable(settings) else (lambda: settings)
        self._post = post  # the runtime's post(kind, **data), loop thread only
        self._clock = clock
        self._random = random_bytes
        self.card = None  # what the slot's wait_insert() gave, while it is in
        self._choice = None  # (ref, queue.Queue) while the kernel waits for the cardholder
        self._abandoned = False  # the wait ended without a pick (the sale is over)
        self._held = None  # (ref, Result, card) between the first and the second GENERATE AC
        self.last = None  # the last Result (tests); no card data in its repr

    async def watch(self):
        backoff = 0.5
        while True:
            try:
                card = await self.slot.wait_insert()
                self.card = card
                self._post(E.INSERT)
                await self.slot.wait_removal(card)
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a reader failing must not stop the terminal
                log.error("chip reader failed: %s", exc)
                self._post(E.HARDWARE_ERROR, device="chip", reason=str(exc) or type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            self.card = None
            self._held = None
            self._post(E.REMOVE)

    def execute(self, command, spawn):
        ref = command.get("ref")
        if command.kind == C.READ_CHIP:
            spawn(self._read(ref, command["type"], command["amount"]))
        elif command.kind == C.CHOOSE_APP:
            self._answer(ref, command.get("index"))
        elif command.kind == C.COMPLETE_CHIP:
            spawn(self._complete(ref, command.get("code") or "", command.get("icc")))
        elif command.kind == C.END_CHIP:
            self._answer(ref, None)
            if self._held is not None and self._held[0] == ref:
                self._held = None

    def _answer(self, ref, index):
        waiting = self._choice
        if waiting is not None and waiting[0] == ref:
            waiting[1].put(index)

    async def _read(self, ref, kind, amount):
        loop = asyncio.get_running_loop()
        card = self.card
        if card is None:
            self._post(E.CHIP_READ, ref=ref, error=CardReadError("chip: no card in the slot"))
            return
        txn = kernel_transaction(kind, amount, self._clock())
        config = terminal_config(self._settings(), self._random)

        def choose(candidates):  # on the kernel's thread
            return wait_for_pick(self, ref, candidates, lambda names: loop.call_soon_threadsafe(
                lambda: self._post(E.CHIP_CHOICE, ref=ref, names=names)))

        try:
            result = await asyncio.to_thread(kernel.run, apdu.Channel(card.transceive), config, txn,
                                             False, choose)
            if result is None:
                raise CardReadError("EMV: the card has no payment application")
        except (CardReadError, CardRejected) as exc:
            self._post(E.CHIP_READ, ref=ref, error=exc)
            return
        except Exception as exc:  # an unexpected reader fault is a failed chip read
            log.error("chip read failed: %s", type(exc).__name__)
            self._post(E.CHIP_READ, ref=ref, error=CardReadError("chip reader failed"))
            return
        self.last = result
        self._held = (ref, result, card)
        self._post(E.CHIP_READ, ref=ref, result=result)

    async def _complete(self, ref, code, icc):
        held, self._held = self._held, None
        if held is None or held[0] != ref:
            self._post(E.CHIP_DONE, ref=ref, error=CardReadError("chip: the card's data is gone"))
            return
        _, result, card = held
        try:
            issuer = tlv.find(icc, 0x91) if icc else None
        except Exception:
            issuer = None  # a malformed field 55: the card gets no ARPC and will decline
        arc = code.encode()[:2] if len(code) == 2 else b"Z3"  # Z3: unable to go online
        try:
            cid = await asyncio.to_thread(kernel.second_generate_ac, apdu.Channel(card.transceive),
                                          result, arc, issuer)
        except CardReadError as exc:
            self._post(E.CHIP_DONE, ref=ref, error=exc)
            return
        except Exception as exc:
            log.error("second GENERATE AC failed: %s", type(exc).__name__)
            self._post(E.CHIP_DONE, ref=ref, error=CardReadError("chip reader failed"))
            return
        self._post(E.CHIP_DONE, ref=ref, cid=cid)
