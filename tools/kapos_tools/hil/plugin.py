"""pytest plugin for hardware-in-the-loop runs (docs/hil.md). Registered by tests/conftest.py.

Options:
    --board NAME        the board under test (default sim; sim-nfc for a scenario that
                        inserts a chip card, as sim has no chip slot). In-process targets
                        build it here; for a remote terminal it must match what it reports.
    --target WHERE      local     in process: a Terminal on --board, driven directly
                        manage    in process, but driven through the management channel over TCP
                        tcp://HOST:PORT   a running terminal's management channel (e.g. a Pi)
                        serial:URL        ... over its serial console (device or pyserial URL)
                        Not given: `local` and `manage` both (the remote path runs in `make test`).
    --manage-token-file F  file with the remote terminal's management token (default:
                        $KAPOS_MANAGE_TOKEN, $KAPOS_MANAGE_TOKEN_FILE, var/manage-token);
                        --manage-token T still works but shows in ps (warned)

Fixture `terminal_target`: a HilTarget (parametrized per target). Use it as

    def test_x(terminal_target):
        terminal_target.play(scenario)                  # skips what this target cannot do
        async def go():
            async with terminal_target.open() as session:   # session.target is a scenario Target
                ...
        terminal_target.run(go)

Scenario `config`/`clock` lines are applied only in process (local, manage): a remote
terminal keeps its own configuration, so such scenarios are skipped there with the reason;
so are `tamper` scenarios (a tamper erases a real terminal's keys until it is re-keyed).
A terminal not in test mode cannot take injected keys, swipes or taps: scenarios that
need them are skipped, naming the step ("swipe a card physically"); so are `insert` /
`remove` on a terminal whose chip slot takes no injected card (hello's `injectable`).
"""

import asyncio
import contextlib
import os

import pytest

from kapos.app.scenario import Player
from kapos.errors import ScenarioError

from kapos_tools.diag.client import ManagementError, find_token

from .remote import HINTS, InjectionUnavailable, RemoteTarget

IN_PROCESS = ("local", "manage")
DEFAULT_BOARD = "sim"
CHIP_BOARD = "sim-nfc"  # the default board's twin with a chip slot (ports/sim/chip_slot.py)
CHIP_VERBS = ("insert", "remove")
INJECT_VERBS = {"key": "key", "keys": "key", "swipe": "swipe", "tap": "tap", "tamper": "tamper",
                "insert": "insert", "remove": "insert"}
DEVICE_OF = {"key": "keypad", "swipe": "magstripe", "tap": "nfc", "tamper": "tamper", "insert": "chip"}


def pytest_addoption(parser):
    group = parser.getgroup("kapos-hil", "kapos hardware-in-the-loop (tests/hil, docs/hil.md)")
    group.addoption("--board", action="store", default=None, metavar="NAME",
                    help="board under test (default: sim)")
    group.addoption("--target", action="store", default=None, metavar="WHERE",
                    help="local | manage | tcp://HOST:PORT | serial:URL "
                         "(default: local and manage on an in-process board)")
    group.addoption("--manage-token-file", action="store", default=None, metavar="FILE",
                    help="file with a remote terminal's management token (default: $KAPOS_MANAGE_TOKEN, "
                         "$KAPOS_MANAGE_TOKEN_FILE, var/manage-token)")
    group.addoption("--manage-token", action="store", default=None, metavar="TOKEN",
                    help="the token itself (works, but shows in ps: prefer --manage-token-file)")


def pytest_configure(config):
    _targets(config)  # a bad --target is a usage error before anything is collected


def _targets(config):
    given = config.getoption("--target")
    if given is None:
        return list(IN_PROCESS)
    if given in IN_PROCESS or given.startswith("tcp://") or given.startswith("serial:"):
        return [given]
    raise pytest.UsageError("--target must be local, manage, tcp://HOST:PORT or serial:URL, got %r" % given)


def _target_id(where):
    if where in IN_PROCESS:
        return where
    return "tcp" if where.startswith("tcp://") else "serial"


def pytest_generate_tests(metafunc):
    if "terminal_target" in metafunc.fixturenames:
        targets = _targets(metafunc.config)
        metafunc.parametrize("terminal_target", targets, indirect=True, ids=[_target_id(t) for t in targets])


@pytest.fixture
def terminal_target(request):
    """A HilTarget for the --board/--target options (parametrized over local and manage
    when --target is not given)."""
    where = getattr(request, "param", None) or _targets(request.config)[0]
    board = request.config.getoption("--board")
    token = None
    if where not in IN_PROCESS:  # in process, the harness makes and passes its own token
        token = find_token(request.config.getoption("--manage-token"),
                           request.config.getoption("--manage-token-file"))
    return HilTarget(where, board, token=token)


