import os

import pytest

from kapos.app.scenario import Player, parse
from kapos.local_target import LocalTarget
from kapos.wiring import Assembly

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCENARIOS = os.path.join(ROOT, "tests", "scenarios")


class Running:
    """A terminal on the sim board running in the current event loop."""

    def __init__(self, overrides=(), out_dir=None, board="sim", clock=None, data_dir=None):
        """`data_dir`: keep the terminal's files there (the caller's, e.g. tmp_path);
        by default a temporary directory removed when the terminal stops."""
        import tempfile

        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="kapos-test-")
        self.data_dir = str(data_dir) if data_dir else self._tmp.name
        base = [("host.reply_delay", "0"), ("storage.data_dir", '"%s"' % self.data_dir)]
        self.assembly = Assembly(board, overrides=base + list(overrides), out_dir=out_dir, clock=clock)
        self.terminal = self.assembly.terminal
        self.platform = self.assembly.platform
        self.target = LocalTarget(self.terminal, self.assembly.testcards)
        self.player = Player(self.target, default_timeout=3.0)

    async def __aenter__(self):
        self._running = self.terminal.running()
        await self._running.__aenter__()
        return self

    async def __aexit__(self, *exc):
        try:
            await self._running.__aexit__(*exc)
        finally:
            self.assembly.close()
            if self._tmp is not None:
                self._tmp.cleanup()

    async def play(self, text):
        await self.player.play(parse(text))


@pytest.fixture
def running():
    return Running
