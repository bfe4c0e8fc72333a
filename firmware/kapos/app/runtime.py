"""The runtime loop: the one place where HAL input becomes events and commands become I/O.

    devices --(reader tasks)--> queue --> core.step --> commands --> display / printer /
                                                                     authorizer / timers
Nothing here decides anything about a transaction; the core does. The loop awaits the
queue (no busy-waiting), owns every timer, and turns any driver exception into a
HARDWARE_ERROR event, so a failing peripheral shows an error and the terminal carries on.
"""

import asyncio
import contextlib
import logging
import time

from kapos.errors import HostUnavailable
from kapos.app.chip import ChipSession, ContactChip
from kapos.app.receipts import build_receipts, duplicate
from kapos.app.screens import ScreenRenderer, wrap
from kapos.compat import wipe
from kapos.core import commands as C
from kapos.core import events as E
from kapos.core import machine
from kapos.core.handlers import idle_screen
from kapos.errors import KaposError, StartupError
from kapos.io import sd_notify

log = logging.getLogger("kapos.runtime")

_STOP = object()


def local_date(epoch):
    return time.strftime("%Y%m%d", time.localtime(epoch))


class Terminal:
    def __init__(self, platform, settings, authorizer, pin_sealer, clock=None):
        self.platform = platform
        self.settings = settings
        self.authorizer = authorizer
        self.pin_sealer = pin_sealer
        self.clock = clock or platform.get("clock")
        self.screens = ScreenRenderer(settings)
        self.state, self.ctx, self._initial = machine.start(settings)
        self.screen = None  # the Screen last drawn
        self.receipts = []  # (record, Receipt) printed or attempted, newest last
        self.records = []  # masked records of finished transactions, newest last
        self.observers = []  # callables(kind, payload): 'screen', 'state', 'receipt', 'record'
        self.diagnostics = None  # set by the composition (wiring.Assembly)
        self.alerts = []  # anomaly alerts raised, newest last
        self.notifier = sd_notify.from_environ()  # systemd READY=1 / WATCHDOG=1, None without systemd
        self._queue = None
        self._loop_task = None  # the task running() started
        self._timers = {}  # name -> (handle, token)
        self._token = 0
        self._tasks = set()
        self._display_failing = False
        self.events_handled = 0
        nfc = platform.get("nfc")
        # the EMV kernel for taps (app/chip.py), when the reader can run it
        self.chip = ChipSession(lambda: self.settings, clock=self.now, post=self.post) \
            if nfc is not None and hasattr(nfc, "set_emv_session") else None
        # a contact chip reader (app/chip.py): insert, chip read, second GENERATE AC
        slot = platform.get("chip")
        self.contact = ContactChip(slot, lambda: self.settings, self.post, clock=self.now) \
            if slot is not None else None
        settings.has_chip_reader = self.contact is not None

    # ------------------------------------------------------------ input side

    def now(self):
        return self.clock.now() if self.clock is not None else time.time()

    def monotonic(self):
        """The clock device's monotonic seconds (the events' `mono`), else the process's."""
        monotonic = getattr(self.clock, "monotonic", None)
        value = monotonic() if monotonic is not None else None
        return time.monotonic() if value is None else value

    def post(self, kind, **data):
        """Queue an event (from any task of the loop's thread)."""
        now = self.now()
        self._queue.put_nowait(E.Event(kind, time=now, date=local_date(now),
                                       mono=self.monotonic(), **data))

    def press(self, key):
        self.post(E.KEY, key=key)

    async def _reader(self, device, method, kind, field):
        """Await one input device forever; a failure becomes an event, then we retry."""
        backoff = 0.5
        while True:
            try:
                value = await getattr(device, method)()
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a driver failing must not stop the terminal
                log.error("%s failed: %s", device.name, _describe(exc))
                self.post(E.HARDWARE_ERROR, device=device.name, reason=_describe(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            self.post(kind, **{field: value})

    def _start_readers(self):
        plan = (("keypad", "read_key", E.KEY, "key"),
                ("magstripe", "read_swipe", E.SWIPE, "raw"),
                ("nfc", "read_tap", E.TAP, "tap"),
                ("tamper", "wait_tamper", E.TAMPER, "source"))
        for name, method, kind, field in plan:
            device = self.platform.get(name)
            if device is not None:
                self._spawn(self._reader(device, method, kind, field))
        if self.contact is not None:
            self._spawn(self.contact.watch())

    # ------------------------------------------------------------ loop

    async def run(self, ready=None):
        self._queue = asyncio.Queue()
        keystore = getattr(self.pin_sealer, "keystore", None)
        if keystore is not None and keystore.tampered:
            # locked until re-keyed: nothing to sign on with, and re-keying must not wait for a host
            self._spawn(self._start_authorizer())
            self.post(E.TAMPER, source="keys were erased")  # stay locked across restarts
        else:
            await self.authorizer.start()
        self._start_readers()
        self._execute_all(self._initial)
        if self.diagnostics is not None:
            self._spawn(self._boot_check())
        if ready is not None:
            ready.set()
        if self.notifier is not None:  # pings from a task of this loop: a stalled loop sends none
            self._spawn(self.notifier.serve(sd_notify.LoopHealth(self)))
        try:
            while True:
                event = await self._queue.get()
                if event is _STOP:
                    break
                self.handle(event)
                # queue.get() does not yield while events wait: let readers and timers run
                await asyncio.sleep(0)
        finally:
            for task in list(self._tasks):
                task.cancel()
            for handle, _ in self._timers.values():
                handle.cancel()
            self._timers.clear()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def stop(self):
        if self._queue is not None:
            self._queue.put_nowait(_STOP)

    @contextlib.asynccontextmanager
    async def running(self, ready_timeout=None):
        """`async with terminal.running():` the loop runs in a task, ready (idle screen
        shown) inside the block, stopped and awaited after it. The one place the loop is
        started: callers go through kapos.harness (tests/unit/test_architecture.py checks).
        Not ready within `ready_timeout` seconds: the task is cancelled, StartupError."""
        ready = asyncio.Event()
        task = self._loop_task = asyncio.ensure_future(self.run(ready))
        waiter = asyncio.ensure_future(ready.wait())
        try:
            await asyncio.wait({task, waiter}, timeout=ready_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if not ready.is_set() and not task.done():  # cancelled or timed out while starting
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if not ready.is_set():
            if not task.cancelled():
                task.result()  # run() failed before it was ready: raise its error
            raise StartupError("the terminal was not ready within %s s" % ready_timeout, "not ready")
        try:
            yield self
        finally:
            self.stop()
            await task

    async def stopped(self):
        """Inside running(): wait until the loop ends by itself (a restart request)."""
        await asyncio.shield(self._loop_task)

    def handle(self, event):
        if event.kind == E.TIMEOUT:
            timer = self._timers.get(event.get("timer"))
            if timer is None or timer[1] != event.get("token"):
                return  # stopped or restarted since it fired
            del self._timers[event.get("timer")]
        before = self.state
        outcomes = self._outcome_count()
        self.state, self.ctx, commands = machine.step(self.state, self.ctx, event)
        self.events_handled += 1
        if self.state != before:
            log.debug("%s -> %s on %r", before, self.state, event)
            self._notify("state", self.state)
        self._execute_all(commands, reporting=event.kind == E.HARDWARE_ERROR)
        if self._outcome_count() != outcomes:
            self._notify("result", self.ctx.last_result)

    def _outcome_count(self):
        c = self.ctx.counters
        return c["approved"] + c["declined"] + c["cancelled"] + c["errors"]

    def _execute_all(self, commands, reporting=False):
        for command in commands:
            try:
                self.execute(command)
            except Exception as exc:  # an executor bug must not kill the loop
                log.exception("command %r failed", command)
                if not reporting:  # an error while reporting an error is only logged
                    self.post(E.HARDWARE_ERROR, device="terminal", reason=_describe(exc))

    def _spawn(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _notify(self, kind, payload):
        for observer in list(self.observers):
            try:
                observer(kind, payload)
            except Exception:
                log.exception("observer failed")

    # ------------------------------------------------------------ commands

    def execute(self, command):
        kind = command.kind
        if kind == C.SHOW:
            self._show(command["screen"], command["data"])
        elif kind == C.BEEP:
            buzzer = self.platform.get("buzzer")
            if buzzer is not None:
                buzzer.beep(command["tone"])
        elif kind == C.START_TIMER:
            self._start_timer(command["timer"], command["seconds"])
        elif kind == C.STOP_TIMER:
            self._stop_timer(command["timer"])
        elif kind == C.SEAL_PIN:
            self._seal_pin(command)
        elif kind == C.AUTHORIZE:
            self._spawn(self._authorize(command["request"]))
        elif kind == C.CANCEL_AUTHORIZATION:
            log.warning("authorization ref %s cancelled: %s", command["ref"], command["reason"])
            self.authorizer.cancel(command["ref"], command["reason"])
        elif kind == C.PRINT:
            self._spawn(self._print(command["record"]))
        elif kind == C.ALERT:
            log.warning("ALERT %s: %s", command["rule"], command["detail"])
            self.alerts.append(dict(command.data))
            del self.alerts[:-50]
            alert = getattr(self.authorizer, "alert", None)
            if alert is not None:
                self._spawn(self._send_alert(alert, dict(command.data)))
        elif kind == C.ZEROIZE:
            log.warning("tamper: erasing keys")
            zeroize = getattr(self.pin_sealer, "zeroize", None)
            if zeroize is not None:
                # call_soon runs after the first step of tasks spawned before it, so a
                # tamper alert has built and MACed its 0620 (no await before that) and
                # the keys go a loop turn later, before anything else can use them.
                asyncio.get_running_loop().call_soon(zeroize)
        elif kind == C.DIAG:
            self._spawn(self._diag(command["function"]))
        elif kind in ContactChip.COMMANDS:
            if self.contact is not None:
                self.contact.execute(command, self._spawn)
            if self.chip is not None and kind in ChipSession.COMMANDS:  # a tap's choice
                self.chip.execute(command)
        elif kind == C.RECORD:
            record = command["record"]
            self.records.append(record)
            del self.records[:-100]
            log.info("%s %s ref=%s total=%s card=%s code=%s", record["type"], record["outcome"],
                     record["ref"], record["total"], record["card"], record["code"])
            self._notify("record", record)
        else:
            raise KaposError("unknown command %s" % kind)

    def _show(self, screen_id, data):
        if self.chip is not None:  # the card screen arms the EMV kernel with this sale
            self.chip.follow(self.platform.get("nfc"), screen_id, data)
        screen = self.screens.render(screen_id, data)
        self.screen = screen
        display = self.platform.get("display")
        try:
            if display is not None:
                display.show(screen)
            self._display_failing = False
        except Exception as exc:
            log.error("display failed: %s", _describe(exc))
            if not self._display_failing:  # report once, or the error screen fails again
                self._display_failing = True
                self.post(E.HARDWARE_ERROR, device="display", reason=_describe(exc))
        finally:
            self._notify("screen", screen)

    def _start_timer(self, name, seconds):
        self._stop_timer(name)
        self._token += 1
        token = self._token
        loop = asyncio.get_running_loop()
        handle = loop.call_later(seconds, self._timer_fired, name, token)
        self._timers[name] = (handle, token)

    def _timer_fired(self, name, token):
        self.post(E.TIMEOUT, timer=name, token=token)

    def _stop_timer(self, name):
        names = list(self._timers) if name == "*" else [name]
        for n in names:
            entry = self._timers.pop(n, None)
            if entry is not None:
                entry[0].cancel()

    def _seal_pin(self, command):
        buffer = command["pin"]
        try:
            block, ksn = self.pin_sealer.seal(buffer, command["length"], command["card"], command.get("ref"))
        except Exception as exc:
            log.error("PIN sealing failed: %s", type(exc).__name__)
            self.post(E.PIN_FAILED, reason="cannot encrypt PIN")
            return
        finally:
            wipe(buffer)
        self.post(E.PIN_SEALED, block=block, ksn=ksn)

    async def _authorize(self, request):
        ref = request["ref"]
        try:
            reply = await self.authorizer.authorize(request)
        except HostUnavailable as exc:
            self.post(E.HOST_ERROR, ref=ref, reason=str(exc) or "Host unavailable")
            return
        except Exception as exc:
            log.error("authorizer failed: %s", _describe(exc))
            self.post(E.HOST_ERROR, ref=ref, reason="Host error")
            return
        self.post(E.HOST_REPLY, ref=ref, reply=reply)

    async def _print(self, record):
        copies = build_receipts(record, self.settings)  # customer copy, then merchant copy
        for receipt in copies:
            self.receipts.append((record, receipt))
        del self.receipts[:-20]
        printer = self.platform.get("printer")
        if printer is None:
            self.post(E.PRINT_FAILED, reason="no printer")
            return
        for receipt in copies:
            try:
                await printer.print_receipt(receipt)
            except Exception as exc:
                log.error("printer failed: %s", _describe(exc))
                self.post(E.PRINT_FAILED, reason=_describe(exc))
                return
            self._notify("receipt", receipt)
        self.post(E.PRINTED)

    async def _start_authorizer(self):
        try:
            await self.authorizer.start()
        except Exception as exc:
            log.error("host link did not start: %s", _describe(exc))

    async def _send_alert(self, alert, data):
        try:
            await alert(data)
        except Exception as exc:  # the alarm is on screen and in the log already
            log.error("alert not delivered: %s", _describe(exc))

    async def _boot_check(self):
        try:
            found = await self.diagnostics.boot_check()
        except Exception as exc:
            log.error("start-up self-test failed to run: %s", _describe(exc))
            return
        await self.authorizer.report_selftest(self.diagnostics.boot_failed)  # 48 ST, dashboard
        if found is not None:
            title, lines = found
            log.warning("start-up self-test: %s", "; ".join(lines))
            self.post(E.DIAG_RESULT, function="boot", title=title, lines=lines)

    async def _diag(self, function):
        diagnostics = self.diagnostics
        if diagnostics is None:
            title, lines = "ERROR", ["no diagnostics on this terminal"]
        else:
            title, lines = await diagnostics.run(function)
        # the core pages results three lines at a time: wrap them to the display first
        lines = [part for line in lines for part in (wrap(line) or [""])]
        self.post(E.DIAG_RESULT, function=function, title=title, lines=lines)

    async def print_now(self, receipt):
        """Print outside a transaction (test page, reprint); raises what the printer raises."""
        printer = self.platform.get("printer")
        if printer is None:
            raise KaposError("no printer")
        await printer.print_receipt(receipt)
        self._notify("receipt", receipt)

    async def reprint_last(self):
        """Print the newest receipt again (after paper-out, or on request)."""
        await self.print_now(duplicate(self.receipts[-1][1]))

    # ------------------------------------------------------------ software updates (kapos.update)

    def is_idle(self):
        """Between transactions: the idle screen, no reversal left to send."""
        if self.state != "IDLE":
            return False
        pending = getattr(self.authorizer, "pending", None)
        return not (pending is not None and pending())

    def show_update_notice(self, text):
        """Update progress on the idle screen (only there: a transaction's screens stay)."""
        if self.state == "IDLE":
            self.ctx.notice = ("info", text)
            self._execute_all([idle_screen(self.ctx)])

    def apply_settings(self, settings):
        """A new parameter set, between transactions only (the caller checks is_idle())."""
        settings.has_chip_reader = self.contact is not None
        self.settings = settings
        self.ctx.settings = settings
        self.screens = ScreenRenderer(settings)
        self._execute_all([idle_screen(self.ctx)])

    def request_restart(self, reason):
        """Stop the loop so the service starts again (into a new release or parameters)."""
        log.warning("restarting: %s", reason)
        self.restart_requested = reason
        self.stop()

    # ------------------------------------------------------------ status

    def status(self):
        return {"state": self.state, "screen": self.screen.text() if self.screen else "",
                "last_result": self.ctx.last_result, "counters": dict(self.ctx.counters)}


def _describe(exc):
    text = str(exc)
    if isinstance(exc, KaposError) and text:
        return text
    return "%s%s" % (type(exc).__name__, (": " + text) if text else "")
