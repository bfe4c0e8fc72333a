"""The Pico W's one loop: events -> kapos.core.machine.step -> commands executed here.

`Terminal.feed(event)` runs the core and every command it returns: SHOW goes to the
display as lines, SEAL_PIN and AUTHORIZE go to the host link (awaited), PRINT to the
printer, DIAG 'settlement' to the host link's 0500; timers and beeps are recorded (the
board loop owns real time). The core reads
no clock: `clock()` gives the (time, date, gmtime tuple, localtime tuple) stamps."""

from kapos.core import commands as C
from kapos.core import events as E
from kapos.core import machine
from kapos.core.settings import Settings

RECORDS_KEPT = 1  # the last record (about 400 bytes each: more would cost the heap, docs/pico.md)


def _lines(show):
    data = show.get("data") or {}
    out = [str(show.get("screen", ""))]
    for name in sorted(data):
        value = data[name]
        if isinstance(value, (str, int)):
            out.append("%s %s" % (name, value))
        elif isinstance(value, list):  # a technician result's lines
            out.extend(str(line) for line in value)
    return out


class Terminal:
    def __init__(self, link, display, printer, clock, random_bytes, settings=None):
        self.link = link
        self.display = display
        self.printer = printer
        self.clock = clock
        self.random_bytes = random_bytes
        self.state, self.ctx, commands = machine.start(settings or Settings())
        self.results = []
        self.timers = {}
        self._pending = list(commands)

    def event(self, kind, **data):
        t, date, _, _ = self.clock()
        return E.Event(kind, time=t, date=date, **data)

    async def feed(self, event):
        self.state, self.ctx, commands = machine.step(self.state, self.ctx, event)
        self._pending.extend(commands)
        await self._run()

    async def _run(self):
        while self._pending:
            command = self._pending.pop(0)
            await self._execute(command)

    async def _execute(self, command):
        kind = command.kind
        if kind == C.SHOW:
            self.display.show(_lines(command))
        elif kind == C.START_TIMER:
            self.timers[command.get("name")] = command.get("seconds")
        elif kind == C.STOP_TIMER:
            self.timers.pop(command.get("name"), None)
        elif kind == C.SEAL_PIN:
            card = command["card"]
            block, ksn = self.link.seal_pin(command["pin"], command["length"], card.pan_for_host(),
                                            self.random_bytes)
            await self.feed(self.event(E.PIN_SEALED, block=block, ksn=ksn))
            return
        elif kind == C.AUTHORIZE:
            _, _, utc, local = self.clock()
            request = command["request"]
            ref = self.ctx.txn.ref if self.ctx.txn is not None else None
            try:
                reply = await self.link.authorize(request, utc, local)
            except Exception as e:  # noqa: BLE001  (the loop never dies on the link)
                await self.feed(self.event(E.HOST_ERROR, ref=ref, reason=str(e)))
                return
            await self.feed(self.event(E.HOST_REPLY, ref=ref, reply=reply))
        elif kind == C.PRINT:
            record = command.get("record") or {}
            self.printer.print_lines(["kapos", str(record.get("type", "")),
                                      str(record.get("card", "")), str(record.get("outcome", ""))])
            await self.feed(self.event(E.PRINTED))
        elif kind == C.RECORD:  # only the last few: a list growing per sale would fill the heap
            self.results.append(command.get("record"))
            del self.results[:-RECORDS_KEPT]
        elif kind == C.DIAG:
            await self._diag(command.get("function"))

    async def settle(self):
        """Settle the batch (0500); the result dict, or {'error': reason}."""
        _, _, utc, _ = self.clock()
        try:
            return await self.link.settle(utc)
        except Exception as e:  # noqa: BLE001  (the loop never dies on the link)
            return {"error": str(e)}

    async def _diag(self, function):
        if function == "settlement":
            result = await self.settle()
            if "error" in result:
                title, lines, ok = "SETTLEMENT", ["Not answered", result["error"]], False
            else:
                title = "SETTLEMENT"
                lines = ["Batch %06d" % result["batch"],
                         "Totals agreed" if result["agreed"] else "Not agreed (%s)" % result["code"]]
                ok = result["agreed"]
        else:
            title, lines, ok = "NOT ON PICO", ["%s is not on this port" % function], False
        await self.feed(self.event(E.DIAG_RESULT, function=function, title=title, lines=lines, ok=ok))
