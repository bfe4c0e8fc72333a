"""DUKPT MACs on the host link (issue 4): every message carries a KSN (field 53) and an
AES-CMAC (field 64/128) under the DUKPT MAC keys of that KSN. A reply with any single bit
flipped is rejected, counted as no reply and reversed; journal and ledger then agree.
A request with a bad MAC is refused by the host (63) and changes nothing."""

import os
import time

import pytest

from hostkit import Rig, request, run, swipe
from kapos.errors import HostUnavailable, SecurityError
from kapos.simdata.keys import TEST_BDK, ik_id_for
from kapos.host import codec
from kapos.security import dukpt
from kapos.security.cmac import aes_cmac
from kapos.io import journal as J
from kapos.host.client import encode_message
from kapos.io.keystore import KeyStore
from kapos.app.secmodule import DukptMac, SecurityModule
from kapos_tools.host.mac import HostDukptMac


def security(directory):
    store = KeyStore(os.path.join(str(directory), "keys"))
    ik_id = ik_id_for("KAPOS001")
    store.install(dukpt.derive_initial_key(TEST_BDK, ik_id), ik_id)
    return SecurityModule(store)


def mac_rig(tmp_path, **kw):
    return Rig(tmp_path, mac=DukptMac(security(tmp_path)), host_mac=HostDukptMac(TEST_BDK), **kw)


def test_macs_are_on_every_message_and_verify_both_ways(tmp_path):
    async def go():
        async with mac_rig(tmp_path) as rig:
            reply = await rig.auth.authorize(request(1, "sale", 1500, swipe("visa-debit")))
            assert reply["approved"] and rig.balance("visa-debit") == 100000 - 1500
            echo = await rig.auth.echo()
            assert echo["ok"]
            assert rig.server.stats["responses"] >= 3  # sign-on, sale, echo

    run(go())


def test_request_with_a_bad_mac_is_refused_and_changes_nothing(tmp_path):
    async def go():
        async with mac_rig(tmp_path, sign_on=False) as rig:
            message = rig.auth.build_request(request(1, "sale", 700, swipe("visa-debit")), "000009",
                                             time.gmtime(), 1)
            data = bytearray(encode_message(message, rig.auth.mac))
            assert codec.decode(rig.server.process(bytes(data)))[39] == "00", "intact: approved"
            message = rig.auth.build_request(request(2, "sale", 700, swipe("visa-debit")), "000010",
                                             time.gmtime(), 1)
            data = bytearray(encode_message(message, rig.auth.mac))
            data[30] ^= 0x01
            response = codec.decode(rig.server.process(bytes(data)))
            assert response[39] == "63"
            assert rig.balance("visa-debit") == 100000 - 700, "the refused request changed nothing"

    run(go())


def flips(length_bits, step):
    return list(range(0, length_bits, step))


@pytest.mark.parametrize("step", [1])
def test_every_flipped_bit_of_a_reply_is_rejected_and_reversed(tmp_path, step):
    """Each bit of the genuine 0210 (MTI, bitmap, fields, MAC) is flipped in turn."""
    async def go():
        async with mac_rig(tmp_path, proxy=True, timeout=0.3, retry_base=0.01, retry_max=0.05) as rig:
            genuine = await rig.auth.authorize(request(1, "sale", 100, swipe("visa-debit")))
            assert genuine["approved"]
            reply_bytes = rig.proxy.last_reply
            assert reply_bytes[:4] == b"0210"
            bits = len(reply_bytes) * 8
            rejected = 0
            ref = 2
            for bit in flips(bits, step):
                rig.proxy.fault("flip", arg=bit)
                with pytest.raises(HostUnavailable):
                    await rig.auth.authorize(request(ref, "sale", 100, swipe("visa-debit")))
                assert rig.journal.find_by_ref(ref)["status"] in (J.REVERSAL_PENDING, J.REVERSED)
                rejected += 1
                ref += 1
            await rig.auth.wait_idle(30)
            assert rig.check() == [], "journal and ledger disagree"
            assert rig.balance("visa-debit") == 100000 - 100, "only the genuine sale stands"
            print("\n%d single-bit flips of the 0210, %d rejected and reversed" % (rejected, rejected))

    run(go(), timeout=300)


def test_card_data_crosses_the_link_only_enciphered(tmp_path):
    """Track 2 goes in field 48 EC under the DUKPT data key; no field 2 or 35 in clear."""
    async def go():
        async with mac_rig(tmp_path, sign_on=False) as rig:
            message = rig.auth.build_request(request(1, "sale", 300, swipe("visa-debit")), "000011",
                                             time.gmtime(), 1)
            assert 35 not in message and 2 not in message and 53 in message
            data = encode_message(message, rig.auth.mac)
            assert b"4111111111111111" not in data and b"411111" not in data
            assert "EC" in codec.decode(data)[48]
            reply = codec.decode(rig.server.process(data))
            assert reply[39] == "00" and rig.balance("visa-debit") == 100000 - 300

    run(go())


