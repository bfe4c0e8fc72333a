"""docs/protocol.md section 15 is true: its annotated 0200 and 0210 are rebuilt byte for
byte from its stated inputs with the terminal's and the reference host's code, and its
keys, MACs, enciphered card data and PIN block check out with pycryptodome alone
(nothing from kapos.security is used for the checks)."""

import hashlib
import os
import re

import pytest
from Crypto.Cipher import AES
from Crypto.Hash import CMAC

from kapos.host import codec
from kapos.host import messages as m
from kapos.security import dukpt
from kapos.host.client import encode_message, mac_ok
from kapos.app.secmodule import DukptMac, SecurityModule
from kapos_tools.host.mac import HostDukptMac

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "protocol.md")


def doc_block(name):
    """The fenced block after `<!-- worked-example:NAME -->` in docs/protocol.md."""
    text = open(DOC, encoding="utf-8").read()
    found = re.search(r"<!-- worked-example:%s -->\s*```text\n(.*?)```" % name, text, re.S)
    assert found, "docs/protocol.md has no worked-example:%s block" % name
    return found.group(1)


def doc_values(name):
    """NAME = VALUE lines (anything after the value is a comment)."""
    values = {}
    for line in doc_block(name).splitlines():
        key, _, rest = line.partition("=")
        values[key.strip()] = rest.split()[0]
    return values


def doc_hex(name):
    """The hex column (left of '|') of an annotated message, as bytes."""
    return bytes.fromhex("".join(line.split("|")[0] for line in doc_block(name).splitlines()))


INPUTS = doc_values("inputs")
KEYS = {k: bytes.fromhex(v) for k, v in doc_values("keys").items()}


# ---------------------------------------------------------------- pycryptodome only

def aes(key, block):
    return AES.new(key, AES.MODE_ECB).encrypt(block)


def derive(parent, usage, tail):
    """One X9.24-3 AES-128 derivation step, as protocol.md 11.2 describes it."""
    return aes(parent, bytes((1, 1, usage >> 8, usage & 0xFF, 0, 2, 0, 0x80)) + tail)


def working_key(bdk, ksn, usage):
    ik_id, counter = ksn[:8], int.from_bytes(ksn[8:], "big")
    key = derive(bdk, 0x8001, ik_id)
    seen = 0
    for bit in range(31, -1, -1):
        if counter >> bit & 1:
            seen |= 1 << bit
            key = derive(key, 0x8000, ik_id[4:] + seen.to_bytes(4, "big"))
    return derive(key, usage, ik_id[4:] + ksn[8:])


def cmac8(key, data):
    return CMAC.new(key, msg=data, ciphermod=AES).digest()[:8]


def cbc_decrypt(key, data):
    return AES.new(key, AES.MODE_CBC, iv=bytes(16)).decrypt(data)


# ---------------------------------------------------------------- the project's code

class OneTerminal:
    """Just enough of a key store for the security module: a fresh DUKPT terminal."""

    def __init__(self, bdk, ik_id):
        self.terminal = dukpt.DukptTerminal.load_initial_key(dukpt.derive_initial_key(bdk, ik_id), ik_id)

    def next_transaction(self):
        _, ksn, keys = self.terminal.next_transaction()
        return ksn, keys


class SwipedCard:
    def __init__(self, pan):
        self._pan = pan

    def pan_for_host(self):
        return self._pan


def time_tuple():
    t, hms, md = INPUTS["transmission"], INPUTS["local_time"], INPUTS["local_date"]
    assert t[:4] == md and t[4:] == hms  # the example's terminal runs on UTC
    return (2026, int(md[:2]), int(md[2:]), int(hms[:2]), int(hms[2:4]), int(hms[4:]))


def build_with_kapos():
    """(request bytes, reply bytes, security module) the way the terminal and the host
    make them: PIN sealed first (its KSN), card data into 48 EC, then the MAC."""
    bdk = bytes.fromhex(INPUTS["BDK"])
    sm = SecurityModule(OneTerminal(bdk, bytes.fromhex(INPUTS["IK_ID"])),
                        random_bytes=lambda n: bytes.fromhex(INPUTS["pin_random"])[:n])
    track2 = INPUTS["track2"]
    pin_block, ksn = sm.seal(bytearray(INPUTS["pin"].encode()), len(INPUTS["pin"]),
                             SwipedCard(track2.split("=")[0]), "ref-1")
    when = time_tuple()
    message = m.build_financial_request(
        "sale", int(INPUTS["amount"]), INPUTS["stan"], when, when, INPUTS["terminal_id"],
        INPUTS["merchant_id"], INPUTS["currency"], track2=track2, pin_block=pin_block,
        ksn=ksn, private=m.pack_private([("BN", INPUTS["batch"])]), from_account=m.ACCOUNT_CHECKING)
    mac = DukptMac(sm)
    mac.encrypt_card_data(message)
    request = encode_message(message, mac)
    decoded = codec.decode(request)
    reply = m.build_response(decoded, "00", {37: INPUTS["rrn"], 38: INPUTS["auth_code"]})
    return request, encode_message(reply, HostDukptMac(bdk).bind(decoded)), sm


