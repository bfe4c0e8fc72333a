"""The key store: 0600 file, atomic writes, counter saved before use, zeroize + tamper mark,
and a crash test: the terminal process is killed at random points and no KSN is ever
used twice (25 kills in `make test`, 1,000 in `make soak`)."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from kapos.errors import SecurityError
from kapos.security import dukpt
from kapos.io.keystore import KeyStore
from kapos.app.secmodule import SecurityModule

# X9.24-3-2017 sample BDK and Initial Key ID (the published test vectors' inputs).
BDK = bytes.fromhex("FEDCBA9876543210F1F1F1F1F1F1F1F1")
IK_ID = bytes.fromhex("1234567890123456")


def loaded(tmp_path):
    store = KeyStore(str(tmp_path))
    store.install(dukpt.derive_initial_key(BDK, IK_ID), IK_ID)
    return store


def test_file_is_private_and_status_shows_no_key(tmp_path):
    store = loaded(tmp_path)
    assert os.stat(store.path).st_mode & 0o777 == 0o600
    status = store.status()
    assert status["loaded"] and status["ksn"] == "123456789012345600000001"
    text = repr(status)
    ik = dukpt.derive_initial_key(BDK, IK_ID).hex()
    assert ik not in text.lower()


def test_counter_is_saved_before_keys_are_used(tmp_path):
    store = loaded(tmp_path)
    ksn, keys = store.next_transaction()
    assert ksn.hex().upper().endswith("00000001")
    again = KeyStore(str(tmp_path))  # what a restart would find on disk
    assert again.status()["counter"] == 2
    ksn2, _ = again.next_transaction()
    assert ksn2 != ksn


def test_host_derives_the_same_working_keys(tmp_path):
    sm = SecurityModule(loaded(tmp_path))
    ksn = sm.begin(7)
    mac = sm.mac_request(7, b"message")
    host_key = dukpt.host_derive_working_key(BDK, ksn, dukpt.MAC_GENERATION)
    from kapos.security.cmac import aes_cmac

    assert aes_cmac(host_key, b"message")[:8] == mac
    reply_key = dukpt.host_derive_working_key(BDK, ksn, dukpt.MAC_VERIFICATION)
    assert sm.verify_response(7, b"reply", aes_cmac(reply_key, b"reply")[:8])
    assert not sm.verify_response(7, b"reply!", aes_cmac(reply_key, b"reply")[:8])


def test_zeroize_erases_and_marks_tamper_until_new_keys(tmp_path):
    store = loaded(tmp_path)
    sm = SecurityModule(store)
    sm.begin(1)
    sm.zeroize()
    assert not os.path.exists(store.path) and store.tampered
    with pytest.raises(SecurityError, match="erased after tamper"):
        sm.begin(2)
    assert KeyStore(str(tmp_path)).status() == {"loaded": False, "tampered": True}
    store.install(dukpt.derive_initial_key(BDK, IK_ID), IK_ID)
    assert not store.tampered and store.loaded


def test_damaged_key_file_is_a_clear_error(tmp_path):
    store = loaded(tmp_path)
    with open(store.path, "w") as f:
        f.write('{"state": "00"}')
    with pytest.raises(SecurityError, match="damaged"):
        KeyStore(str(tmp_path))


CHILD = r"""
import sys
from kapos.io.keystore import KeyStore
store = KeyStore(sys.argv[1])
while True:
    ksn, keys = store.next_transaction()
    sys.stdout.write(ksn.hex() + "\n")   # only a KSN whose counter is on disk gets used
    sys.stdout.flush()
"""


def crash_restarts(tmp_path, kills):
    loaded(tmp_path)
    rng = random.Random(1234)
    used = []
    for _ in range(kills):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True)
        # Wait for the first used KSN, so a slow start-up on a loaded machine cannot
        # make every kill land before the loop; then kill at a random point of it.
        first = child.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.1))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        used += [line for line in (first + out).splitlines() if len(line) == 24]
    assert len(used) >= kills, "every child got to use keys"
    assert len(set(used)) == len(used), "a KSN was used twice"
    counters = [int(k[16:], 16) for k in used]
    assert counters == sorted(counters)
    print("\n%d crash-restarts, %d KSNs used, 0 reused" % (kills, len(used)))


def test_no_ksn_reuse_across_crash_restarts(tmp_path):
    crash_restarts(tmp_path, 25)


@pytest.mark.soak
def test_no_ksn_reuse_across_1000_crash_restarts(tmp_path):
    crash_restarts(tmp_path, 1000)
