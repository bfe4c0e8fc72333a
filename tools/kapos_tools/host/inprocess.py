"""The reference host's engine inside the terminal's process (the `kapos.hosts` entry
point "reference", registered in pyproject.toml).

The firmware never imports tools/: the wiring looks the engine up by entry point and
talks to it through `kapos.io.transport.LoopbackTransport` - the same ISO 8583 bytes,
MACs and DUKPT PIN blocks as over TCP, the same Ledger rules (PIN tries, holds, daily
limits, token anti-clone) - so a scripted run, the console and the tests meet one bank.

    engine = make_engine(ledger_path, clock=terminal_clock, cards_file=None, mac=True)
    reply = engine(payload)          # HostServer.process
    engine.ledger                    # for the tests
"""

from kapos.simdata.keys import TEST_BDK
from kapos_tools.host.ledger import Ledger
from kapos_tools.host.server import HostServer


class InProcessHost:
    def __init__(self, ledger, server):
        self.ledger = ledger
        self.server = server

    def __call__(self, payload):
        return self.server.process(payload)

    def close(self):
        self.ledger.close()


def make_engine(ledger_path=":memory:", clock=None, cards_file=None, mac=True):
    """A reference host on `ledger_path` (':memory:' or a file; the built-in test cards
    loaded, balances kept across runs of a file ledger), answering on `clock` (the
    terminal's: a scenario clock or libfaketime holds for both sides). `mac`: check the
    terminal's DUKPT MACs from the public test BDK (the sim's keys) and MAC the replies."""
    kw = {"synchronous": "OFF"}  # a simulation's ledger: no fsync per message
    if clock is not None:
        kw["clock"] = clock
    ledger = Ledger(ledger_path, **kw)
    ledger.load_cards(cards_file)
    host_mac = None
    if mac:
        from kapos_tools.host.mac import HostDukptMac
        host_mac = HostDukptMac(TEST_BDK)
    return InProcessHost(ledger, HostServer(ledger, mac=host_mac))
