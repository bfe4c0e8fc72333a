"""A tap outside a sale (idle, the technician's card test): the card number through the
kernel's entry point, for any reader that hands over an ISO-DEP `exchange`.

`TrackReader(exchange)` -> track 2 text, None (an ISO-DEP card that is no payment card)
or CardReadError. It carries `reads_only` so a reader tells it from a sale's session (whose
Result rides on the Tap): its read errors are the reader's, as for any other read.

The terminal data it sends is that of a zero-amount purchase. The runtime gives it the
OS CSPRNG and the terminal's clock (app/chip.py); a reader built alone (bench, driver
tests) gets a zero 9F37 and date: nothing read this way is authorized or sent anywhere.
"""

from kapos.emv import apdu, kernel
from kapos.emv.terminal import TerminalConfig, Transaction


def _no_random(n):
    return bytes(n)


class TrackReader:
    reads_only = True

    def __init__(self, config=None, today=None):
        # config: a TerminalConfig or a callable giving one; today(): ('YYMMDD', 'hhmmss')
        if config is None:
            config = TerminalConfig(random_bytes=_no_random)
        self._config = config if callable(config) else (lambda: config)
        self._today = today

    def __call__(self, exchange):
        date, time = self._today() if self._today is not None else ("000000", "000000")
        txn = Transaction("purchase", 0, date, time)
        return kernel.read_track2(apdu.Channel(exchange), self._config(), txn)
