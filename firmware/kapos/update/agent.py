"""The update agent inside a running terminal (`kapos run --update-root DIR`).

At start: if this process is a trial boot, run the self-test and a host echo within the
deadline, then confirm, or roll back and ask the service to restart. Then, every
`interval` seconds: fetch the signed parameter set and apply it between transactions;
check the channel, download and install a newer release in the background (the terminal
keeps taking payments), and when the terminal is idle with nothing left to send to the
host, switch to it and restart into its trial boot. Network and disk work runs in a
thread; the terminal's loop only sees short calls.
"""

import asyncio
import logging
import os
import time

from kapos.errors import UpdateError
from kapos.io.host_link import HostAuthorizer, software_version
from kapos.update import params as params_mod
from kapos.update import trial
from kapos.update.client import UpdateClient
from kapos.update.layout import Layout, running_version

log = logging.getLogger("kapos.update")

EXIT_RESTART = 75  # the service manager starts us again (systemd Restart=always, supervise)
IDLE_RECHECK = 5.0  # a reversal may clear without a state change: look again this often


def stored_overrides(root):
    """The parameter set applied last, as `--set` overrides for this start."""
    return params_mod.overrides(root)


class UpdateAgent:
    def __init__(self, assembly, root, interval=3600.0):
        self.assembly = assembly
        self.terminal = assembly.terminal
        self.layout = Layout(root)
        self.root = root
        self.interval = interval
        self.version = running_version()
        if self.version and isinstance(assembly.authorizer, HostAuthorizer):
            # the host's terminals view shows the installed release, not the package's
            assembly.authorizer.software_version = software_version(self.version)
        self.last_error = None
        self.pending = None
        self._changed = asyncio.Event()
        self.terminal.observers.append(self._observe)
        if assembly.diagnostics is not None:
            assembly.diagnostics.update_status = self.status

    def _observe(self, kind, payload):
        if kind in ("state", "screen", "result"):
            self._changed.set()

    # ------------------------------------------------------------ status

    def status(self):
        """Lines for the technician menu and `kapos diag`: running, previous, last, pending."""
        state = self.layout.state()
        last = state["last"]
        out = {"running": self.version or "base install", "previous": state["previous"] or "-",
               "last_update": "-", "pending": self.pending or "-"}
        if last:
            out["last_update"] = "%s %s%s" % (last["version"], last["result"],
                                              (": " + last["reason"]) if last["reason"] else "")
        if self.last_error:
            out["last_check"] = self.last_error
        applied = params_mod.load_stored(self.root)
        out["parameters"] = "set %d" % applied["serial"] if applied else "from the config file"
        return out

    # ------------------------------------------------------------ loop

    async def run(self):
        await self._ready()
        await self.trial_boot()
        if not os.path.exists(self.layout.config_path):
            log.info("update: %s is not set up (kapos update init): no update checks", self.root)
            return
        while True:
            await self.check_once()
            await asyncio.sleep(self.interval)

    async def _ready(self):
        while self.terminal.screen is None:
            self._changed.clear()
            await self._changed.wait()

    async def trial_boot(self):
        state = self.layout.state()
        t = state["trial"]
        if not t or t["version"] != self.version:
            return
        remaining = max(1.0, t["started"] + t["deadline"] - time.time())
        try:
            reason = await asyncio.wait_for(self._trial_checks(), remaining)
        except asyncio.TimeoutError:
            reason = "self-test and host echo not passed within %d s" % t["deadline"]
        if reason is None:
            await asyncio.to_thread(trial.confirm, self.layout, self.version)
            self.terminal.show_update_notice("Software %s OK" % self.version)
            return
        await asyncio.to_thread(trial.roll_back, self.layout, reason)
        self.terminal.request_restart("trial of %s failed: %s" % (self.version, reason))

    async def _trial_checks(self):
        diagnostics = self.assembly.diagnostics
        checks = await diagnostics.selftest()
        failed = [c for c in checks if not c.ok]
        if failed:
            return "self-test failed: " + "; ".join("%s: %s" % (c.name, c.detail) for c in failed)
        return None  # the self-test includes the host echo (Diagnostics._host)

    async def check_once(self):
        self.last_error = None
        try:
            await self._check()
        except UpdateError as exc:
            self.last_error = str(exc)
            log.warning("update: %s", exc)
        except Exception as exc:  # an update bug must never stop the terminal
            self.last_error = "%s: %s" % (type(exc).__name__, exc)
            log.exception("update check failed")

    async def _check(self):
        client = UpdateClient(self.root)
        state = self.layout.state()
        try:  # a refused parameter set keeps the old one and does not hold up a release
            await self._parameters(client)
        except UpdateError as exc:
            self.last_error = str(exc)
            log.warning("update: %s", exc)
        offer = await asyncio.to_thread(client.check, self.version, state["refused"])
        if offer is None:
            return
        self.pending = "%s downloading" % offer.version
        shown = [-1]

        def progress(stage, done, total):
            step = int(100 * done / total) // 10 * 10 if total else 100
            if step != shown[0]:
                shown[0] = step
                self.pending = "%s %s %d%%" % (offer.version, stage, step)
                self.terminal.show_update_notice("Update %s: %s %d%%" % (offer.version, stage, step))

        loop = asyncio.get_running_loop()

        def threadsafe(stage, done, total):
            loop.call_soon_threadsafe(progress, stage, done, total)

        tarball = await asyncio.to_thread(client.download, offer, threadsafe)
        await asyncio.to_thread(client.install, offer, tarball, threadsafe)
        self.pending = "%s installed, waiting for idle" % offer.version
        log.warning("update: %s installed, switching when idle", offer.version)
        await self._idle()
        await asyncio.to_thread(trial.begin, self.layout, offer.version)
        await self._idle()  # a sale may have started while the link was switched: let it finish
        self.terminal.show_update_notice("Software %s: restarting" % offer.version)
        self.terminal.request_restart("update to %s" % offer.version)

    async def _parameters(self, client):
        doc, _ = await asyncio.to_thread(client.fetch_target_json, "params/%s.json" % client.channel)
        if doc is None:
            return
        applied = params_mod.load_stored(self.root)
        serial = applied["serial"] if applied else 0
        if doc.get("serial") == serial:
            return
        config = params_mod.check(doc, self.assembly.config, serial)  # UpdateError: kept the old set
        await self._idle()
        params_mod.store(self.root, doc)
        if params_mod.needs_restart(doc):
            self.terminal.request_restart("parameter set %d (host address or channel)" % doc["serial"])
            return
        from kapos.app.config import settings_from

        self.assembly.config = config
        if self.assembly.diagnostics is not None:
            self.assembly.diagnostics.config = config
        self.terminal.apply_settings(settings_from(config))
        log.warning("update: parameter set %d applied", doc["serial"])

    async def _idle(self):
        while not self.terminal.is_idle():
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), IDLE_RECHECK)
            except asyncio.TimeoutError:
                pass


async def run_beside(assembly, root, coro, interval):
    """Run `coro` (the terminal) with the update agent beside it."""
    agent = UpdateAgent(assembly, root, interval=interval)
    task = asyncio.ensure_future(agent.run())
    try:
        return await coro
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
