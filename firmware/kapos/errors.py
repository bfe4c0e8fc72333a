"""One error hierarchy for the whole firmware (L0).

Messages must never carry a PIN, a key, a full PAN or track data: errors end up in
logs and on screens. Code that raises with card input says *what* is wrong and *where*
(a field name, an offset), never the value.
"""


class KaposError(Exception):
    """Base of every error kapos raises on purpose."""


class ConfigError(KaposError):
    """A board file, a terminal config or a command-line value is wrong."""


class HardwareError(KaposError):
    """A peripheral failed: absent chip, bus error, printer offline."""


class CardReadError(KaposError):
    """Data read from a card is malformed (bad sentinel, LRC, Luhn, field)."""


class CardRejected(KaposError):
    """A card was read correctly but cannot be used (expired, not accepted)."""


class LocalProtocolError(KaposError):
    """We were asked to send something the protocol does not allow."""


class RemoteProtocolError(KaposError):
    """The peer sent something the protocol does not allow."""


class DecodeError(RemoteProtocolError):
    """A message failed to decode; `field` and `offset` say where."""

    def __init__(self, message, field=None, offset=None):
        where = []
        if field is not None:
            where.append("field %s" % field)
        if offset is not None:
            where.append("offset %d" % offset)
        if where:
            message = "%s (%s)" % (message, ", ".join(where))
        super().__init__(message)
        self.field = field
        self.offset = offset


class HostUnavailable(KaposError):
    """An authorization request could not be delivered or answered (link down, refused)."""


class SecurityError(KaposError):
    """A key, MAC or PIN block check failed, or keys are absent / exhausted."""


class KeyStoreError(SecurityError):
    """A key-store file (key-encryption key or sealed DUKPT state) is missing, truncated or corrupt."""


class ScenarioError(KaposError):
    """A scenario script is malformed or one of its expectations failed."""


class StartupError(KaposError):
    """The terminal or the host cannot start here: a port already in use, a data directory
    that is read-only or full. `short` is the reason in a few words, for the screen."""

    def __init__(self, message, short=None):
        KaposError.__init__(self, message)
        self.short = short or message


class UpdateError(KaposError):
    """A software update or a parameter set was refused (bad signature, hash, version, expiry, disk)."""
