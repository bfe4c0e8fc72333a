"""kapos.io.host_link.HostAuthorizer against an in-memory host (no sockets):
message building, journal order, reply validation, the MAC hook, restart recovery,
composition from the config."""

import asyncio
import time

import pytest

from kapos import card as cards
from kapos.simdata import cards as testcards
from kapos.errors import HostUnavailable
from kapos.errors import ConfigError, LocalProtocolError
from kapos.host import codec
from kapos.host import messages as m
from kapos.io import journal as J
from kapos.host.client import Mac, encode_message, mac_ok
from kapos.io.host_link import HostAuthorizer, from_config
from kapos.security import cmac


class CmacMac(Mac):
    """AES-CMAC truncated to 8 bytes under one static key (no DUKPT)."""

    def __init__(self, key):
        self._key = bytes(key)

    def sign(self, data):
        return cmac.aes_cmac(self._key, data)[:8]

    def verify(self, data, mac):
        return cmac.aes_cmac_verify(self._key, data, mac, 8)
from kapos.io.journal import Journal
from kapos.io.transport import NoReply, NotDelivered, SerialTransport, TcpTransport, Transport

TC = testcards.load()
KEY = bytes(range(16))


def run(coro, timeout=20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def swipe(card_id="visa-debit"):
    return cards.parse_swipe(TC[card_id].swipe_text())


def request(ref, kind="sale", amount=1000, card=None, **kw):
    now = time.time()
    r = {"ref": ref, "type": kind, "amount": amount, "fee": 0, "currency_code": "978",
         "account": "debit", "card": card, "pin_block": None, "ksn": None, "target": None,
         "original": None, "token_data": None, "time": now, "date": "20261125",
         "terminal_id": "KAPOS001", "merchant_id": "KAPOS-MERCHANT1"}
    r.update(kw)
    return r


class FakeHost(Transport):
    """answer(message) -> list of reply messages (dicts, encoded here) / bytes / exception."""

    def __init__(self, answer=None, mac=None):
        self.answer = answer or approve
        self.mac = mac
        self.sent = []
        self.journal_seen = []  # journal status of the txn when each message was sent
        self.journal = None

    async def connect(self):
        pass

    async def request(self, payload, timeout, accept=None):
        message = codec.decode(payload)
        self.sent.append(message)
        if self.journal is not None and message.get(11):
            row = self.journal.find_by_stan(message[11])
            self.journal_seen.append(row["status"] if row else None)
        out = self.answer(message)
        if isinstance(out, Exception):
            raise out
        for reply in out:
            data = reply if isinstance(reply, bytes) else encode_message(reply, self.mac)
            if accept is None or accept(data):
                return data
            self._unsolicited(data)
        raise NoReply("no reply within %.1f s" % timeout)


def approve(message):
    fields = {37: "000000000042"}
    if message[m.MTI] in ("0100", "0200"):
        fields[38] = "654321"
    return [m.build_response(message, "00", fields)]


def make(tmp_path, answer=None, mac=None, host_mac=None, **kw):
    journal = Journal(str(tmp_path / "journal"))
    host = FakeHost(answer, mac=host_mac)
    host.journal = journal
    auth = HostAuthorizer(host, journal, "KAPOS001", "KAPOS-MERCHANT1", timeout=0.2,
                          retry_base=0.01, retry_max=0.05, mac=mac, **kw)
    return auth, host, journal


def test_the_request_is_journaled_with_its_reversal_before_it_is_sent(tmp_path):
    async def go():
        auth, host, journal = make(tmp_path, sign_on=False)
        await auth.start()
        reply = await auth.authorize(request(1, card=swipe()))
        assert reply == {"approved": True, "code": "00", "text": "Approved",
                         "auth_code": "654321", "rrn": "000000000042", "stan": "000001",
                         "balance": None, "pin_verified": False, "icc": None}
        assert host.journal_seen == [J.PENDING]
        row = journal.find_by_ref(1)
        assert row["status"] == J.APPROVED and row["auth_code"] == "654321"
        assert row["masked_pan"] == swipe().masked() and row["total"] == 1000
        assert row["masked_pan"].endswith("1111") and "411111111" not in row["masked_pan"]
        [item] = journal.queue_items(row["id"])
        stored = codec.decode(item["message"])
        assert item["state"] == J.ARMED and stored["mti"] == "0400"
        assert stored[90] == "0200" + "000001" + host.sent[0][7] + "0" * 22
        assert stored[37] == "000000000042" and stored[38] == "654321"
        assert not set(stored) & set(J.SENSITIVE_QUEUE_FIELDS)
        await auth.aclose()

    run(go())


@pytest.mark.parametrize("kind,account,code", [
    ("sale", "debit", "002000"), ("sale", "credit", "003000"), ("cash", "debit", "012000"),
    ("refund", "prepaid", "200000"), ("balance", "debit", "312000"),
    ("transfer", "debit", "402000"),
])
def test_processing_codes(tmp_path, kind, account, code):
    auth, host, journal = make(tmp_path)
    message = auth.build_request(request(1, kind, card=swipe(), account=account,
                                         target="5555555555554444"), "000001",
                                 time.gmtime(), 1)
    assert message[3] == code
    assert (4 in message) == (kind != "balance")


def test_builder_refusals(tmp_path):
    auth, host, journal = make(tmp_path)
    with pytest.raises(LocalProtocolError):
        auth.build_request(request(1, "transfer", card=swipe()), "000001", time.gmtime(), 1)
    with pytest.raises(LocalProtocolError):
        auth.build_request(request(1, "void", original={"ref": 1}), "000001", time.gmtime(), 1)


def test_a_reply_that_does_not_match_is_no_reply_and_reverses(tmp_path):
    def wrong_amount(message):
        if message["mti"] == "0200":
            reply = m.build_response(message, "00", {38: "000001"})
            reply[4] = "000000000001"
            return [reply]
        return approve(message)

    async def go():
        auth, host, journal = make(tmp_path, wrong_amount, sign_on=False)
        await auth.start()
        with pytest.raises(HostUnavailable, match="No reply from host"):
            await auth.authorize(request(1, card=swipe()))
        await auth.wait_idle()
        assert journal.find_by_ref(1)["status"] == J.REVERSED
        assert [s["mti"] for s in host.sent] == ["0200", "0400"]
        assert host.sent[1][39] == "68"  # timeout / response received too late
        await auth.aclose()

    run(go())


def test_garbled_and_incomplete_replies_are_no_reply(tmp_path):
    replies = iter([[b"0210garbage"], [{"mti": "0210", 11: "000001", 41: "KAPOS001"}]])

    def answer(message):
        if message["mti"] == "0200":
            out = next(replies)
            if isinstance(out[0], dict):
                out = [dict(out[0], **{"mti": "0210"})]
                out[0][11] = message[11]
                out[0][3] = message[3]
            return out
        return approve(message)

    async def go():
        auth, host, journal = make(tmp_path, answer, sign_on=False)
        await auth.start()
        for ref in (1, 2):
            with pytest.raises(HostUnavailable):
                await auth.authorize(request(ref, card=swipe()))
        await auth.wait_idle()
        assert journal.find_by_ref(2)["status"] == J.REVERSED
        await auth.aclose()

    run(go())


def test_not_delivered_is_unsent(tmp_path):
    async def go():
        auth, host, journal = make(tmp_path, lambda msg: NotDelivered("refused"), sign_on=False)
        await auth.start()
        with pytest.raises(HostUnavailable, match="Host unavailable"):
            await auth.authorize(request(1, card=swipe()))
        assert journal.find_by_ref(1)["status"] == J.UNSENT
        assert journal.pending_count() == 0
        await auth.aclose()

    run(go())


def test_mac_hook_signs_requests_and_a_bad_reply_mac_counts_as_no_reply(tmp_path):
    good = CmacMac(KEY)
    bad = CmacMac(bytes(16))

    async def go():
        auth, host, journal = make(tmp_path, mac=good, host_mac=good, sign_on=False)
        await auth.start()
        reply = await auth.authorize(request(1, card=swipe()))
        assert reply["approved"]
        sent = host.sent[0]
        assert 64 in sent and mac_ok(encode_message(sent, good), sent, good)
        host.mac = bad  # the host (or an attacker) signs with another key
        with pytest.raises(HostUnavailable):
            await auth.authorize(request(2, card=swipe()))
        host.mac = good
        await auth.wait_idle()
        reversal = [s for s in host.sent if s["mti"] == "0400"][0]
        assert 128 in reversal  # 90 is a secondary-bitmap field: MAC in 128
        assert journal.find_by_ref(2)["status"] == J.REVERSED
        await auth.aclose()

    run(go())


def test_start_reverses_what_a_crash_left_in_flight_before_new_work(tmp_path):
    async def go():
        auth, host, journal = make(tmp_path, sign_on=False)
        await auth.start()
        stan = journal.next_stan()
        message = auth.build_request(request(1, card=swipe()), stan, time.gmtime(), 1)
        from kapos.host.client import strip_for_storage
        reversal = codec.encode(strip_for_storage(m.build_reversal(message, "timeout")))
        journal.begin(1, stan, "0200", "sale", 1000, 0, 1000, message[7], 1,
                      reversal=(stan, reversal))
        await auth.aclose()  # "crash" with the request in flight

        auth, host, journal = make(tmp_path)
        await auth.start()
        await auth.wait_idle()
        assert [s["mti"] for s in host.sent] == ["0800", "0400"]
        assert host.sent[1][90][4:10] == stan
        assert journal.find_by_stan(stan)["status"] == J.REVERSED
        await auth.aclose()

    run(go())


def test_late_reply_for_a_transaction_given_up_is_noted(tmp_path):
    state = {"late": None}

    def answer(message):
        if message["mti"] == "0200":
            state["late"] = approve(message)[0]
            return []  # no reply now
        if message["mti"] == "0400":
            return [state["late"]] + approve(message)  # the late 0210 arrives first
        return approve(message)

    async def go():
        auth, host, journal = make(tmp_path, answer, sign_on=False)
        await auth.start()
        with pytest.raises(HostUnavailable):
            await auth.authorize(request(1, card=swipe()))
        await auth.wait_idle()
        row = journal.find_by_ref(1)
        assert row["status"] == J.REVERSED and row["late_code"] == "00"
        assert auth.late_replies == 1
        await auth.aclose()

    run(go())


def test_settle_flushes_reversals_first(tmp_path):
    def answer(message):
        if message["mti"] == "0500":
            return [m.build_response(message, "00")]
        return approve(message)

    async def go():
        auth, host, journal = make(tmp_path, answer, sign_on=False)
        await auth.start()
        await auth.authorize(request(1, card=swipe()))
        auth.cancel(1, "timeout")
        result = await auth.settle()
        mtis = [s["mti"] for s in host.sent]
        assert mtis.index("0400") < mtis.index("0500")
        assert result["agreed"] and result["totals"]["debits_count"] == 0
        assert host.sent[-1][48] == "BN006000001"
        await auth.aclose()

    run(go())


def base_config(**host):
    config = {"terminal": {"terminal_id": "KAPOS001", "merchant_id": "KAPOS-MERCHANT1",
                           "currency_code": "978"},
              "host": {"mode": "iso8583", "transport": "tcp", "address": "10.0.0.5:9000",
                       "tls": False, "tls_ca": "", "tls_hostname": "", "serial_url": "",
                       "serial_baud": 115200, "timeout": 8.0, "connect_timeout": 2.0,
                       "retry_base": 1.0, "retry_max": 30.0, "journal_dir": ""}}
    config["host"].update(host)
    return config


def test_from_config(tmp_path):
    auth = from_config(base_config(journal_dir=str(tmp_path / "j")))
    assert isinstance(auth.transport, TcpTransport)
    assert (auth.transport.host, auth.transport.port) == ("10.0.0.5", 9000)
    assert auth.timeout == 8.0 and auth.terminal_id == "KAPOS001"
    auth.close()
    serial = from_config(base_config(transport="serial", serial_url="/dev/ttyAMA0",
                                     journal_dir=str(tmp_path / "j")))
    assert isinstance(serial.transport, SerialTransport)
    serial.close()
    with pytest.raises(ConfigError, match="tls_ca"):
        from_config(base_config(tls=True, journal_dir=str(tmp_path / "j")))
    with pytest.raises(ConfigError):
        from_config(base_config(transport="carrier-pigeon", journal_dir=str(tmp_path / "j")))
    with pytest.raises(ConfigError):
        from_config(base_config(transport="serial", journal_dir=str(tmp_path / "j")))
