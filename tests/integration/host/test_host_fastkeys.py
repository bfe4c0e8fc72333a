"""The host's fast DUKPT / CMAC / CBC (fastkeys.py) computes exactly what kapos.security
computes - the terminal's own code - for random keys, counters in any order and data."""

import os
import random

import pytest

from kapos.errors import SecurityError
from kapos.security import cbc, dukpt
from kapos.security.cmac import aes_cmac
from kapos_tools.host.fastkeys import HostKeys, cbc_decrypt, cmac, cmac_verify


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
    bdk = bytes(rng.randrange(256) for _ in range(16))
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
