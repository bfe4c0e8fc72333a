"""The integration tests' terminal: paths and `Running`, imported by name
(`from terminalrig import Running`). A helper module called conftest would be shadowed by
another directory's conftest.py whenever pytest collects several directories."""

import os

from kapos.harness import FRESH, Harness

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCENARIOS = os.path.join(ROOT, "tests", "scenarios")


class Running(Harness):
    """kapos.harness.Harness as the tests use it: the sim board, no reply delay, a temporary
    data directory removed when the terminal stops (or the caller's `data_dir`, kept)."""

    def __init__(self, overrides=(), out_dir=None, board="sim", clock=None, data_dir=None):
        Harness.__init__(self, board, overrides=[("host.reply_delay", "0")] + list(overrides),
                         data_dir=data_dir if data_dir else FRESH, clock=clock, out_dir=out_dir)
        self.assemble()  # callers look at .terminal / .platform before entering
