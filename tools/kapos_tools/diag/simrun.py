"""An in-process terminal with its management channel on an ephemeral loopback port:
what `kapos diag --board sim` and the HIL suite (`--target manage`) talk to.

    async with InProcessTerminal("sim", test_mode=True) as term:
        client = await ManagementClient.open(term.address, token=term.token)
        ...

The terminal runs in the current event loop; clients reach it only through TCP.
"""

import asyncio
import secrets

from kapos.app.management import ManagementServer
from kapos.harness import Harness


class InProcessTerminal:
    """A kapos.harness.Harness (fresh data directory, removed on exit) with its management
    channel on 127.0.0.1 and an ephemeral port."""

    def __init__(self, board="sim", overrides=(), clock=None, test_mode=True, token=None, config_path=None):
        self.harness = Harness(board, config_path, overrides, clock=clock)
        self.test_mode = test_mode
        self.token = token if token is not None else secrets.token_hex(16)
        self.server = None
        self.address = None  # "127.0.0.1:PORT"

    async def __aenter__(self):
        await self.harness.__aenter__()
        try:
            assembly = self.harness.assembly
            keystore = assembly.keystore
            self.server = ManagementServer(assembly.terminal, assembly.diagnostics, assembly.testcards,
                                           token=self.token, test_mode=self.test_mode,
                                           key_loader=assembly.load_keys if keystore else None,
                                           key_status=keystore.status if keystore else None)
            host, port = await self.server.start_tcp("127.0.0.1", 0)
            self.address = "%s:%d" % (host, port)
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(self, *exc):
        await self._stop()

    async def _stop(self):
        try:
            if self.server is not None:
                await self.server.close()
                self.server = None
        finally:
            await self.harness.__aexit__(None, None, None)

    @property
    def assembly(self):
        return self.harness.assembly

    @property
    def terminal(self):
        return self.harness.terminal


class BackgroundTerminal:
    """An InProcessTerminal running in its own thread and event loop: a stand-in for a
    terminal on another machine (tests of `kapos diag --connect` and of remote HIL
    targets, whose own code runs `asyncio.run`).

        with BackgroundTerminal("sim", test_mode=False) as term:
            run_something_against(term.address, term.token)
    """

    def __init__(self, board="sim", overrides=(), clock=None, test_mode=True, token=None, serial=None):
        import threading

        self._inner = InProcessTerminal(board, overrides, clock, test_mode, token)
        self._serial = serial  # also serve the channel on this serial URL
        self._thread = threading.Thread(target=self._run, name="kapos-background-terminal", daemon=True)
        self._started = threading.Event()
        self._loop = None
        self._stop = None
        self._error = None

    @property
    def address(self):
        return self._inner.address

    @property
    def token(self):
        return self._inner.token

    @property
    def terminal(self):
        return self._inner.terminal

    @property
    def server(self):
        return self._inner.server

    def call(self, fn, *args, **kwargs):
        """Run fn(*args, **kwargs) in the terminal's loop and return its result (a
        coroutine function is awaited there)."""
        import concurrent.futures

        async def go():
            result = fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        future = asyncio.run_coroutine_threadsafe(go(), self._loop)
        try:
            return future.result(timeout=30)
        except concurrent.futures.TimeoutError:
            raise TimeoutError("the background terminal did not answer")

    def _run(self):
        async def main():
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                async with self._inner:
                    if self._serial:
                        await self._inner.server.start_serial(self._serial)
                    self._started.set()
                    await self._stop.wait()
            except BaseException as exc:
                self._error = exc
                self._started.set()

        asyncio.run(main())

    def __enter__(self):
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc):
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
