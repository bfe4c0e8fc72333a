"""The MicroPython port (L4): a Raspberry Pi Pico W running the portable core.

Devices over `machine` (devices.py), the host link over asyncio streams (hostlink.py),
DUKPT state in the flash filesystem (keystate.py) and the one loop (terminal.py). Every
module imports `machine`, `network` or micropython-lib drivers only inside the class that
needs them, so the whole port also runs on simulated buses (tests/micropython/)."""
