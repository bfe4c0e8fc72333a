"""An in-process terminal with its management channel on an ephemeral loopback port:
what `kapos diag --board sim` and the HIL suite (`--target manage`) talk to.

    async with InProcessTerminal("sim", test_mode=True) as term:
        client = await ManagementClient.open(term.address, token=term.token)
        ...

The terminal runs in the current event loop; clients reach it only through TCP.
"""

import asyncio
import secrets

from kapos.services.management import ManagementServer
from kapos.wiring import Assembly


class InProcessTerminal:
    def __init__(self, board="sim", overrides=(), clock=None, test_mode=True, token=None, config_path=None):
        self.board = board
        self.overrides = list(overrides)
        self.clock = clock
        self.test_mode = test_mode
        self.token = token if token is not None else secrets.token_hex(16)
        self.config_path = config_path
        self.assembly = None
        self.server = None
        self.address = None  # "127.0.0.1:PORT"
        self._task = None

    async def __aenter__(self):
        self.assembly = Assembly(self.board, self.config_path, self.overrides, clock=self.clock,
                                 fresh_storage=True)
        try:
            ready = asyncio.Event()
            self._task = asyncio.ensure_future(self.assembly.terminal.run(ready))
            await ready.wait()
            self.server = ManagementServer(self.assembly.terminal, self.assembly.diagnostics,
                                           self.assembly.testcards, token=self.token, test_mode=self.test_mode)
            host, port = await self.server.start_tcp("127.0.0.1", 0)
            self.address = "%s:%d" % (host, port)
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(self, *exc):
        await self._stop()

    async def _stop(self):
        if self.server is not None:
            await self.server.close()
            self.server = None
        if self._task is not None:
            self.assembly.terminal.stop()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.assembly is not None:
            self.assembly.close()

    @property
    def terminal(self):
        return self.assembly.terminal
