"""python-escpos' printer database, parsed once per install instead of once per start.

python-escpos parses its capabilities YAML (~90 ms on a PC, about a second on a Pi Zero)
and caches the result as a pickle in ESCPOS_CAPABILITIES_PICKLE_DIR -- by default a new
temporary directory every start, left behind, so the cache never hits. The composition
calls `use_cache_dir(<state dir>/cache/escpos)`; printers import python-escpos through
`load()`, only when a printer is built or first prints (a terminal that starts does not
pay for it before its idle screen).
"""

import os
import sys
import tempfile
import threading

_lock = threading.Lock()
_directory = None


def use_cache_dir(directory):
    """Keep python-escpos' parsed capabilities in `directory` (made when first needed)."""
    global _directory
    _directory = directory


def load():
    """Import python-escpos (escpos.printer) with the capabilities cache in place."""
    with _lock:
        if "escpos.capabilities" not in sys.modules and _directory is not None:
            try:
                os.makedirs(_directory, exist_ok=True)
            except OSError:  # the cache is an optimisation: start-up checks report the directory
                pass
            else:
                os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = _directory
                # python-escpos evaluates mkdtemp() as the default even when the variable is
                # set, leaving an empty directory per start: hand it ours while it imports.
                real = tempfile.mkdtemp
                tempfile.mkdtemp = lambda *args, **kwargs: _directory
                try:
                    import escpos.capabilities  # noqa: F401
                finally:
                    tempfile.mkdtemp = real
        import escpos.printer
    return escpos.printer
