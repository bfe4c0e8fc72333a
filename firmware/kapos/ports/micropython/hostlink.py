"""The host link of the Pico W: the same ISO 8583 messages, DUKPT MACs, enciphered card
data (field 48 EC) and TCP framing (2-byte length) as the Pi, over asyncio streams.

`opener(host, port)` returns (reader, writer): asyncio.open_connection on a Pico W with
Wi-Fi up; tests pass a bridge through node (MicroPython's WebAssembly build has no
sockets). Every reply must match its request and carry a valid response MAC, else it
counts as no reply (the terminal then shows the error; this port keeps no reversal
journal yet, docs/pico.md). Approved transactions add to the batch totals (batch.py);
`settle()` sends them as a 0500 through the same link."""

import binascii

from kapos.compat import wipe
from kapos.errors import RemoteProtocolError
from kapos.host import codec
from kapos.host import sale_messages as m
from kapos.host.tcp_framing import TcpFramer
from kapos.security import cbc, pinblock
from kapos.security.cmac import aes_cmac, aes_cmac_verify

MAC_LEN = 8
ENTRY = {"swipe": m.ENTRY_MAGSTRIPE, "tap": m.ENTRY_CONTACTLESS_CHIP}
ACCOUNTS = {"debit": m.ACCOUNT_CHECKING, "credit": m.ACCOUNT_CREDIT}


def _card_text(message):
    if 35 in message:
        return "T2=" + message.pop(35)
    text = "PN=" + message.pop(2)
    if 14 in message:
        text += ";EX=" + message.pop(14)
    return text


class HostLink:
    def __init__(self, keys, terminal_id, merchant_id, currency, address, opener, batch=None):
        self.keys = keys  # FlashKeyState
        self.batch = batch  # BatchTotals, or None: nothing is totalled
        self.terminal_id = terminal_id
        self.merchant_id = merchant_id
        self.currency = currency
        self.address = address
        self.opener = opener
        self.stan = m.Stan()
        # (ksn, keys) of the PIN sealed last, for its 0200. One slot: a sale that ends after
        # its PIN (cancelled, timed out) must not leave its keys in RAM for good.
        self._sealed = None

    def _take_sealed(self, ksn):
        """The keys sealed under `ksn`, or None; the slot is empty afterwards."""
        sealed, self._sealed = self._sealed, None
        if sealed is None:
            return None
        if ksn is not None and sealed[0] == bytes(ksn):
            return sealed[1]
        sealed[1].wipe()  # another transaction's keys, never to be used
        return None

    def seal_pin(self, pin, length, pan, random_bytes):
        """(block, ksn): the PIN block under a fresh transaction's PIN key; the digit
        buffers are wiped whatever happens. random_bytes(n) -> n random bytes."""
        self._take_sealed(None)  # wipes an earlier PIN's unused keys
        ksn, tk = self.keys.next_transaction()
        self._sealed = (bytes(ksn), tk)
        digits = pin[:length]
        try:
            return pinblock.encipher_iso4(tk.pin_key(), digits, pan, random_bytes), ksn
        finally:
            wipe(digits)
            wipe(pin)

    def build(self, request, transmission, local):
        ksn = request.get("ksn")
        tk = self._take_sealed(ksn)
        if tk is None:
            ksn, tk = self.keys.next_transaction()
        card = request["card"]
        track2 = card.track2_for_host()
        message = m.build_financial_request(
            request["type"], request["amount"], self.stan.next(), transmission, local,
            self.terminal_id, self.merchant_id, self.currency,
            pan=None if track2 else card.pan_for_host(), expiry=None if track2 else card.expiry,
            track2=track2, pan_entry=ENTRY.get(card.source, m.ENTRY_UNKNOWN),
            pin_block=request.get("pin_block"), ksn=ksn,
            private=m.pack_private([("BN", "%06d" % self._batch_number())]),
            from_account=ACCOUNTS.get(request.get("account"), m.ACCOUNT_DEFAULT))
        cipher = cbc.encrypt(tk.data_request_key(), _card_text(message).encode())
        items = m.unpack_private(message[48])
        items["EC"] = binascii.hexlify(cipher).decode().upper()
        message[48] = m.pack_private(sorted(items.items()))
        return message, self._sign(message, tk), tk

    def _batch_number(self):
        return self.batch.number if self.batch is not None else 1

    def _sign(self, message, tk):
        message[codec.mac_field(message)] = bytes(MAC_LEN)
        data = codec.encode(message)
        return codec.with_mac(data, aes_cmac(tk.mac_request_key(), codec.mac_input(data))[:MAC_LEN])

    async def _exchange(self, message, data, tk):
        """The verified reply to `message` (sent as `data`, MACed under tk)."""
        framer = TcpFramer()
        reader, writer = await self.opener(self.address[0], self.address[1])
        try:
            writer.write(framer.frame(data))
            await writer.drain()
            payload = None
            for _ in range(64):  # bounded: a reply is a few hundred bytes
                chunk = await reader.read(512)
                if not chunk:
                    break
                for message_bytes in framer.receive(chunk):
                    payload = message_bytes
                if payload is not None:
                    break
        finally:
            writer.close()
        if payload is None:
            raise RemoteProtocolError("no reply from host")
        reply = codec.decode(payload)
        field = codec.mac_field(reply)
        if field not in reply or not aes_cmac_verify(tk.mac_response_key(), codec.mac_input(payload),
                                                      reply[field], MAC_LEN):
            raise RemoteProtocolError("reply MAC does not verify")
        if not m.response_matches(message, reply):
            raise RemoteProtocolError("reply does not match the request")
        tk.wipe()
        return reply

    async def authorize(self, request, transmission, local):
        """The reply dict the core's HOST_REPLY wants; raises RemoteProtocolError."""
        message, data, tk = self.build(request, transmission, local)
        reply = await self._exchange(message, data, tk)
        code = reply.get(39, "96")
        approved = m.is_approved(code)
        if approved and self.batch is not None:  # saved before the terminal shows APPROVED
            self.batch.add(request["type"], request["amount"] + (request.get("fee") or 0))
        return {"approved": approved, "code": code, "text": m.response_text(code),
                "auth_code": reply.get(38), "rrn": reply.get(37)}

    async def settle(self, transmission):
        """Reconcile the open batch with a 0500 (MACed under a fresh DUKPT key, KSN in 53).

        The batch is closed on flash before the 0500 leaves, so a sale made meanwhile
        goes to the next one; unanswered, the same batch is sent again next time.
        Returns {'agreed', 'code', 'batch', 'totals', 'host_totals'}."""
        from kapos.host import private48 as P  # only a settlement needs these
        from kapos.host.totals import RECONCILED, parse_host_totals

        number, totals = self.batch.close()
        ksn, tk = self.keys.next_transaction()
        message = m.build_reconciliation(totals, self.stan.next(), transmission, self.terminal_id,
                                         self.merchant_id, self.currency)
        message[48] = P.pack([(P.BATCH, "%06d" % number)])
        message[53] = ksn
        reply = await self._exchange(message, self._sign(message, tk), tk)
        self.batch.settled()
        code = reply.get(39, "96")
        return {"agreed": code == RECONCILED, "code": code, "batch": number, "totals": totals,
                "host_totals": parse_host_totals(reply)}