def test_the_documented_0200_and_0210_are_what_the_code_sends():
    request, reply, _ = build_with_kapos()
    assert request == doc_hex("0200")
    assert reply == doc_hex("0210")


def test_the_documented_keys_follow_from_bdk_and_ksn():
    bdk, ksn = bytes.fromhex(INPUTS["BDK"]), bytes.fromhex(INPUTS["KSN"])
    ik_id = bytes.fromhex(INPUTS["IK_ID"])
    assert ik_id == bytes.fromhex("12345678") + hashlib.sha256(INPUTS["terminal_id"].encode()).digest()[:4]
    assert ksn == ik_id + (1).to_bytes(4, "big")
    assert KEYS["INITIAL_KEY"] == derive(bdk, 0x8001, ik_id)
    assert KEYS["TRANSACTION_KEY"] == derive(KEYS["INITIAL_KEY"], 0x8000, ik_id[4:] + ksn[8:])
    for name, usage in (("PIN_KEY", 0x1000), ("MAC_REQUEST_KEY", 0x2000),
                        ("MAC_REPLY_KEY", 0x2001), ("DATA_KEY", 0x3000)):
        assert KEYS[name] == working_key(bdk, ksn, usage), name
        assert KEYS[name] == dukpt.host_derive_working_key(bdk, ksn, usage), name  # same as kapos


def test_the_request_mac_and_the_reply_mac_check_with_pycryptodome():
    request, reply = doc_hex("0200"), doc_hex("0210")
    assert request[-8:] == cmac8(KEYS["MAC_REQUEST_KEY"], request[:-8])
    assert reply[-8:] == cmac8(KEYS["MAC_REPLY_KEY"], reply[:-8])
    # the reply has no KSN of its own: it is bound to the request's
    assert 53 not in codec.decode(reply) and codec.decode(request)[53] == bytes.fromhex(INPUTS["KSN"])
    # the wrong direction's key, or the both-ways usage, does not verify
    assert request[-8:] != cmac8(KEYS["MAC_REPLY_KEY"], request[:-8])
    bdk, ksn = bytes.fromhex(INPUTS["BDK"]), bytes.fromhex(INPUTS["KSN"])
    assert request[-8:] != cmac8(working_key(bdk, ksn, 0x2002), request[:-8])


def test_the_terminal_accepts_the_documented_reply_and_rejects_any_bit_flip_of_it():
    _, _, sm = build_with_kapos()
    request = codec.decode(doc_hex("0200"))
    reply = doc_hex("0210")
    assert mac_ok(reply, codec.decode(reply), DukptMac(sm), request)
    flipped = bytearray(reply)
    flipped[30] ^= 0x01  # a digit of field 4 or 7: still decodes, MAC no longer matches
    assert not mac_ok(bytes(flipped), codec.decode(bytes(flipped)), DukptMac(sm), request)


def test_ec_deciphers_to_the_track_with_the_encrypt_usage_only():
    items = m.unpack_private(codec.decode(doc_hex("0200"))[48])
    assert set(items) == {"BN", "EC"} and items["BN"] == INPUTS["batch"]
    cipher_hex = items["EC"]
    assert cipher_hex == cipher_hex.upper() and len(cipher_hex) % 32 == 0
    plain = cbc_decrypt(KEYS["DATA_KEY"], bytes.fromhex(cipher_hex))
    text = ("T2=" + INPUTS["track2"]).encode()
    assert plain == text + b"\x80" + bytes(15 - len(text) % 16)  # ISO 9797-1 method 2
    bdk, ksn = bytes.fromhex(INPUTS["BDK"]), bytes.fromhex(INPUTS["KSN"])
    for other in (0x3001, 0x3002):  # the other two data usages give garbage
        assert not cbc_decrypt(working_key(bdk, ksn, other), bytes.fromhex(cipher_hex)).startswith(b"T2=")
    assert 35 not in codec.decode(doc_hex("0200")) and 2 not in codec.decode(doc_hex("0200"))


def test_the_pin_block_deciphers_to_the_pin_with_pycryptodome():
    block = codec.decode(doc_hex("0200"))[52]
    pan = INPUTS["track2"].split("=")[0]
    pan_field = bytes.fromhex(("%X" % (len(pan) - 12) + pan).ljust(32, "0"))
    ecb = AES.new(KEYS["PIN_KEY"], AES.MODE_ECB)
    intermediate = bytes(a ^ b for a, b in zip(ecb.decrypt(block), pan_field))
    pin_field = ecb.decrypt(intermediate).hex().upper()
    pin = INPUTS["pin"]
    assert pin_field == ("4%X" % len(pin) + pin).ljust(16, "A") + INPUTS["pin_random"]


@pytest.mark.parametrize("name", ["0200", "0210"])
def test_the_annotations_name_the_fields_the_hex_holds(name):
    """Each annotated line that names a field starts with that field's number, in
    order: the annotation cannot drift from the bytes."""
    data = doc_hex(name)
    fields = sorted(k for k in codec.decode(data) if k != "mti")
    named = []
    for line in doc_block(name).splitlines():
        note = line.split("|")[1].strip()
        number = re.match(r"(\d+)\b", note)
        if number and int(number.group(1)) not in named:
            named.append(int(number.group(1)))
    assert named == fields
