"""`kapos diag`: diagnostics over a terminal's management channel (docs/diagnostics.md).

`register(subparsers)` is the `kapos.commands` entry point; `client.ManagementClient` is
the protocol client the HIL plugin shares.
"""

from .command import main, register

__all__ = ["main", "register"]
