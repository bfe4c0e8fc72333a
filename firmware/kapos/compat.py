"""The one CPython/MicroPython shim of the portable code (L0).

Portable modules import `const`, `ticks_ms`, `ticks_diff`, `sleep_us` from here and nothing
runtime-specific elsewhere, so the same files run under MicroPython later.
"""

# MICROPYTHON: by what the module has (const), not by whether `import micropython`
# works: on CPython it also does wherever a directory of that name is on the path
# (under pytest: tests/micropython/, a namespace package)
try:  # MicroPython
    from micropython import const  # type: ignore
    MICROPYTHON = True
except ImportError:  # CPython
    MICROPYTHON = False

    def const(value):
        return value


try:
    from time import ticks_ms, ticks_diff  # type: ignore  # MicroPython
except ImportError:
    import time as _time

    def ticks_ms():
        return int(_time.monotonic() * 1000)

    def ticks_diff(later, earlier):
        return later - earlier


try:
    from time import sleep_us  # type: ignore  # MicroPython
except ImportError:
    import time as _time

    def sleep_us(us):
        """Block the calling thread for `us` microseconds (a chip's start-up wait)."""
        _time.sleep(us / 1000000)


def wipe(buffer):
    """Overwrite a bytearray in place (PIN digits, key material)."""
    for i in range(len(buffer)):
        buffer[i] = 0
