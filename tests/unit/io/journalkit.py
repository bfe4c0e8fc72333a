"""What the journal tests queue: a sale's timeout reversal as the host link stores it
(imported by name: `from journalkit import ...`)."""

from kapos.host import codec
from kapos.host import messages as m
from kapos.io import journal as J

UTC = (2026, 11, 25, 10, 0, 0)


def reversal_bytes(stan="000001"):
    original = m.build_financial_request("sale", 1000, stan, UTC, UTC, "KAPOS001",
                                         "KAPOS-MERCHANT1", "978", pan="0", private="BN006000001")
    message = m.build_reversal(original, "timeout")
    for n in J.SENSITIVE_QUEUE_FIELDS:
        message.pop(n, None)
    return codec.encode(message)
