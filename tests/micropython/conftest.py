"""tests/micropython: the gate's modules (discover, gate) and tools/mpy on the path."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
for path in (HERE, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tools", "mpy")):
    if path not in sys.path:
        sys.path.insert(0, path)
