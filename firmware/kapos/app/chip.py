"""The runtime side of the EMV kernel: real terminal data for the card in the field.

While the card screen is up, the NFC reader holds a session for this transaction
(type, amount, the terminal's date and time, currency and country from the config, a
fresh 9F37 from the OS CSPRNG for every card). The kernel runs on the reader's worker
thread, never on the loop; its Result rides on the Tap into the core, which puts field
55, 23 and the entry mode on the card for the host request. Off the card screen the
session is withdrawn, so a card tapped at idle or in the card test is not asked for a
cryptogram.
"""

import os
import threading
import time

from kapos.emv import apdu, kernel
from kapos.emv.terminal import TXN_TYPES, TerminalConfig, Transaction

# transaction types the kernel knows by 9C; others go as a purchase (00)
_KERNEL_TYPE = {name: name for name in TXN_TYPES}


def terminal_config(settings, random_bytes=os.urandom):
    """TerminalConfig from the core Settings (emv: country, limits)."""
    emv = getattr(settings, "emv", None) or {}
    return TerminalConfig(country=int(emv.get("country_code", "826")),
                          currency=int(settings.currency_code),
                          contactless_limit=emv.get("contactless_limit", 5000),
                          cvm_limit=emv.get("cvm_limit", 5000),
                          terminal_id=settings.terminal_id.encode()[:8],
                          random_bytes=random_bytes)


class ChipSession:
    """Armed by the card screen, withdrawn by any other; `__call__(exchange)` is what
    the NFC worker runs on an ISO-DEP card."""

    def __init__(self, settings, clock=time.time, random_bytes=os.urandom):
        # settings: the core Settings, or a callable giving the current ones (a parameter
        # update replaces them: the next card gets the new limits)
        self._settings = settings if callable(settings) else (lambda: settings)
        self._random = random_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._txn = None  # (type, amount) while the card screen is up
        self.last = None  # the last Result (tests, diagnostics); no card data in its repr

    def follow(self, reader, screen, data):
        """The runtime calls this on every screen: arm on 'card', withdraw elsewhere."""
        if screen == "card" and data.get("amount") is not None:
            with self._lock:
                self._txn = (data.get("type"), int(data.get("amount") or 0))
            reader.set_emv_session(self)
        elif screen != "card":
            with self._lock:
                self._txn = None
            reader.set_emv_session(None)

    def transaction(self):
        with self._lock:
            armed = self._txn
        if armed is None:
            return None
        kind, amount = armed
        now = time.localtime(self._clock())
        return Transaction(_KERNEL_TYPE.get(kind, "purchase"), amount,
                           time.strftime("%y%m%d", now), time.strftime("%H%M%S", now))

    def __call__(self, exchange):
        txn = self.transaction()
        if txn is None:  # withdrawn between the poll and the read: no cryptogram
            return None
        # Cardholder choice is not asked yet: the highest-priority candidate is used.
        config = terminal_config(self._settings(), self._random)
        result = kernel.run(apdu.Channel(exchange), config, txn, contactless=True,
                            choose=lambda candidates: candidates[0])
        self.last = result
        return result
