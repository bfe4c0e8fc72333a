"""Primary and secondary host: one transport over two, for hosts that share one ledger
(several `kapos host` processes on one PostgreSQL database, docs/host.md).

    transport = FailoverTransport(TcpTransport(a, 8583), TcpTransport(b, 8583))

A request goes to the active host. When it cannot even be sent there (NotDelivered: no
connection, refused, TLS failed) it goes to the other one at once: it never left, so it
cannot be applied twice. When it was sent and no reply came (NoReply: a timeout, a reset)
the error goes to the caller as always - the message may have been applied, and the host
link's journal repeats it or reverses it - and the *next* request goes to the other host.
Repeats and reversals are answered exactly once by either host: both read the one
ledger, where a message is recorded once (by terminal, STAN and field 7) and a reversal
once per original. After `failback_after` seconds on the secondary the primary is tried
again (fail back); if it still cannot be reached the secondary takes the request.
"""

import logging
import time

from kapos.io.transport import NoReply, NotDelivered, Transport

log = logging.getLogger("kapos.io.failover")


class FailoverTransport(Transport):
    def __init__(self, primary, secondary, failback_after=60.0, clock=time.monotonic):
        self.hosts = [primary, secondary]
        self.failback_after = failback_after
        self.clock = clock
        self.active = 0  # index into hosts
        self._since = None  # when we left the primary
        self.failovers = 0

    def __repr__(self):
        return "FailoverTransport(%r, %r)" % tuple(self.hosts)

    @property
    def on_unsolicited(self):
        return self.hosts[0].on_unsolicited

    @on_unsolicited.setter
    def on_unsolicited(self, handler):
        for host in self.hosts:
            host.on_unsolicited = handler

    @property
    def current(self):
        return self.hosts[self.active]

    def _switch(self, to, why):
        if to == self.active:
            return
        log.warning("host %r: %s: using %s host %r", self.current, why,
                    "secondary" if to else "primary", self.hosts[to])
        self.current.close()
        self.active = to
        self.failovers += 1
        self._since = self.clock() if to == 1 else None

    async def connect(self):
        try:
            await self.current.connect()
        except NotDelivered as exc:
            self._switch(1 - self.active, exc)
            await self.current.connect()

    async def request(self, payload, timeout, accept=None):
        if self.active == 1 and self._since is not None \
                and self.clock() - self._since >= self.failback_after:
            self._switch(0, "failing back after %g s" % self.failback_after)
        try:
            return await self.current.request(payload, timeout, accept)
        except NotDelivered as exc:  # it never left: the other host may take it now
            self._switch(1 - self.active, exc)
            return await self.current.request(payload, timeout, accept)
        except NoReply as exc:  # it may have been applied: the caller repeats or reverses
            self._switch(1 - self.active, exc)
            raise

    def close(self):
        for host in self.hosts:
            host.close()
