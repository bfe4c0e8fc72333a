"""The host's fast DUKPT / CMAC / CBC (fastkeys.py) computes exactly what kapos.security
computes - the terminal's own code - for random keys, counters in any order and data, and
gives the published values: AES-CMAC of RFC 4493 section 4, AES DUKPT of the ANSI
X9.24-3-2017 supplement (kept in tests/unit/security/test_sec_dukpt_vectors.py)."""

import importlib.util
import os
import random
import threading
from pathlib import Path

import pytest

from kapos.errors import SecurityError
from kapos.security import cbc, dukpt
from kapos.security.aes import aes_encrypt_block
from kapos.security.cmac import aes_cmac
from kapos_tools.host.fastkeys import MESSAGE_USAGES, HostKeys, cbc_decrypt, cmac, cmac_verify


def valid_counters(rng, n):
    out = []
    while len(out) < n:
        c = rng.choice([rng.randrange(1, 1 << 12), rng.randrange(1, 1 << 32)])
        if dukpt.counter_is_valid(c):
            out.append(c)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_working_keys_match_the_reference_derivation(seed):
    rng = random.Random(seed)
    bdk = bytes(rng.randrange(256) for _ in range((16, 32)[seed % 2]))  # AES-128 and AES-256 BDKs
    keys = HostKeys(bdk)
    devices = [bytes(rng.randrange(256) for _ in range(8)) for _ in range(3)]
    counters = {d: 0 for d in devices}
    for step in range(120):
        device = rng.choice(devices)
        if rng.random() < 0.7:  # the next counter of that terminal, as in real traffic
            counters[device] += 1
            while not dukpt.counter_is_valid(counters[device]):
                counters[device] += 1
        else:  # any other counter: a jump, an older one, another terminal's
            counters[device] = valid_counters(rng, 1)[0]
        ksn = dukpt.make_ksn(device, counters[device])
        for usage in (dukpt.MAC_GENERATION, dukpt.MAC_VERIFICATION, dukpt.DATA_ENCRYPT,
                      dukpt.PIN_ENCRYPTION):
            assert keys.working_key(ksn, usage) == dukpt.host_derive_working_key(bdk, ksn, usage)


def test_consecutive_counters_cost_a_derivation_or_two_not_a_whole_walk():
    bdk = os.urandom(16)
    keys = HostKeys(bdk)
    device = os.urandom(8)
    keys.working_key(dukpt.make_ksn(device, 1000), dukpt.MAC_GENERATION)
    before = keys.derivations
    n = 0
    for counter in range(1001, 1101):
        if dukpt.counter_is_valid(counter):
            keys.working_key(dukpt.make_ksn(device, counter), dukpt.MAC_GENERATION)
            n += 1
    assert (keys.derivations - before) <= 2 * n  # a fresh walk would be ~6 per counter here


def test_cmac_and_cbc_match_the_reference():
    rng = random.Random(7)
    for length in (0, 1, 15, 16, 17, 32, 100, 191):
        key = bytes(rng.randrange(256) for _ in range(16))
        data = bytes(rng.randrange(256) for _ in range(length))
        assert cmac(key, data) == aes_cmac(key, data)
        assert cmac_verify(key, data, aes_cmac(key, data)[:8], 8)
        assert not cmac_verify(key, data + b"x", aes_cmac(key, data)[:8], 8)
        assert not cmac_verify(key, data, aes_cmac(key, data)[:7], 8)
        assert cbc_decrypt(key, cbc.encrypt(key, data)) == data
    with pytest.raises(SecurityError):
        cbc_decrypt(bytes(16), bytes(15))
    with pytest.raises(SecurityError):
        cbc_decrypt(bytes(16), bytes(16))  # deciphers to no 0x80 padding


def test_other_usages_and_key_types_match_the_reference():
    """Keys outside the per-message set (AES-256 working keys, the other usages) are
    derived on their own; an AES-256 key from an AES-128 BDK is refused, as by the
    reference."""
    for bdk in (os.urandom(16), os.urandom(32)):
        keys = HostKeys(bdk)
        ksn = dukpt.make_ksn(os.urandom(8), 77)
        for usage in dukpt.WORKING_USAGES:
            for key_type in (dukpt.AES128, dukpt.AES256):
                if len(bdk) == 16 and key_type == dukpt.AES256:
                    with pytest.raises(SecurityError):
                        dukpt.host_derive_working_key(bdk, ksn, usage, key_type)
                    with pytest.raises(SecurityError):
                        keys.working_key(ksn, usage, key_type)
                    continue
                assert (keys.working_key(ksn, usage, key_type)
                        == dukpt.host_derive_working_key(bdk, ksn, usage, key_type))
    with pytest.raises(SecurityError):
        keys.working_key(ksn, dukpt.KEY_DERIVATION)  # not a working key usage
    with pytest.raises(SecurityError):
        keys.working_key(dukpt.make_ksn(os.urandom(8), 0x1FFFF), dukpt.MAC_GENERATION)  # 17 one-bits


