"""Attacks on the reference host's ledger and policy by someone with one legitimate
terminal of their own (its test keys), over TCP against the real host (HostServer + the
DUKPT MAC and card-data checks + Ledger). The messages are written by hand from the
dialect (docs/protocol.md), the way an outsider would, not with the terminal's client.

Each test failed on the host before the double-entry ledger and its lifecycle table:
money was created, credited or debited without limit, PINs and expiry were skipped, and
one message dropped the connection without a reply."""

import asyncio
import binascii
import struct
import time

from kapos.simdata.keys import TEST_BDK, ik_id_for
from kapos.host import codec
from kapos.host.framing import TcpFramer
from kapos.security import cbc, dukpt
from kapos.security.cmac import aes_cmac
from kapos_tools.host import HostServer, Ledger
from kapos_tools.host.mac import HostDukptMac

TID = "KAPOS001"
MID = "KAPOS-MERCHANT1"
VISA = "4111111111111111"  # visa-debit, 1,000.00, PIN 1234
LOW_FUNDS = "5105105105105100"  # 10.00
EXPIRED = "4012888888881881"  # expired in the host's record


def yymm(months_ahead):
    t = time.localtime()
    index = t.tm_year * 12 + t.tm_mon - 1 + months_ahead
    return "%02d%02d" % ((index // 12) % 100, index % 12 + 1)


class Attacker:
    """A terminal of one's own: messages MACed and card data enciphered under DUKPT keys
    from the test BDK, one fresh KSN per message."""

    def __init__(self, port):
        self.port = port
        self.counter = 0
        self.stan = 0
        self.framer = TcpFramer()

    async def __aenter__(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc):
        self.writer.close()

    def next_stan(self):
        self.stan += 1
        return "%06d" % self.stan

    def _ksn(self):
        self.counter += 1
        return ik_id_for(TID) + struct.pack(">I", self.counter)

    async def send(self, message, card=None):
        """Send `message` (a field dict); `card` is clear card data for 48 EC ("T2=..."
        or "PN=...;EX=..."). Returns the decoded reply, or None when the host closed the
        connection without one."""
        message = dict(message)
        ksn = self._ksn()
        message[53] = ksn
        if card is not None:
            key = dukpt.host_derive_working_key(TEST_BDK, ksn, dukpt.DATA_ENCRYPT)
            item = binascii.hexlify(cbc.encrypt(key, card.encode())).decode().upper()
            message[48] = message.get(48, "") + "EC%03d%s" % (len(item), item)
        field = 128 if any(n > 64 for n in message if isinstance(n, int)) else 64
        message[field] = bytes(8)
        data = codec.encode(message)
        key = dukpt.host_derive_working_key(TEST_BDK, ksn, dukpt.MAC_GENERATION)
        data = data[:-8] + aes_cmac(key, data[:-8])[:8]
        self.writer.write(self.framer.frame(data))
        await self.writer.drain()
        chunk = await asyncio.wait_for(self.reader.read(65536), 5)
        if not chunk:
            return None
        return codec.decode(self.framer.receive(chunk)[0])


def base(code, stan, amount=None, batch=True, entry="021", extra48=""):
    now = time.gmtime()
    local = time.localtime()
    message = {"mti": "0200", 3: code, 7: time.strftime("%m%d%H%M%S", now), 11: stan,
               12: time.strftime("%H%M%S", local), 13: time.strftime("%m%d", local),
               22: entry, 25: "00", 41: TID, 42: MID.ljust(15), 49: "978"}
    if amount is not None:
        message[4] = "%012d" % amount
    private = ("BN006000001" if batch else "") + extra48
    if private:
        message[48] = private
    return message


def track2(pan, expiry=None, service="101"):
    return "T2=%s=%s%s000" % (pan, expiry or yymm(48), service)


def reversal_of(original, stan_field_7, reply=None):
    message = {"mti": "0400", 3: original[3], 7: time.strftime("%m%d%H%M%S", time.gmtime()),
               11: original[11], 39: "68", 41: TID, 42: MID.ljust(15), 49: "978",
               90: "0200" + original[11] + stan_field_7 + "0" * 22}
    if 4 in original:
        message[4] = original[4]
    return message


def void_of(code, original, reply, stan):
    message = base(code, stan, int(original[4]), entry="001")
    message[37] = reply[37]
    message[90] = "0200" + original[11] + original[7] + "0" * 22
    return message


async def host(tmp_path, go):
    ledger = Ledger(str(tmp_path / "host.db"))
    ledger.load_cards()
    server = HostServer(ledger, mac=HostDukptMac(TEST_BDK))
    _, port = await server.start_tcp("127.0.0.1", 0)
    try:
        async with Attacker(port) as attacker:
            await go(attacker, ledger)
    finally:
        await server.close()
    assert ledger.check() == []
    assert ledger.show().endswith("consistency: ok")
    ledger.close()


def play(tmp_path, go):
    asyncio.run(asyncio.wait_for(host(tmp_path, go), 30))


# ---------------------------------------------------------------- money from nothing

def test_sale_void_then_reversal_of_the_sale_does_not_credit_twice(tmp_path):
    async def go(a, ledger):
        before = ledger.balance(VISA)
        sale = base("000000", a.next_stan(), 3000)
        reply = await a.send(sale, track2(VISA))
        assert reply[39] == "00"
        void = await a.send(void_of("020000", sale, reply, a.next_stan()))
        assert void[39] == "00" and ledger.balance(VISA) == before
        await a.send(reversal_of(sale, sale[7]))  # answered: it is already undone
        assert ledger.balance(VISA) == before  # the old host: before + 30.00

    play(tmp_path, go)


def test_refund_void_then_reversal_of_the_refund_does_not_move_money_twice(tmp_path):
    async def go(a, ledger):
        before = ledger.balance(VISA)
        refund = base("200000", a.next_stan(), 1500)
        reply = await a.send(refund, track2(VISA))
        assert reply[39] == "00" and ledger.balance(VISA) == before + 1500
        void = await a.send(void_of("220000", refund, reply, a.next_stan()))
        assert void[39] == "00" and ledger.balance(VISA) == before
        await a.send(reversal_of(refund, refund[7]))
        assert ledger.balance(VISA) == before  # the old host: before - 15.00

    play(tmp_path, go)


# ---------------------------------------------------------------- unlimited credits

def test_huge_refund_without_a_sale_is_declined(tmp_path):
    async def go(a, ledger):
        before = ledger.balance(VISA)
        reply = await a.send(base("200000", a.next_stan(), 900000000), track2(VISA))
        assert reply[39] == "61"  # over the merchant's unlinked refund limit
        assert ledger.balance(VISA) == before

    play(tmp_path, go)


def test_refund_to_a_keyed_pan_is_declined(tmp_path):
    async def go(a, ledger):
        before = ledger.balance(LOW_FUNDS)
        refund = base("200000", a.next_stan(), 5000, entry="011")
        reply = await a.send(refund, "PN=%s;EX=%s" % (LOW_FUNDS, yymm(12)))
        assert reply[39] == "57"
        assert ledger.balance(LOW_FUNDS) == before

    play(tmp_path, go)


def advice(code, stan, amount, pan):
    message = base(code, stan, amount)
    message["mti"] = "0220"
    message[2] = pan
    message[14] = yymm(12)
    message[38] = "123456"
    message[39] = "00"
    return message


def test_advice_cannot_credit_without_limit(tmp_path):
    async def go(a, ledger):
        before = ledger.balance(VISA)
        reply = await a.send(advice("200000", a.next_stan(), 500000, VISA))
        assert reply["mti"] == "0230" and reply[39] != "00"
        assert ledger.balance(VISA) == before  # the old host: + 5,000.00

    play(tmp_path, go)


def test_advice_cannot_debit_below_the_floor(tmp_path):
    async def go(a, ledger):
        huge = await a.send(advice("000000", a.next_stan(), 99999999, LOW_FUNDS))
        assert huge["mti"] == "0230" and huge[39] in ("51", "61")
        assert ledger.balance(LOW_FUNDS) == 1000  # the old host: -99,998,999
        over = await a.send(advice("000000", a.next_stan(), 1001, LOW_FUNDS))
        assert over[39] == "51"  # within the daily limit, one cent over the funds
        assert ledger.balance(LOW_FUNDS) == 1000

    play(tmp_path, go)


# ---------------------------------------------------------------- PIN and card checks

def test_cash_without_a_pin_on_a_pin_card_is_declined(tmp_path):
    async def go(a, ledger):
        before = ledger.balance(VISA)
        reply = await a.send(base("012000", a.next_stan(), 2000), track2(VISA))
        assert reply[39] == "55"
        assert ledger.balance(VISA) == before

    play(tmp_path, go)


def test_balance_inquiry_without_a_pin_on_a_pin_card_is_declined(tmp_path):
    async def go(a, ledger):
        reply = await a.send(base("312000", a.next_stan()), track2(VISA))
        assert reply[39] == "55" and 54 not in reply  # no balance disclosed

    play(tmp_path, go)


def test_expired_card_with_a_later_expiry_in_the_message_is_declined(tmp_path):
    async def go(a, ledger):
        assert ledger.db.execute("SELECT expiry FROM cards WHERE key = ?",
                                 (EXPIRED,)).fetchone()[0] < yymm(0)
        before = ledger.balance(EXPIRED)
        reply = await a.send(base("000000", a.next_stan(), 1000), track2(EXPIRED, yymm(36)))
        assert reply[39] == "54"
        assert ledger.balance(EXPIRED) == before

    play(tmp_path, go)


def test_thirty_digit_fee_gets_a_format_error_reply_not_a_dropped_connection(tmp_path):
    async def go(a, ledger):
        before = ledger.balance(VISA)
        message = base("000000", a.next_stan(), 1000, extra48="FE030" + "9" * 30)
        reply = await a.send(message, track2(VISA))
        assert reply is not None and reply[39] == "30"
        assert ledger.balance(VISA) == before
        again = await a.send(base("000000", a.next_stan(), 1000), track2(VISA))
        assert again[39] == "00"  # the same connection still serves

    play(tmp_path, go)


def test_financial_request_without_a_batch_number_is_refused(tmp_path):
    async def go(a, ledger):
        before = ledger.balance(VISA)
        reply = await a.send(base("000000", a.next_stan(), 1000, batch=False), track2(VISA))
        assert reply[39] == "30"
        assert ledger.balance(VISA) == before

    play(tmp_path, go)
