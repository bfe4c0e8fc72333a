"""NFC polling and card exchanges on a worker thread, results awaited by the loop.

A poll of the MFRC522 busy-reads ComIrqReg over SPI; a whole EMV read is tens of ms of
bus time (more with Python on a Zero) and a card asking for waiting time (S(WTX)) can
hold the exchange for seconds. None of that may run on the terminal's loop: `NfcWorker`
runs each poll cycle (field on, power-up guard, poll, field off) on one thread of its
own and `read_tap()` awaits it; the runtime turns the result into a TAP event as before.
One lock orders everything that touches the chip (poll cycles, self-test, close).
"""

import asyncio
import concurrent.futures
import threading
import time

from kapos import hal

SELFTEST_WAIT_S = 1.0


class NfcWorker(hal.NfcReader):
    """Wraps a kapos.drivers.mfrc522.Mfrc522NfcReader (anything with poll_with_field,
    poll_interval, selftest, close)."""

    def __init__(self, reader, sleep=time.sleep, name="nfc"):
        self.reader = reader
        self._sleep = sleep
        self._lock = threading.Lock()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kapos-" + name)
        self.cycles = 0

    def _cycle(self):
        with self._lock:
            self.cycles += 1
            return self.reader.poll_with_field(self._sleep)

    async def read_tap(self):
        loop = asyncio.get_running_loop()
        while True:
            tap = await loop.run_in_executor(self._executor, self._cycle)
            if tap is not None:
                return tap
            await asyncio.sleep(self.reader.poll_interval)

    def set_emv_session(self, session):
        self.reader.set_emv_session(session)  # read by the next poll cycle

    def selftest(self):
        # never waits long on the loop: a card being read holds the chip
        if not self._lock.acquire(timeout=SELFTEST_WAIT_S):
            return True, "reading a card (self-test skipped)"
        try:
            return self.reader.selftest()
        finally:
            self._lock.release()

    def close(self):
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self.reader.close()