def test_a_message_costs_one_intermediate_key_and_one_working_key_call():
    """Over a run of consecutive counters each message (all four of its working keys, the
    request MAC check, the card data and the reply MAC) derives exactly one intermediate
    key (the counter's new lowest one-bit; its higher bits are the previous walk's) and
    its working keys in one encrypt call; a fresh walk from the IK would be ~6 here. The
    one new AES key set up for them is the transaction key's: the intermediate key is
    derived under a parent whose cipher the previous walk already set up."""
    bdk = os.urandom(16)
    keys = HostKeys(bdk)
    devices = [os.urandom(8) for _ in range(4)]
    for device in devices:
        keys.working_key(dukpt.make_ksn(device, 1000), dukpt.MAC_GENERATION)
    before, working_before, ciphers_before = keys.derivations, keys.working_derivations, keys.ciphers
    data = os.urandom(96)
    n = 0
    for counter in range(1001, 1101):
        for device in devices:  # terminals interleaved, as on a busy host
            ksn = dukpt.make_ksn(device, counter)
            tag = cmac(keys.working_key(ksn, dukpt.MAC_GENERATION), data)[:8]
            assert cmac_verify(keys.working_key(ksn, dukpt.MAC_GENERATION), data, tag, 8)
            for usage in (dukpt.DATA_ENCRYPT, dukpt.PIN_ENCRYPTION, dukpt.MAC_VERIFICATION):
                keys.working_key(ksn, usage)
            n += 1
    assert keys.derivations - before == n
    assert keys.working_derivations - working_before == n
    assert keys.ciphers - ciphers_before == n
    # a jump walks only the one-bits at and below the highest bit that changed
    device = devices[0]
    before = keys.derivations
    keys.transaction_key(dukpt.make_ksn(device, 0x00F00000 | 1100))  # from 1100: all new
    assert keys.derivations - before == bin(0x00F00000 | 1100).count("1")
    before = keys.derivations
    keys.transaction_key(dukpt.make_ksn(device, 0x00F10000 | 1100))  # bit 16: 0xF0 shared
    assert keys.derivations - before == bin(0x00010000 | 1100).count("1")


def test_concurrent_threads_get_the_same_keys():
    bdk = os.urandom(16)
    devices = [os.urandom(8) for _ in range(6)]
    ksns = [dukpt.make_ksn(d, c) for c in range(1, 60) for d in devices]
    expected = {ksn: HostKeys(bdk).working_key(ksn, dukpt.DATA_ENCRYPT) for ksn in ksns}
    shared = HostKeys(bdk)
    results, errors = {}, []

    def work(offset):
        try:
            for ksn in ksns[offset:] + ksns[:offset]:
                results.setdefault(ksn, set()).add(shared.working_key(ksn, dukpt.DATA_ENCRYPT))
        except Exception as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n * 7,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and not any(t.is_alive() for t in threads)
    assert results == {ksn: {key} for ksn, key in expected.items()}


# ---------------------------------------------------------------- published vectors

# RFC 4493 section 4 (the NIST SP 800-38B AES-128 examples): key, the 64-byte message
# and the tags of its first 0, 16, 40 and 64 bytes.
RFC_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
RFC_MSG = bytes.fromhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
                        "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
RFC_TAGS = [(0, "bb1d6929e95937287fa37d129b756746"), (16, "070a16b46b4d4144f79bdd9dd04a287c"),
            (40, "dfa66747de9ae63030ca32611497c827"), (64, "51f0bebf7e3b9d92fc49741779363cfe")]


@pytest.mark.parametrize("length,tag", RFC_TAGS)
def test_cmac_rfc4493_examples(length, tag):
    message, tag = RFC_MSG[:length], bytes.fromhex(tag)
    assert cmac(RFC_KEY, message) == tag
    assert cmac_verify(RFC_KEY, message, tag, 16)
    assert cmac_verify(RFC_KEY, message, tag[:8], 8)  # truncated as on the host link


