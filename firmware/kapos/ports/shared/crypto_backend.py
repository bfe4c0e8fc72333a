"""Start pycryptodome on its ctypes backend.

pycryptodome binds its C code through cffi when cffi is installed (it is, for other
packages), and cffi parses the C declarations with pycparser on every start: ~40 ms on a
PC, several hundred on a Pi Zero, before the terminal can show its idle screen. The
ctypes backend binds the same library with no parsing. Called by the composition before
anything imports Crypto; a no-op when Crypto or cffi is already loaded.
"""

import sys


def prefer_ctypes():
    if "Crypto.Util._raw_api" in sys.modules or "cffi" in sys.modules:
        return False
    sys.modules["cffi"] = None  # makes `import cffi` fail inside pycryptodome: it falls back to ctypes
    try:
        import Crypto.Util._raw_api  # noqa: F401
    finally:
        del sys.modules["cffi"]  # anyone else may import cffi as usual
    return True
