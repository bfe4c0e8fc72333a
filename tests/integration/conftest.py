import os

import pytest

from kapos.app.scenario import Player, parse
from kapos.local_target import LocalTarget
from kapos.wiring import Assembly

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCENARIOS = os.path.join(ROOT, "tests", "scenarios")


class Running:
    """A terminal on the sim board running in the current event loop."""

    def __init__(self, overrides=(), out_dir=None, board="sim"):
        import tempfile

        self.data_dir = tempfile.mkdtemp(prefix="kapos-test-")
        base = [("host.reply_delay", "0"), ("storage.data_dir", '"%s"' % self.data_dir)]
        self.assembly = Assembly(board, overrides=base + list(overrides), out_dir=out_dir)
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

    async def play(self, text):
        await self.player.play(parse(text))


@pytest.fixture
def running():
    return Running