def test_cmac_verify_refuses_a_bad_or_shortened_tag():
    message, tag = RFC_MSG[:16], bytes.fromhex("070a16b46b4d4144")  # RFC 4493 Example 2, 8 bytes
    assert cmac_verify(RFC_KEY, message, tag, 8)
    for bit in range(64):
        flipped = bytearray(tag)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert not cmac_verify(RFC_KEY, message, bytes(flipped), 8)
    assert not cmac_verify(RFC_KEY, message[:15], tag, 8)
    # the length is the protocol's, never the received tag's
    assert not cmac_verify(RFC_KEY, message, tag[:4], 8)
    assert not cmac_verify(RFC_KEY, message, tag + b"\x00", 8)
    assert not cmac_verify(RFC_KEY, message, b"", 8)
    with pytest.raises(SecurityError):
        cmac_verify(RFC_KEY, message, tag[:2], 2)


def _published_dukpt_vectors():
    """The ANSI X9.24-3-2017 supplement's values, kept once (with their source) in
    tests/unit/security/test_sec_dukpt_vectors.py."""
    path = Path(__file__).parents[2] / "unit" / "security" / "test_sec_dukpt_vectors.py"
    spec = importlib.util.spec_from_file_location("published_dukpt_vectors", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


X924 = _published_dukpt_vectors()


@pytest.mark.parametrize("bdk,transaction_keys", [(X924.BDK128, X924.TXN128), (X924.BDK256, X924.TXN256)])
def test_transaction_keys_x9_24_3_vectors(bdk, transaction_keys):
    """ANSI X9.24-3-2017 supplement: intermediate derivation keys of counters 1-8, the
    0x1FFFE -> 0x20000 rollover and the last four, walked in that order (the cached walk
    shared, diverging, and jumping)."""
    keys = HostKeys(bdk)
    for counter in sorted(transaction_keys):
        assert keys.transaction_key(X924.ksn(counter)).hex().upper() == transaction_keys[counter]
    for counter in sorted(transaction_keys, reverse=True):  # backwards: no walk shared wrongly
        assert keys.transaction_key(X924.ksn(counter)).hex().upper() == transaction_keys[counter]


def test_working_keys_x9_24_3_vectors():
    """ANSI X9.24-3-2017 supplement: PIN, MAC generation and data encryption keys for
    counters 1-8 (AES-128 BDK; AES-256 BDK with AES-128 and AES-256 working keys); the
    MAC verification key of counter 1 is the cross-implementation value (5n00py/paysec)
    that file cites."""
    keys = HostKeys(X924.BDK128)
    for i, counter in enumerate(X924.FIRST_EIGHT):
        ksn = X924.ksn(counter)
        assert keys.working_key(ksn, dukpt.PIN_ENCRYPTION).hex().upper() == X924.PIN128[i]
        assert keys.working_key(ksn, dukpt.MAC_GENERATION).hex().upper() == X924.MACGEN128[i]
        assert keys.working_key(ksn, dukpt.DATA_ENCRYPT).hex().upper() == X924.DATAENC128[i]
    usages = dict(X924.ALL_USAGES_COUNTER1)
    assert (HostKeys(X924.BDK128).working_key(X924.ksn(1), dukpt.MAC_VERIFICATION).hex().upper()
            == usages[dukpt.MAC_VERIFICATION])
    keys = HostKeys(X924.BDK256)
    for (usage, key_type), expected in sorted(X924.WORKING256.items()):
        got = [keys.working_key(X924.ksn(c), usage, key_type).hex().upper() for c in X924.FIRST_EIGHT]
        assert got == expected


# ---------------------------------------------------------------- caches that must not go stale

def test_interleaved_ksns_and_bindings_never_get_another_ksns_keys():
    """The keys of the last KSN are read without the lock: two terminals, and two counters
    of one terminal, asked for in turn, each get their own keys, the reference's: those of
    the per-message set and a usage outside it (derived on its own, added to the set)."""
    other = sorted(set(dukpt.WORKING_USAGES) - set(MESSAGE_USAGES))[0]
    bdk = os.urandom(16)
    keys = HostKeys(bdk)
    a, b = os.urandom(8), os.urandom(8)
    ksns = [dukpt.make_ksn(a, 5), dukpt.make_ksn(b, 5), dukpt.make_ksn(a, 6), dukpt.make_ksn(a, 5),
            dukpt.make_ksn(b, 9), dukpt.make_ksn(b, 5)]
    for first, second in zip(ksns, ksns[1:]):
        for usage in (dukpt.MAC_GENERATION, dukpt.DATA_ENCRYPT, other):
            keys.working_key(first, usage)
            assert keys.working_key(second, usage) == dukpt.host_derive_working_key(bdk, second, usage)
            assert keys.working_key(first, usage) == dukpt.host_derive_working_key(bdk, first, usage)
    # a bytearray KSN equal to the last one is the same KSN
    assert keys.working_key(bytearray(ksns[-1]), dukpt.MAC_VERIFICATION) == \
        dukpt.host_derive_working_key(bdk, ksns[-1], dukpt.MAC_VERIFICATION)


def test_a_terminal_whose_walk_was_evicted_gets_the_right_keys_again():
    """The walks and initial keys are kept for the most recent terminals only; one that was
    dropped starts a new walk from its (derived again) initial key and gets the reference's
    keys, and so do the others, whose kept walks the eviction did not touch."""
    bdk = os.urandom(16)
    keys = HostKeys(bdk)
    keys._walks.limit = keys._initial.limit = 2  # so that a third terminal evicts the first
    devices = [os.urandom(8) for _ in range(3)]
    for counter in (1, 2, 3, 8, 9, 0x10000, 0x10001):
        for device in devices:
            ksn = dukpt.make_ksn(device, counter)
            assert len(keys._walks) <= 2
            for usage in (dukpt.MAC_GENERATION, dukpt.PIN_ENCRYPTION):
                assert keys.working_key(ksn, usage) == dukpt.host_derive_working_key(bdk, ksn, usage)
    # the first terminal again after the other two: evicted, walked afresh from its IK
    ksn = dukpt.make_ksn(devices[0], 0x10002)
    assert devices[0] not in keys._walks
    assert keys.working_key(ksn, dukpt.DATA_ENCRYPT) == dukpt.host_derive_working_key(bdk, ksn, dukpt.DATA_ENCRYPT)


def test_a_bad_ksn_leaves_the_cached_keys_as_they_were():
    bdk = os.urandom(16)
    keys = HostKeys(bdk)
    device = os.urandom(8)
    good = dukpt.make_ksn(device, 40)
    keys.working_key(good, dukpt.MAC_GENERATION)
    for bad in (good[:11], good + b"\x00", device + (0x1FFFF).to_bytes(4, "big"), device + bytes(4)):
        with pytest.raises(SecurityError):
            keys.working_key(bad, dukpt.MAC_GENERATION)
    for counter in (40, 41):
        ksn = dukpt.make_ksn(device, counter)
        assert keys.working_key(ksn, dukpt.MAC_GENERATION) == \
            dukpt.host_derive_working_key(bdk, ksn, dukpt.MAC_GENERATION)


def _unpad_byte_by_byte(data):
    """ISO/IEC 9797-1 method 2 undone one byte at a time, from the end: the reference."""
    i = len(data) - 1
    while i >= 0 and data[i] == 0:
        i -= 1
    if i < 0 or data[i] != 0x80 or len(data) - i > 16:
        raise SecurityError("bad padding")
    return bytes(data[:i])


def test_cbc_padding_check_matches_the_reference():
    """fastkeys' CBC (and the unpad it shares with kapos.security, no byte loop) accepts
    and refuses exactly what a byte-by-byte reference does."""
    rng = random.Random(11)
    key = os.urandom(16)
    samples = [bytes(16), b"\x80" + bytes(15), bytes(15) + b"\x80", b"x" * 16 + b"\x80" + bytes(15),
               b"x" + b"\x80" + bytes(30), b"ab\x80\x00\x01" + bytes(11)]
    samples += [bytes(rng.choice((0, 0, 0x80, rng.randrange(256))) for _ in range(16 * rng.randrange(1, 4)))
                for _ in range(400)]
    for text in samples:
        ciphertext = _cbc_encrypt_unpadded(key, text)
        try:
            expected = _unpad_byte_by_byte(text)
        except SecurityError:
            with pytest.raises(SecurityError):
                cbc_decrypt(key, ciphertext)
            with pytest.raises(SecurityError):
                cbc.unpad(text)
        else:
            assert cbc_decrypt(key, ciphertext) == expected == cbc.unpad(text)


def _cbc_encrypt_unpadded(key, text):
    """CBC of whole blocks as they are (no padding added), zero IV, by the reference's AES."""
    out, previous = b"", bytes(16)
    for i in range(0, len(text), 16):
        previous = aes_encrypt_block(key, bytes(x ^ y for x, y in zip(text[i:i + 16], previous)))
        out += previous
    return out
