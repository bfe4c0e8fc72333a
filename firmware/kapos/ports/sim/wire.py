"""Wire time for the simulated buses: a sim device that is given a Wire really takes the
time its bytes would take on a Pi (I2C at 100/400 kHz, SPI at the board's clock, a UART
at its baud rate), so benchmarks feel what a Pi feels and tests
can check that the loop is not the one waiting.

Board option (per device section): `wire_time = true`, with the bus speed keys the real
driver has (`i2c_hz`, `spi_hz`, `baudrate`). `time.sleep` cannot sleep microseconds, so
short costs add up and are slept in slices of about a millisecond: over a frame or a
card read the total is right, the single transfer is not.
"""

import threading
import time

SLICE_US = 1000.0


class Wire:
    def __init__(self, name, us_per_byte, overhead_us=0.0, sleep=time.sleep, clock=time.perf_counter):
        self.name = name
        self.us_per_byte = us_per_byte
        self.overhead_us = overhead_us
        self._sleep = sleep
        self._clock = clock
        self._owed_us = 0.0
        self._lock = threading.Lock()
        self.total_us = 0.0  # modelled wire time so far
        self.bytes = 0

    @classmethod
    def i2c(cls, hz=100000, **kw):
        # 8 data bits + ACK per byte; start, address byte and stop per transfer
        return cls("i2c %d kHz" % (hz // 1000), 9e6 / hz, overhead_us=20e6 / hz, **kw)

    @classmethod
    def spi(cls, hz=1000000, overhead_us=25.0, **kw):
        # overhead: one spidev ioctl and chip-select edges
        return cls("spi %g MHz" % (hz / 1e6), 8e6 / hz, overhead_us=overhead_us, **kw)

    @classmethod
    def uart(cls, baudrate=9600, **kw):
        return cls("uart %d baud" % baudrate, 10e6 / baudrate, **kw)  # start + 8 data + stop

    def send(self, nbytes, transfers=1):
        """Bytes on the wire in `transfers` separate transfers."""
        self.bytes += nbytes
        self.spend_us(nbytes * self.us_per_byte + transfers * self.overhead_us)

    def spend_us(self, us):
        with self._lock:
            self.total_us += us
            self._owed_us += us
            if self._owed_us < SLICE_US:
                return
            owed, self._owed_us = self._owed_us, 0.0
        started = self._clock()
        self._sleep(owed / 1e6)
        overslept = (self._clock() - started) * 1e6 - owed
        if overslept > 0:  # sleep runs long: count it against the next slice
            with self._lock:
                self._owed_us -= overslept
