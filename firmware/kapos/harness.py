"""Composition (L6): the one way to start a terminal - for `kapos run` (scripted, headless,
console), `kapos diag --board sim`, the HIL suite's local targets, the web simulator's
tests and every test that needs a whole terminal.

    async with Harness("sim", overrides=[("timeouts.card", "5")], clock="2026-11-25T10:00:00") as h:
        await h.play('key 1\\nkeys 1235\\nkey ENTER\\nswipe visa-debit\\nexpect screen "PIN"\\n')
        h.terminal, h.assembly, h.target, h.data_dir        # whatever the test looks at

Entering loads the board and the config with its overrides, puts the terminal's files in
`data_dir` (FRESH: a temporary directory removed on exit; CONFIGURED: the config's
`storage.data_dir`; or a path), sets the simulated clock to `clock` (a scenario's `clock`
line: screens, receipts, card expiry and the in-process host all go by it), assembles
through `wiring.Assembly` and starts the runtime loop (`Terminal.running`, the only place
the loop is started), returning once the idle screen is up - or raising why the terminal
could not start. Leaving stops the loop (cancelled if it does not end), closes the host
link with its in-process engine and the devices, and removes the temporary directory.

`Harness(assembly=...)` (or `started(assembly)`) runs an Assembly its caller built and
closes (the CLI's, whose start-up errors are shown on the display first; the web
simulator's; a bench's or an update test's, customised before the loop starts).
"""

import contextlib
import shutil
import tempfile

from kapos.wiring import Assembly


class _Place:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


FRESH = _Place("FRESH")  # a temporary data directory, removed when the harness exits
CONFIGURED = _Place("CONFIGURED")  # the config's storage.data_dir, kept


class Harness:
    def __init__(self, board="sim", config_path=None, overrides=(), data_dir=FRESH, clock=None,
                 out_dir=None, ready_timeout=None, default_timeout=3.0, assembly=None):
        self.board = board
        self.config_path = config_path
        self.overrides = list(overrides)
        self.clock = clock
        self.out_dir = out_dir
        self.ready_timeout = ready_timeout  # seconds to the idle screen; None: as long as it takes
        self.default_timeout = default_timeout  # of `expect` lines in play()
        self._data_dir = data_dir
        self._tmp = None
        self._owned = assembly is None  # close only what this harness built
        self._closed = False
        self.assembly = assembly
        self._running = None
        self._target = None
        self._player = None

    # ------------------------------------------------------------ assembling

    def assemble(self):
        """Build the Assembly now (entering does it if not yet): for a caller that wants a
        bad board or config reported, or the authorizer swapped, before the loop starts."""
        if self.assembly is not None:
            return self.assembly
        if self._data_dir is FRESH:
            self._tmp = tempfile.mkdtemp(prefix="kapos-run-")
            data_dir = self._tmp
        elif self._data_dir is CONFIGURED:
            data_dir = None
        else:
            data_dir = str(self._data_dir)
        try:
            self.assembly = Assembly(self.board, self.config_path, self.overrides, out_dir=self.out_dir,
                                     clock=self.clock, data_dir=data_dir)
        except BaseException:
            self._remove_tmp()
            raise
        return self.assembly

    def use_authorizer(self, authorizer):
        """Authorize through `authorizer` (e.g. a HostAuthorizer to a host on TCP) instead of
        the one the config built, which is closed; before entering."""
        assembly = self.assemble()
        assembly.authorizer.close()
        assembly.authorizer = authorizer
        assembly.terminal.authorizer = authorizer

    # ------------------------------------------------------------ running

    async def __aenter__(self):
        self.assemble()
        self._running = self.assembly.terminal.running(ready_timeout=self.ready_timeout)
        try:
            await self._running.__aenter__()
        except BaseException:
            self._running = None
            await self._close()
            raise
        return self

    async def __aexit__(self, *exc):
        try:
            if self._running is not None:
                running, self._running = self._running, None
                await running.__aexit__(*exc)
        finally:
            await self._close()
        return False

    async def _close(self):
        if self._owned and self.assembly is not None and not self._closed:
            self._closed = True
            await self.assembly.aclose()
        self._remove_tmp()

    def close(self):
        """For a harness assembled but never entered."""
        if self._owned and self.assembly is not None and not self._closed:
            self._closed = True
            self.assembly.close()
        self._remove_tmp()

    def _remove_tmp(self):
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    # ------------------------------------------------------------ what callers look at

    @property
    def terminal(self):
        return self.assembly.terminal

    @property
    def platform(self):
        return self.assembly.platform

    @property
    def data_dir(self):
        return self.assembly.config["storage"]["data_dir"]

    @property
    def target(self):
        """The scenario target on this terminal's devices (kapos.local_target)."""
        if self._target is None:
            from kapos.local_target import LocalTarget

            self._target = LocalTarget(self.assembly.terminal, self.assembly.testcards)
        return self._target

    @property
    def player(self):
        if self._player is None:
            from kapos.app.scenario import Player

            self._player = Player(self.target, default_timeout=self.default_timeout)
        return self._player

    async def stopped(self):
        """Wait until the terminal stops by itself (a restart request)."""
        await self.assembly.terminal.stopped()

    async def play(self, text):
        """Play scenario lines (the scenario language of docs/scenarios.md) on this terminal."""
        from kapos.app.scenario import parse

        await self.player.play(parse(text))


@contextlib.asynccontextmanager
async def started(assembly, ready_timeout=None):
    """The terminal of an Assembly its caller built and closes, running inside the block."""
    async with Harness(assembly=assembly, ready_timeout=ready_timeout) as harness:
        yield harness