class HilSession:
    """One opened target: `target` (the scenario Target), `kind`, and what else the
    target offers (`assembly` in process, `client` over the management channel)."""

    def __init__(self, kind, target, assembly=None, client=None):
        self.kind = kind
        self.target = target
        self.assembly = assembly
        self.client = client

    def can_inject(self, verb):
        if self.kind == "local":
            device = self.assembly.platform.get(DEVICE_OF[verb])
            return device is not None and hasattr(device, "inject")
        return self.target.can_inject(verb)

    def injection_refusal(self, verb):
        if self.kind == "local":
            return "the %s board cannot inject into its %s: %s" % (
                self.assembly.board["board"]["name"], DEVICE_OF[verb], HINTS[verb])
        return self.target.injection_refusal(verb)

    async def selftest(self):
        """The self-test summary: {"passed", "failed", "checks"}."""
        if self.client is None:
            from kapos.app.diagnostics import summary

            result = summary(await self.assembly.diagnostics.selftest())
            return {"passed": result["ok"], "failed": result["failed"], "checks": result["checks"]}
        return await self.client.call("selftest")


class HilTarget:
    def __init__(self, where, board=None, token=None):
        self.where = where
        self.board_given = board
        self.board = board or DEFAULT_BOARD
        self.token = token
        self.kind = where if where in IN_PROCESS else "remote"

    def __repr__(self):
        return "HilTarget(%s, board %s)" % (self.where, self.board)

    @property
    def in_process(self):
        return self.kind in IN_PROCESS

    def config_skip_reason(self, scenario):
        """Why this target cannot play the scenario at all (None: it can)."""
        if self.in_process:
            return None
        name = os.path.basename(scenario.name)
        lines = ["config %s = %s" % kv for kv in scenario.config]
        if scenario.clock:
            lines.append("clock %s" % scenario.clock)
        if lines:
            return ("%s sets %s: a remote terminal keeps its own configuration and clock "
                    "(such scenarios run in process only)" % (name, "; ".join(lines)))
        for step in scenario.steps:
            if step.verb == "tamper":
                return ("%s line %d `%s`: a tamper erases a remote terminal's keys and locks it "
                        "until it is re-keyed (such scenarios run in process only)" % (name, step.line_no, step.source))
        return None

    def board_for(self, scenario):
        """The board an in-process target builds for this scenario: --board when given,
        else sim, or sim-nfc when the scenario uses the chip slot (sim has none)."""
        if self.board_given or not any(step.verb in CHIP_VERBS for step in scenario.steps):
            return self.board
        return CHIP_BOARD

    @contextlib.asynccontextmanager
    async def open(self, config=(), clock=None, board=None):
        """An async context manager yielding a HilSession on a fresh (in-process) or a
        reset (remote) terminal; `board`: build that one in process instead of --board."""
        board = board or self.board
        if self.kind == "local":
            async with _local(board, config, clock) as session:
                yield session
        elif self.kind == "manage":
            from kapos_tools.diag.simrun import InProcessTerminal

            overrides = [("host.reply_delay", "0")] + list(config)
            async with InProcessTerminal(board, overrides=overrides, clock=clock, test_mode=True) as term:
                target = await RemoteTarget.connect(term.address, token=term.token)
                try:
                    yield HilSession("manage", target, assembly=term.assembly, client=target.client)
                finally:
                    await target.close()
        else:
            where = self.where[len("tcp://"):] if self.where.startswith("tcp://") else self.where
            target = await RemoteTarget.connect(where, token=self.token)
            try:
                if self.board_given and target.board != self.board_given:
                    raise ScenarioError("the terminal at %s runs board %s, not %s (--board)"
                                        % (self.where, target.board, self.board_given))
                if target.test_mode:
                    await target.reset_to_idle()
                yield HilSession("remote", target, client=target.client)
            finally:
                await target.close()

    def run(self, coro_function):
        """Run `await coro_function()` in a fresh event loop (tests are synchronous)."""
        return asyncio.run(coro_function())

    def play(self, scenario, default_timeout=None):
        """Play a parsed scenario; skip (with the reason) what this target cannot do."""
        reason = self.config_skip_reason(scenario)
        if reason:
            pytest.skip(reason)
        if default_timeout is None:
            default_timeout = 3.0 if self.kind == "local" else 5.0
        outcome = {}

        async def go():
            board = self.board_for(scenario) if self.in_process else None
            async with self.open(scenario.config, scenario.clock, board) as session:
                for step in scenario.steps:
                    verb = INJECT_VERBS.get(step.verb)
                    if verb and not session.can_inject(verb):
                        outcome["skip"] = "%s line %d `%s`: %s" % (
                            os.path.basename(scenario.name), step.line_no, step.source,
                            session.injection_refusal(verb))
                        return
                try:
                    await Player(session.target, default_timeout=default_timeout).play(scenario)
                except InjectionUnavailable as exc:
                    outcome["skip"] = str(exc)

        try:
            self.run(go)
        except (ScenarioError, ManagementError) as exc:
            pytest.fail("%s on %s: %s" % (os.path.basename(scenario.name), self.where, exc), pytrace=False)
        if "skip" in outcome:
            pytest.skip(outcome["skip"])


@contextlib.asynccontextmanager
async def _local(board, config, clock):
    from kapos.harness import Harness

    async with Harness(board, overrides=[("host.reply_delay", "0")] + list(config), clock=clock) as harness:
        yield HilSession("local", harness.target, assembly=harness.assembly)