def test_host_mac_check_refuses_any_other_tag_or_data():
    """HostDukptMac on its own: the terminal's request MAC (the reference code, under the
    MAC generation key of the KSN) verifies; a flipped bit of tag or data, a tag of another
    length or the reply key's tag does not; the reply MAC is the reference's."""
    ksn = dukpt.make_ksn(ik_id_for("KAPOS001"), 4242)
    host = HostDukptMac(TEST_BDK)
    data = os.urandom(90)
    request_key = dukpt.host_derive_working_key(TEST_BDK, ksn, dukpt.MAC_GENERATION)
    reply_key = dukpt.host_derive_working_key(TEST_BDK, ksn, dukpt.MAC_VERIFICATION)
    tag = aes_cmac(request_key, data)[:8]
    bound = host.bind({53: ksn})
    assert bound.verify(data, tag)
    for bit in range(64):
        bad = bytearray(tag)
        bad[bit // 8] ^= 1 << (bit % 8)
        assert not bound.verify(data, bytes(bad))
    for bit in range(0, len(data) * 8, 13):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        assert not bound.verify(bytes(bad), tag)
    assert not bound.verify(data, tag[:7]) and not bound.verify(data, aes_cmac(request_key, data)[:9])
    assert not bound.verify(data, aes_cmac(reply_key, data)[:8]), "the reply key is not the request key"
    assert bound.sign(data) == aes_cmac(reply_key, data)[:8]
    with pytest.raises(SecurityError):
        host.bind({})


@pytest.mark.parametrize("others", [
    [], [("BN", "000001")], [("BN", "000001"), ("FE", "%012d" % 80)],  # sorted, EC first/middle/last
    [("TK", "04A1B2C3"), ("BN", "000002")],  # not sorted: the rest comes out sorted
    [("AD", "x EC032" + "0" * 32), ("AR", "rule")]])  # an "EC" look-alike inside a value
def test_card_data_deciphers_and_leaves_the_rest_of_field_48_sorted(others):
    """decrypt_card_data cuts the EC item out of field 48 without re-packing it: whatever
    the item's place, what remains is the other items, sorted (as private48.pack makes
    them), and field 48 goes when nothing remains."""
    from Crypto.Cipher import AES

    from kapos.host import private48

    ksn = dukpt.make_ksn(ik_id_for("KAPOS001"), 99)
    key = dukpt.host_derive_working_key(TEST_BDK, ksn, dukpt.DATA_ENCRYPT)
    cipher = AES.new(key, AES.MODE_CBC, iv=bytes(16)).encrypt(cbc_pad(b"PN=4111111111111111;EX=3012"))
    host = HostDukptMac(TEST_BDK)
    for place in range(len(others) + 1):
        items = others[:place] + [("EC", cipher.hex().upper())] + others[place:]
        message = {53: ksn, 48: "".join("%s%03d%s" % (tag, len(value), value) for tag, value in items)}
        host.decrypt_card_data(message)
        assert message[2] == "4111111111111111" and message[14] == "3012"
        if others:
            assert message[48] == private48.pack(sorted(others))
        else:
            assert 48 not in message


def cbc_pad(data):
    from kapos.security.cbc import pad
    return pad(data)


def test_the_ledger_keeps_the_reply_as_sent_and_answers_its_repeats_with_it(tmp_path):
    """The host encodes and MACs a reply once: the journal row's stored response is the
    very reply the terminal got. The same bytes again, where the registry has no copy of
    the reply (none here; after a crash between the two writes), get that response, MACed
    again under the request's keys: byte for byte the first reply. Its repeat (0201: the
    same request under the next KSN, so another MAC and other ciphertext) gets the same
    response, MACed under the repeat's own keys; another sale under the same STAN is 94.
    Nothing is applied twice."""
    from kapos.host.client import check_reply

    async def go():
        async with mac_rig(tmp_path, sign_on=False) as rig:
            when = time.gmtime()
            first = rig.auth.build_request(request(1, "sale", 400, swipe("visa-debit")), "000012",
                                           when, 1)
            data = encode_message(first, rig.auth.mac)
            reply = rig.server.process(data)
            stored = rig.ledger.db.execute("SELECT response FROM txns WHERE stan = '000012'"
                                           ).fetchone()[0]
            assert bytes(stored) == reply
            assert check_reply(first, reply, rig.auth.mac)[39] == "00"
            assert rig.server.process(data) == reply  # (this rig has no registry's copy)
            again = rig.auth.build_request(request(1, "sale", 400, swipe("visa-debit")), "000012",
                                           when, 1)
            again["mti"] = "0201"
            assert again[53] != first[53] and again[48] != first[48]
            repeat = rig.server.process(encode_message(again, rig.auth.mac))
            answered = check_reply(again, repeat, rig.auth.mac)  # raises on a bad MAC
            original = codec.decode(reply)
            assert answered[39] == "00"
            assert (answered[37], answered[38]) == (original[37], original[38])
            other = rig.auth.build_request(request(1, "sale", 401, swipe("visa-debit")), "000012",
                                           when, 1)
            refused = check_reply(other, rig.server.process(encode_message(other, rig.auth.mac)),
                                  rig.auth.mac)
            assert refused[39] == "94"
            assert rig.balance("visa-debit") == 100000 - 400  # applied once

    run(go())

