"""The host-link interface the runtime talks to (L1: no I/O here, only the contract).

`kapos.io.host_link.HostAuthorizer` implements it over TCP/TLS or a serial line; the
simulated board gets the same class over an in-process loopback to the reference host's
engine. Every method the runtime, the technician menu or the management channel calls
is declared here, so nobody has to probe an authorizer with getattr.
"""

from kapos.errors import HostUnavailable  # noqa: F401  (re-exported for implementers)


class Authorizer:
    async def start(self):
        """Called once by the runtime before the first request (open links, resume
        pending reversals)."""

    async def authorize(self, request):
        """Send an authorization request (see core.handlers.authorization_request).

        Return a reply dict: approved (bool), code (2 chars), text, auth_code, rrn,
        stan, balance (minor units or None), pin_verified (bool). Raise HostUnavailable
        when not delivered."""
        raise NotImplementedError

    def cancel(self, ref, reason):
        """The terminal gave up on `ref` (timeout, hardware error): reverse it if the host
        approved it."""

    async def echo(self):
        """Network echo: {'ok', 'code', 'seconds'}; HostUnavailable when not answered."""
        raise HostUnavailable("no echo test on this host link")

    async def settle(self):
        """Reconcile the open batch: {'agreed', 'code', 'text', 'batch', 'totals',
        'host_totals'}; HostUnavailable when not answered; None when this host link has
        no settlement."""
        return None

    async def alert(self, data):
        """Deliver one anomaly alert ({'rule', 'detail'}); True when the host took it."""
        return False

    async def report_selftest(self, failed):
        """Tell the host the start-up self-test's result (names of the checks that
        failed, [] when all passed); True when the host took it. Never raises."""
        return False

    def pending(self):
        """How many reversals still wait to be delivered."""
        return 0

    def describe(self):
        """Lines about the host link (technician 'Network' screen)."""
        return []

    def journal_summary(self):
        """Lines about the journal (technician 'Journal' screen)."""
        return []

    def close(self):
        pass
