"""HostAuthorizer: the I/O shell of the terminal's ISO 8583 client (asyncio + journal).

What to send and which reply to trust is `kapos.host.client` (portable, sans-I/O); this
module adds the transport, the SQLite journal, the clock and store and forward.

    journal = Journal("/var/lib/kapos")
    auth = HostAuthorizer(TcpTransport("127.0.0.1", 8583), journal, terminal_id="KAPOS001",
                          merchant_id="KAPOS-MERCHANT1", currency_code="978")
    await auth.start()                  # recover the journal, sign on (0800 001), S&F task
    reply = await auth.authorize(request)   # request: core.handlers.authorization_request
    auth.cancel(ref, "timeout")          # the terminal gave up on ref: reverse if needed
    await auth.echo(); await auth.settle()
    auth.close()

One authorization, in order (see docs/protocol.md):
 1. a STAN is taken from the journal (committed before use);
 2. the 0200 is built from the request dict (field 3 from the type and account, 22 from
    the card source, 35 for swipes and taps, 48 TK for tokens, TA for a transfer target,
    FE for a fee, BN the batch number, 52 the PIN block, 53 the KSN when there is one);
 3. the transaction is journaled `pending` together with its reversal (0400, field 90 =
    this message, no card data) armed - both in one commit, BEFORE anything is sent;
 4. the request is sent; the reply must decode, carry a good MAC (when a MAC is
    configured), match (MTI, STAN, terminal id, amount) and hold its required fields;
 5. the result is journaled BEFORE the reply dict is returned to the runtime: approved
    keeps the reversal armed (for a later cancel), a decline drops it;
 6. no reply in time, a garbled, mismatched or badly MACed reply, a reset connection:
    the reversal becomes due and HostUnavailable is raised ("No reply from host"); the
    store-and-forward task sends it as 0400, then repeats as 0420 / 0421 with
    exponential backoff (retry_base * 2**n, at most retry_max) until the host answers
    (any 0410/0430 response code ends it). A request that certainly never left (no
    connection) is journaled `unsent`: nothing to reverse.
A reply arriving after the terminal gave up is logged and noted in the journal; the
reversal stands. `cancel(ref)` reverses an approved transaction, or one still in flight
once its outcome is known. `start()` turns every transaction left `pending` by a crash
or power cut into a due reversal before anything else is sent.

MAC (fields 64/128): the `mac` hook of kapos.host.client (DUKPT: app.secmodule.DukptMac).
With no mac (the default) no MAC is sent and none is checked.
"""

import asyncio
import logging
import os
import time

from kapos import txn_types
from kapos.errors import ConfigError, DecodeError, HostUnavailable, KaposError, LocalProtocolError
from kapos.host import client
from kapos.host import codec
from kapos.host import messages as m
from kapos.host import private48 as P
from kapos.host.authorizer import Authorizer
from kapos.host.client import BadReply as BadReplyData
from kapos.host.codec import MTI
from kapos.io import journal as J
from kapos.io.transport import (NoReply, NotDelivered, LinkError, SerialTransport,
                                TcpTransport, parse_address, tls_client_context)

log = logging.getLogger("kapos.io.host_link")


class BadReply(NoReply):
    """A reply came but cannot be trusted: garbled, mismatched, bad MAC."""


# ---------------------------------------------------------------- the authorizer

def software_version(version=None):
    """`version` (an installed release's, which kapos.update may set on the authorizer),
    else the package's; None when it would not fit field 48 SV (the host would refuse it)."""
    from kapos import __version__

    version = version or __version__
    rule = P.TAGS[P.SOFTWARE_VERSION]
    if not isinstance(version, str) or not rule[0] <= len(version) <= rule[1] or not rule[2](version):
        log.warning("software version %r does not fit field 48 SV: not reported", version)
        return None
    return version


