"""Self-test and technician functions: what a field technician checks, as data.

`selftest()` asks every peripheral for its own check and adds the terminal-wide ones
(host echo with round-trip time, journal, keys, free disk, clock). A failed check never
stops the terminal: it degrades (no printer: transactions complete, receipts are kept for
a reprint). The management channel and `kapos diag` call the same methods.
"""

import asyncio
import shutil
import time

from kapos import __version__

# Checks whose failure makes the terminal unable to take payments at all.
ESSENTIAL = ("display", "keypad", "host")


class Check:
    def __init__(self, name, ok, detail, essential=False, ms=None):
        self.name = name
        self.ok = ok
        self.detail = detail
        self.essential = essential
        self.ms = ms

    def as_dict(self):
        return {"name": self.name, "ok": self.ok, "detail": self.detail,
                "essential": self.essential, "ms": self.ms}

    def line(self):
        return "%s %s: %s" % ("OK " if self.ok else "BAD", self.name, self.detail)


class Diagnostics:
    def __init__(self, terminal, data_dir=None, key_status=None, config=None):
        self.terminal = terminal
        self.data_dir = data_dir or "."
        self.key_status = key_status or (lambda: (True, "test keys (not for real cards)"))
        self.config = config or {}
        self.update_status = None  # set by kapos.update: running/previous version, last update
        self.boot_failed = []  # names of the checks the start-up self-test found failing

    async def run(self, function):
        """A technician function: (title, lines) for the terminal's screen."""
        method = getattr(self, "fn_" + function, None)
        if method is None:
            return "ERROR", ["unknown function %s" % function]
        try:
            return await method()
        except Exception as exc:  # the technician sees the failure; the terminal carries on
            return "FAILED", ["%s: %s" % (type(exc).__name__, exc)]

    async def fn_selftest(self):
        checks = await self.selftest()
        failed = [c for c in checks if not c.ok]
        title = "SELF-TEST OK" if not failed else "SELF-TEST: %d BAD" % len(failed)
        return title, [c.line() for c in failed + [c for c in checks if c.ok]]

    async def fn_host_echo(self):
        check = await self._host()
        return ("HOST ECHO OK" if check.ok else "HOST ECHO FAILED"), [check.detail]

    async def fn_printer_test(self):
        from kapos.app.receipts import Line, Receipt

        printer = self.terminal.platform.get("printer")
        if printer is None:
            return "PRINTER", ["no printer fitted"]
        s = self.terminal.settings
        lines = [Line("PRINTER TEST", "center", bold=True, double=True), Line("")]
        for key, value in sorted(self.versions().items()):
            lines.append(Line("%-10s %s" % (key, value)))
        lines += [Line("terminal   %s" % s.terminal_id), Line("merchant   %s" % s.merchant_id),
                  Line("currency   %s (%s)" % (s.currency, s.currency_code)),
                  Line("printer    %s" % printer.status()), Line(""),
                  Line("0123456789 ABCDEFGHIJKLMNOPQRSTU"), Line("bold", bold=True),
                  Line("centre", "center"), Line("right", "right")]
        await self.terminal.print_now(Receipt(lines, copy="test"))
        return "PRINTER OK", ["Test page printed", "status %s" % printer.status()]

    async def fn_network(self):
        host = self.config.get("host", {})
        lines = ["mode %s" % host.get("mode", "?")]
        for key in ("transport", "address", "serial_url", "tls"):
            if host.get(key):
                lines.append("%s %s" % (key, host[key]))
        describe = getattr(self.terminal.authorizer, "describe", None)
        if describe is not None:
            lines += list(describe())
        return "NETWORK", lines

    async def fn_journal(self):
        summary = getattr(self.terminal.authorizer, "journal_summary", None)
        if summary is None:
            c = self.terminal.ctx.counters
            return "JOURNAL", ["no journal on this link", "approved %d" % c["approved"],
                               "declined %d" % c["declined"]]
        return "JOURNAL", list(summary())

    async def fn_reprint(self):
        if not self.terminal.receipts:
            return "REPRINT", ["no receipt to reprint"]
        await self.terminal.reprint_last()
        return "REPRINT", ["last receipt printed again"]

    async def fn_settlement(self):
        """Send the batch totals; show and print whether the host agrees."""
        from kapos.app.receipts import Line, Receipt

        from kapos.app.settlement import settlement_lines

        result = await self.terminal.authorizer.settle()
        if result is None:
            return "SETTLEMENT", ["not supported by this host"]
        title = "TOTALS AGREED" if result.get("agreed") else "NOT AGREED"
        lines = settlement_lines(result, self.terminal.settings.exponent)
        s = self.terminal.settings
        paper = [Line("SETTLEMENT", "center", bold=True, double=True),
                 Line("Terminal %s" % s.terminal_id, "center"),
                 Line(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.terminal.now())), "center"),
                 Line("-" * 32)] + [Line(text) for text in lines] + [
                 Line("-" * 32), Line(title, "center", bold=True, double=True)]
        try:
            await self.terminal.print_now(Receipt(paper, copy="merchant"))
        except Exception as exc:  # the result is on screen either way
            lines.append("not printed: %s" % exc)
        return title, lines

    async def fn_counters(self):
        """Transactions, failed reads and what still waits to be sent to the host."""
        lines = ["%s %d" % (k, v) for k, v in sorted(self.terminal.ctx.counters.items())]
        lines.append("reversals pending %d" % self.terminal.authorizer.pending())
        lines.append("alarms %d" % self.terminal.ctx.alarms)
        return "COUNTERS", lines

    async def boot_check(self):
        """The self-test at start-up: (title, lines of the failed checks) or None. The
        failed checks' names are kept in `boot_failed` (reported to the host, 48 ST)."""
        failed = [c for c in await self.selftest() if not c.ok]
        self.boot_failed = [c.name for c in failed]
        if not failed:
            return None
        return "SELF-TEST", ["%s: %s" % (c.name, c.detail) for c in failed]

    async def selftest(self):
        checks = []
        platform = self.terminal.platform
        for name in ("display", "keypad", "magstripe", "nfc", "printer", "buzzer", "clock", "tamper"):
            device = platform.get(name)
            if device is None:
                checks.append(Check(name, name not in ESSENTIAL, "not fitted on this board",
                                    essential=name in ESSENTIAL))
                continue
            started = time.perf_counter()
            try:
                ok, detail = device.selftest()
            except Exception as exc:  # a check must report, never raise
                ok, detail = False, "%s: %s" % (type(exc).__name__, exc)
            checks.append(Check(name, bool(ok), detail, essential=name in ESSENTIAL,
                                ms=round((time.perf_counter() - started) * 1000, 2)))
        checks.append(await self._host())
        ok, detail = self.key_status()
        checks.append(Check("keys", ok, detail))
        checks.append(self._disk())
        checks.append(self._clock())
        if self.update_status is not None:  # shown with the self-test in the technician menu
            u = self.update_status()
            detail = "%s (previous %s), last update %s, pending %s, parameters %s" % (
                u.get("running"), u.get("previous"), u.get("last_update"), u.get("pending"),
                u.get("parameters", "from the config file"))
            if u.get("last_check"):  # a refused release or parameter set, with the reason
                detail += "; refused: %s" % u["last_check"]
            checks.append(Check("software", True, detail))
        return checks

    async def _host(self):
        echo = getattr(self.terminal.authorizer, "echo", None)
        if echo is None:
            return Check("host", True, "no echo test for this authorizer", essential=True)
        started = time.perf_counter()
        try:
            answer = await asyncio.wait_for(echo(), timeout=self.terminal.settings.timeouts["host"])
        except Exception as exc:
            return Check("host", False, "echo failed: %s" % (str(exc) or type(exc).__name__), essential=True)
        if isinstance(answer, dict) and not answer.get("ok", True):
            return Check("host", False, "echo refused: response code %s" % answer.get("code"), essential=True)
        ms = (time.perf_counter() - started) * 1000
        return Check("host", True, "echo answered in %.1f ms" % ms, essential=True, ms=round(ms, 2))

    def _disk(self):
        try:
            usage = shutil.disk_usage(self.data_dir)
        except OSError as exc:
            return Check("disk", False, "cannot read %s: %s" % (self.data_dir, exc.strerror))
        free_mb = usage.free / 1e6
        return Check("disk", free_mb > 50, "%.0f MB free in %s" % (free_mb, self.data_dir))

    def _clock(self):
        now = self.terminal.now()
        year = time.gmtime(now).tm_year
        return Check("time", 2024 <= year <= 2100, time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now)))

    def versions(self):
        versions = {"kapos": __version__, "board": self.terminal.platform.board["board"]["name"]}
        if self.update_status is not None:
            versions.update(("update_" + k, v) for k, v in self.update_status().items())
        return versions

    def counters(self):
        return dict(self.terminal.ctx.counters)


def summary(checks):
    failed = [c for c in checks if not c.ok]
    return {"ok": not failed, "failed": [c.name for c in failed], "checks": [c.as_dict() for c in checks]}
