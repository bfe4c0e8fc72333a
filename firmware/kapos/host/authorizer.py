"""The authorization service interface the runtime talks to.

The foundation ships `testbank.TestBank` (in process); the ISO 8583 host client of
kapos.host plugs in behind the same two methods.
"""

from kapos.errors import KaposError


class HostUnavailable(KaposError):
    """The request could not be delivered (link down, refused)."""


class Authorizer:
    async def start(self):
        """Called once by the runtime before the first request (open links, resume
        pending reversals and advices)."""

    async def authorize(self, request):
        """Send an authorization request (see core.handlers.authorization_request).

        Return a reply dict: approved (bool), code (2 chars), text, auth_code, rrn,
        stan, balance (minor units or None). Raise HostUnavailable when not delivered."""
        raise NotImplementedError

    def cancel(self, ref, reason):
        """The terminal gave up on `ref` (timeout, hardware error): reverse it if the host
        approved it."""

    def close(self):
        pass