class HostAuthorizer(Authorizer):
    def __init__(self, transport, journal, terminal_id, merchant_id, currency_code="978",
                 timeout=10.0, retry_base=2.0, retry_max=60.0, mac=None, clock=time.time,
                 pin_capable=True, nii=None, sign_on=True, sign_on_timeout=5.0,
                 keep_batches=30):
        self.transport = transport
        self.journal = journal
        self.terminal_id = terminal_id
        self.merchant_id = merchant_id
        self.currency_code = currency_code
        self.timeout = timeout
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.mac = mac
        self.clock = clock
        self.pin_capable = pin_capable
        self.nii = nii
        self.sign_on_at_start = sign_on
        self.sign_on_timeout = sign_on_timeout
        self.keep_batches = keep_batches
        self.online = True  # False: behave as if the link were down (management test fault)
        self.signed_on = False
        # what every 0800 tells the host about this terminal (48 SV, ST: docs/protocol.md 3)
        self.software_version = software_version()
        self.selftest_status = P.SELFTEST_NOT_RUN
        self.late_replies = 0
        self._by_ref = {}  # ref -> journal id, for this process
        self._cancelled = {}  # journal id -> reason, cancelled while in flight
        self._recent_stans = []  # STANs sent by this process (stale-reply detection)
        self._wake = None
        self._queue_lock = None
        self._worker_task = None
        self._closed = False

    # ------------------------------------------------------------ lifecycle

    def _setup(self):
        if self._wake is None:
            self._wake = asyncio.Event()
            self._queue_lock = asyncio.Lock()
            self.transport.on_unsolicited = self._on_unsolicited

    async def start(self):
        self._setup()
        recovered = await self.journal.aio.recover()
        if recovered:
            log.warning("%d transaction(s) were in flight at the last stop: reversing",
                        recovered)
        if self.sign_on_at_start:
            try:
                await asyncio.wait_for(self.sign_on(), self.sign_on_timeout)
            except (HostUnavailable, asyncio.TimeoutError) as exc:
                log.warning("sign-on failed: %s", exc or "timeout")
            except KaposError as exc:  # e.g. no keys to MAC it with (tamper): start all the same
                log.warning("sign-on not sent: %s", exc)
        if self._worker_task is None:
            self._worker_task = asyncio.get_running_loop().create_task(self._worker())

    def close(self):
        self._closed = True
        task, self._worker_task = self._worker_task, None
        if task is not None and not task.done():
            try:
                task.cancel()
            except RuntimeError:  # its loop is already closed
                pass
        self.transport.close()
        self.journal.close()

    async def aclose(self):
        """close() from inside the loop, waiting for the store-and-forward task."""
        task = self._worker_task
        self._worker_task = None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.close()

    # ------------------------------------------------------------ authorize

    async def authorize(self, request):
        self._setup()
        if not self.online:
            raise HostUnavailable("Host unavailable")
        now = self.clock()
        kind = request["type"]
        batch = self.journal.current_batch()
        original_row = self._original_row(request) if txn_types.row(kind)["original"] else None
        # journal writes run on its writer thread (an SD card's fsync must not stall the
        # loop), each awaited: on disk before the next step
        stan = await self.journal.aio.next_stan()
        self._remember(stan)
        message = self.build_request(request, stan, time.gmtime(now), batch, original_row)
        payload = client.encode_message(message, self.mac)
        reversal = client.strip_for_storage(m.build_reversal(message, "timeout"))
        amount, fee, total = client.amounts(request, original_row)
        card = request.get("card")
        masked = card.masked() if card is not None else (request.get("original") or {}).get("card")
        txn_id = await self.journal.aio.begin(  # write-ahead: durable before the request leaves
            request.get("ref"), stan, message[MTI], kind, amount, fee, total, message[7], batch,
            masked_pan=masked, currency=message.get(49), local_date=request.get("date"),
            original_id=original_row["id"] if original_row else None,
            reversal=(stan, codec.encode(reversal)))
        self._by_ref[request.get("ref")] = txn_id
        if len(self._by_ref) > 1000:
            for old_ref in list(self._by_ref)[:-100]:
                del self._by_ref[old_ref]
        try:
            data = await self.transport.request(payload, self.timeout,
                                                accept=self._acceptor(message))
        except NotDelivered as exc:
            await self.journal.aio.mark_unsent(txn_id, str(exc))
            log.warning("ref %s not sent: %s", request.get("ref"), exc)
            raise HostUnavailable("Host unavailable")
        except NoReply as exc:
            await self._reverse_off_loop(txn_id, "timeout", str(exc))
            log.warning("ref %s stan %s: %s - reversing", request.get("ref"), stan, exc)
            raise HostUnavailable("No reply from host")
        except asyncio.CancelledError:  # shutting down with the request in flight
            try:
                self._reverse(txn_id, "error", "cancelled in flight")
            except Exception:  # the journal is closing: start() will recover it
                pass
            raise
        reply = codec.decode(data)
        result = client.reply_result(reply, stan)
        approved, code, balance = result["approved"], result["code"], result["balance"]
        new_reversal = None
        if approved:
            new_reversal = codec.encode(client.strip_for_storage(
                m.build_reversal(message, "timeout", response=reply)))
        try:
            await self.journal.aio.record_result(txn_id, approved, code, reply.get(38),
                                                 reply.get(37), balance,
                                                 reversal_message=new_reversal)
        except asyncio.CancelledError:  # shutting down: the (shielded) write still lands
            try:
                self._reverse(txn_id, "error", "cancelled in flight")
            except Exception:  # the journal is closing: start() will recover it
                pass
            raise
        except Exception as exc:  # not journaled = not shown: undo it at the host
            log.error("ref %s: cannot journal the reply (%s): reversing", request.get("ref"), exc)
            try:
                self._reverse(txn_id, "error", "journal write failed")
            except Exception:
                pass  # still `pending` on disk: reversed by the next start()
            raise HostUnavailable("Terminal journal error")
        reason = self._cancelled.pop(txn_id, None)
        if reason is not None and approved:
            log.warning("ref %s approved after the terminal gave up: reversing",
                        request.get("ref"))
            await self._reverse_off_loop(txn_id, reason, "cancelled while in flight")
        return result

    def cancel(self, ref, reason):
        # refs are terminal-local and restart with the terminal: only a ref authorized by
        # this process can be meant (never a same-numbered one from before a restart)
        txn_id = self._by_ref.get(ref)
        if txn_id is None:
            log.info("cancel of ref %s: nothing was sent for it", ref)
            return
        row = self.journal.get(txn_id)
        if row is None:
            return
        if row["status"] == J.PENDING:
            self._cancelled[txn_id] = reason  # decided when its reply (or none) comes
        elif row["status"] == J.APPROVED:
            log.warning("ref %s (stan %s) cancelled after approval (%s): reversing", ref,
                        row["stan"], reason)
            self._reverse(txn_id, reason, "cancelled: %s" % reason)

    def _reverse(self, txn_id, reason, note):
        """Make the reversal of `txn_id` due (with the reason code of `reason`); a write on
        the caller's thread (cancel(), shutdown)."""
        if self.journal.reverse(txn_id, note, self._reversal_message(txn_id, reason)):
            self._kick()

    async def _reverse_off_loop(self, txn_id, reason, note):
        """_reverse() with the write on the journal's writer thread, awaited: the reversal
        is due on disk before store and forward is woken to send it."""
        if await self.journal.aio.reverse(txn_id, note, self._reversal_message(txn_id, reason)):
            self._kick()

    def _reversal_message(self, txn_id, reason):
        """The armed reversal re-coded with the reason code of `reason` (None: unchanged)."""
        code_key = client.CANCEL_REASONS.get(reason, "error")
        code = m.REVERSAL_REASONS[code_key]
        message = None
        for item in self.journal.queue_items(txn_id):
            if item["kind"] == J.REVERSAL and item["state"] == J.ARMED:
                stored = codec.decode(item["message"])
                if stored.get(39) != code:
                    stored[39] = code
                    message = codec.encode(stored)
        return message

    # ------------------------------------------------------------ building

    def _original_row(self, request):
        original = request.get("original") or {}
        row = None
        if original.get("stan"):
            row = self.journal.find_by_stan(original["stan"])
        if row is None and original.get("rrn"):
            row = self.journal.find_by_rrn(original["rrn"])
        return row

    def build_request(self, request, stan, transmission, batch, original_row=None):
        """The 0200 for an authorization request dict (kapos.host.client.build_request),
        its card data enciphered when the MAC hook can (48 EC, DUKPT data key)."""
        local = time.localtime(request.get("time") or self.clock())
        ids = {"terminal_id": self.terminal_id, "merchant_id": self.merchant_id,
               "currency_code": self.currency_code, "pin_capable": self.pin_capable,
               "nii": self.nii}
        original = request.get("original")
        if original and original.get("time") and not original.get("transmission"):
            request = dict(request)
            request["original"] = dict(original, transmission=m.format_transmission(
                time.gmtime(original["time"])))
        message = client.build_request(request, stan, transmission, local, batch, ids,
                                       original_row)
        encrypt = getattr(self.mac, "encrypt_card_data", None)
        if encrypt is not None:
            encrypt(message)
        return message

    # ------------------------------------------------------------ replies

    def _remember(self, stan):
        self._recent_stans.append(stan)
        del self._recent_stans[:-1000]

    def _is_stale(self, reply, request):
        stan = reply.get(11)
        if stan == request.get(11) and reply.get(MTI) == m.response_mti(request[MTI]):
            return False
        if reply.get(MTI) not in m.RESPONSE_MTIS:
            return False
        return stan in self._recent_stans or self.journal.stan_used(stan)

    def _acceptor(self, request):
        """accept(payload) for transport.request: True for the reply to `request`,
        False for a stale reply to an earlier message, BadReply otherwise."""

        def accept(data):
            try:
                reply = client.check_reply(request, data, self.mac)
            except BadReplyData as exc:
                raise BadReply(str(exc))
            if reply is not None:
                return True
            reply = codec.decode(data)
            if self._is_stale(reply, request):
                return False
            raise BadReply("mismatched reply (MTI %s, STAN %s)" % (reply.get(MTI),
                                                                   reply.get(11)))

        return accept

    def _on_unsolicited(self, data):
        try:
            reply = codec.decode(data)
        except DecodeError as exc:
            log.warning("undecodable unsolicited message: %s", exc)
            return
        mti = reply.get(MTI)
        if mti in (m.MTI_FINANCIAL_RESPONSE, m.MTI_AUTH_RESPONSE):
            row = self.journal.find_by_stan(reply.get(11))
            if row is not None and row["status"] in (J.REVERSAL_PENDING, J.REVERSED):
                self.late_replies += 1
                self.journal.note_late_reply(row["id"], reply.get(39))
                log.warning("late reply %s for stan %s (ref %s) after giving up: reversal "
                            "stands", reply.get(39), row["stan"], row["ref"])
                self._kick()
                return
        log.info("stale %s (stan %s) dropped", mti, reply.get(11))

    async def _exchange(self, message, timeout=None):
        """Send a message, return the decoded, matching reply (LinkError otherwise)."""
        self._setup()
        if not self.online:
            raise NotDelivered("host link switched off (test fault)")
        data = await self.transport.request(client.encode_message(message, self.mac),
                                            timeout or self.timeout,
                                            accept=self._acceptor(message))
        return codec.decode(data)

    # ------------------------------------------------------------ network, settlement

    async def sign_on(self):
        """0800 sign-on (001); returns the response code ('00' = signed on)."""
        reply = await self._network(m.NETWORK_SIGN_ON)
        self.signed_on = reply[39] == m.APPROVED
        return reply[39]

    async def echo(self):
        """0800 echo test (301): {'ok', 'code', 'seconds'}; HostUnavailable if no reply."""
        started = time.monotonic()
        reply = await self._network(m.NETWORK_ECHO)
        return {"ok": reply[39] == m.APPROVED, "code": reply[39],
                "seconds": time.monotonic() - started}

    async def alert(self, data):
        """Send one anomaly alert (rule, detail) as a 0620; the host logs it."""
        # the STAN on the loop's thread, no await before the MAC: a tamper alert is MACed
        # before the runtime erases the keys one loop turn later (rare: one commit)
        stan = self.journal.next_stan()
        self._remember(stan)
        message = m.build_alert(data.get("rule"), data.get("detail", ""), stan,
                                time.gmtime(self.clock()), self.terminal_id)
        reply = await self._exchange(message)
        return reply[39] == m.APPROVED

    async def report_selftest(self, failed):
        """Note the start-up self-test's result (the names of the checks that failed) and
        tell the host with an echo; True when the host took it. Never raises: the result
        rides on every later 0800 too."""
        self.selftest_status = P.selftest_value(failed)
        try:
            return (await self.echo())["ok"]
        except KaposError as exc:
            log.warning("self-test result not reported to the host: %s", exc)
            return False

    def _status_items(self):
        items = [(P.SELFTEST, self.selftest_status)]
        if self.software_version:
            items.append((P.SOFTWARE_VERSION, self.software_version))
        return sorted(items)

    async def _network(self, code):
        stan = await self.journal.aio.next_stan()
        self._remember(stan)
        message = m.build_network(code, stan, time.gmtime(self.clock()), self.terminal_id,
                                  private=P.pack(self._status_items()))
        return await self._exchange(message)

    async def settle(self):
        """Reconcile the open batch (0500/0510).

        Pending reversals are delivered first (HostUnavailable if they cannot be). The
        batch is closed in the journal before the 0500 is sent, so transactions made
        meanwhile go to the next batch; a 0500 left unanswered is re-sent (same batch,
        same totals) by the next settle(). Returns {'agreed', 'code', 'text', 'batch',
        'totals', 'host_totals'}."""
        self._setup()
        await self.flush()
        number = await self.journal.aio.close_batch()
        totals = self.journal.batch_totals(number)  # its running totals: one row, any batch size
        stan = await self.journal.aio.next_stan()
        self._remember(stan)
        message = m.build_reconciliation(totals, stan, time.gmtime(self.clock()),
                                         self.terminal_id, self.merchant_id, self.currency_code)
        message[48] = P.pack([(P.BATCH, "%06d" % number)])
        try:
            reply = await self._exchange(message)
        except LinkError as exc:
            raise HostUnavailable("settlement of batch %d not answered: %s" % (number, exc))
        code = reply[39]
        agreed = code == client.RECONCILED
        host_totals = client.parse_host_totals(reply)
        await self.journal.aio.finish_batch(number, code, agreed, totals, host_totals)
        await self.journal.aio.prune(self.keep_batches)
        text = "Totals agreed" if agreed else (
            "Totals not agreed" if code == client.NOT_RECONCILED else m.response_text(code))
        return {"agreed": agreed, "code": code, "text": text, "batch": number,
                "totals": totals, "host_totals": host_totals}

    # ------------------------------------------------------------ status

    def describe(self):
        """Lines about the host link (technician 'Network' screen)."""
        transport = getattr(self.transport, "current", self.transport)  # failover: the active one
        if isinstance(transport, TcpTransport):
            where = "%s:%d%s" % (transport.host, transport.port, " TLS" if transport.tls else "")
        elif isinstance(transport, SerialTransport):
            where = "serial %s" % (transport.url or "port")
        else:
            where = type(transport).__name__
        return [where, "signed on %s" % ("yes" if self.signed_on else "no"),
                "link %s" % ("on" if self.online else "OFF (test fault)"),
                "to send %d" % self.journal.pending_count(),
                "last STAN %s" % self.journal.last_stan]

    def journal_summary(self):
        """Lines about the journal (technician 'Journal' screen)."""
        batch = self.journal.current_batch()
        counts = {}
        for row in self.journal.transactions(batch=batch):
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        lines = ["batch %06d" % batch]
        for status in J.STATUSES:
            if counts.get(status):
                lines.append("%-16s%5d" % (status, counts[status]))
        lines.append("to send %d" % self.journal.pending_count())
        if self.journal.settling_batch() is not None:
            lines.append("settling %06d" % self.journal.settling_batch())
        lines.append("last STAN %s" % self.journal.last_stan)
        return lines

    # ------------------------------------------------------------ store and forward

    def _kick(self):
        if self._wake is not None:
            self._wake.set()

    def pending(self):
        """Reversals waiting to be delivered."""
        return self.journal.pending_count()

    async def flush(self):
        """Try every due reversal once now; HostUnavailable if any remain."""
        self._setup()
        async with self._queue_lock:
            for item in self.journal.due():
                if not await self._send_item(item):
                    break
        left = self.journal.pending_count()
        if left:
            raise HostUnavailable("%d reversal(s) not delivered" % left)

    async def wait_idle(self, timeout=10.0):
        """Wait until the store-and-forward queue is empty (tests, shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.journal.pending_count():
            if loop.time() > deadline:
                raise asyncio.TimeoutError("%d item(s) still queued"
                                           % self.journal.pending_count())
            self._kick()
            await asyncio.sleep(0.02)

    async def _worker(self):
        while not self._closed:
            try:
                await self._work_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a journal or programming error must not end store and forward
                log.exception("store-and-forward failed; retrying in %.1f s", self.retry_max)
                await asyncio.sleep(self.retry_max)

    async def _work_once(self):
        self._wake.clear()
        if self.journal.due(self.clock()):
            async with self._queue_lock:
                for item in self.journal.due(self.clock()):
                    if not await self._send_item(item):
                        break
            return
        next_time = self.journal.next_due_time()
        wait = None if next_time is None else max(0.01, next_time - self.clock())
        try:
            await asyncio.wait_for(self._wake.wait(), wait)
        except asyncio.TimeoutError:
            pass

    async def _send_item(self, item):
        """One attempt at a queued message. True when the host answered it."""
        message = codec.decode(item["message"])
        message[MTI] = client.reversal_mti(item["attempts"])
        message[7] = m.format_transmission(time.gmtime(self.clock()))  # each attempt its own
        try:
            reply = await self._exchange(message)
        except LinkError as exc:
            delay = min(self.retry_base * (2 ** min(item["attempts"], 30)), self.retry_max)
            await self.journal.aio.attempt_failed(item["id"], self.clock() + delay, str(exc))
            log.info("%s %s (stan %s) attempt %d failed: %s; next in %.1f s", item["kind"],
                     message[MTI], item["stan"], item["attempts"] + 1, exc, delay)
            return False
        except (LocalProtocolError, DecodeError) as exc:  # a stored message we cannot send
            log.error("queued %s %s cannot be sent: %s", item["kind"], item["id"], exc)
            await self.journal.aio.attempt_failed(item["id"], self.clock() + self.retry_max, str(exc))
            return False
        await self.journal.aio.complete(item["id"], reply.get(39))
        log.info("%s %s (stan %s) answered %s", item["kind"], message[MTI], item["stan"],
                 reply.get(39))
        return True


# ---------------------------------------------------------------- composition

def from_config(config, mac=None, clock=None, transport=None):
    """A HostAuthorizer from the terminal config ([host] and [terminal] sections).

    Keys: host.transport ('tcp' | 'serial'), host.address, host.secondary_address (another
    host process on the same ledger: kapos.io.failover), host.tls, host.tls_ca,
    host.tls_hostname, host.serial_url, host.serial_baud, host.timeout,
    host.connect_timeout, host.retry_base, host.retry_max, and optionally
    host.journal_dir (default: storage.data_dir + "/journal").

    `clock` (seconds since the epoch, default time.time) is the terminal's clock: every
    field 7 and the journal's due times come from it, so a scripted run on the simulated
    clock stamps its messages with the same time as fields 12 and 13."""
    clock = clock or time.time
    h = config["host"]
    t = config["terminal"]
    transport_kind = h.get("transport", "tcp")
    if transport is not None:  # given: the loopback to an in-process host
        pass
    elif transport_kind == "tcp":
        host, port = parse_address(h.get("address", "127.0.0.1:8583"))
        tls = None
        if h.get("tls"):
            if not h.get("tls_ca"):
                raise ConfigError("host.tls needs host.tls_ca (the pinned CA certificate)")
            tls = tls_client_context(os.path.expanduser(h["tls_ca"]))
        transport = TcpTransport(host, port, tls=tls, server_hostname=h.get("tls_hostname") or None,
                                 connect_timeout=h.get("connect_timeout", 3.0))
        if h.get("secondary_address"):  # another host process on the same ledger
            from kapos.io.failover import FailoverTransport

            host2, port2 = parse_address(h["secondary_address"])
            transport = FailoverTransport(transport, TcpTransport(
                host2, port2, tls=tls, server_hostname=h.get("tls_hostname") or None,
                connect_timeout=h.get("connect_timeout", 3.0)),
                failback_after=h.get("failback_after", 60.0))
    elif transport_kind == "serial":
        if not h.get("serial_url"):
            raise ConfigError("host.transport = 'serial' needs host.serial_url")
        transport = SerialTransport(url=h["serial_url"], baudrate=h.get("serial_baud", 115200))
    else:
        raise ConfigError("host.transport %r is unknown (known: tcp, serial)" % transport_kind)
    directory = h.get("journal_dir") or os.path.join(
        config.get("storage", {}).get("data_dir", "var"), "journal")
    journal = J.Journal(os.path.expanduser(directory), clock=clock)
    return HostAuthorizer(transport, journal, terminal_id=t["terminal_id"],
                          merchant_id=t["merchant_id"], currency_code=t["currency_code"],
                          timeout=h.get("timeout", 10.0), retry_base=h.get("retry_base", 2.0),
                          retry_max=h.get("retry_max", 60.0), mac=mac, clock=clock,
                          )
