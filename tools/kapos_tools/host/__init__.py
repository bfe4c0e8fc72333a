"""`kapos host`: the reference ISO 8583 host for kapos terminals (test cards only).

    kapos host --listen 127.0.0.1:8583 --db host.db          # TCP
    kapos host --tls-cert host.pem --tls-key host.key        # TLS (a pinned private CA)
    kapos host --serial /dev/ttyUSB0 --listen off            # a serial line
    kapos host --db host.db --show-ledger                    # print the ledger, exit

    ledger   Ledger: accounts, cards, daily totals, transactions, reversals, batches,
             and the rules (docs/host.md)
    server   HostServer: asyncio TCP (+TLS) server and serial lines over a Ledger
    registry TerminalRegistry: enrolled terminals, their DUKPT IK IDs and KSN counters
    keyfile  the host's key file (PVV key, BDK, token key; 0600), private ledger files,
             secret options from files and the environment
    limits   connection caps, timeouts, rate-limited logging under a flood
    cli      register(subparsers) for the `kapos.commands` entry-point group
             (`kapos host`, `kapos host enroll | terminals | disable | enable`)

Plugged into `kapos` by pyproject.toml:
    [project.entry-points."kapos.commands"]
    host = "kapos_tools.host:register"
"""

from kapos_tools.host.cli import register, main  # noqa: F401
from kapos_tools.host.ledger import Ledger  # noqa: F401
from kapos_tools.host.registry import TerminalRegistry  # noqa: F401
from kapos_tools.host.server import HostServer, tls_server_context  # noqa: F401
