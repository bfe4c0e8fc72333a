"""Attack: recover old DUKPT key states from the SD card's free blocks after a tamper.

The key state is rewritten to a new file per transaction (atomic rename), so every older
state stays in free blocks until the filesystem reuses them. An attacker who images the
card after the tamper erase gets all of them (4 were recovered from an ext4 image), and a
DUKPT state at counter N derives every later transaction key. The defence: the state is
sealed under a KEK kept in one fixed file that the tamper overwrites in place.

The test plays the attacker: a terminal runs sales (every state file written is
snapshotted on the way, as if recovered from free blocks), the case is opened, then each
snapshot is tried with everything left in the data directory: the old plaintext format,
the KEK file parsed, and every 32-byte window of every remaining file as a key."""

import asyncio
import json
import os

import pytest
from Crypto.Cipher import AES

from kapos.errors import KeyStoreError, SecurityError
from kapos.harness import Harness
from kapos.security import dukpt
from kapos.io import keystore as ks

SALE = ("key 1\nkeys 100\nkey ENTER\nswipe visa-debit\nkey 1\nkeys 1234\nkey ENTER\n"
        "expect result approved\nkey ENTER\nexpect state IDLE\n")


def run_terminal(data_dir, script):
    """Play `script` on a sim terminal keeping its files (keys included) in `data_dir`."""
    async def go():
        async with Harness("sim", overrides=[("host.reply_delay", "0")], data_dir=data_dir) as h:
            await h.play(script)

    asyncio.run(go())


def record_state_writes(monkeypatch):
    """Every key-state file the store writes, as an attacker reading free blocks gets them."""
    snapshots = []
    real = ks.atomic_write

    def recording(path, data, mode=0o600):
        if os.path.basename(path) in (ks.STATE_FILE, ks.LEGACY_FILE):
            snapshots.append(bytes(data))
        real(path, data, mode)

    monkeypatch.setattr(ks, "atomic_write", recording)
    return snapshots


def leftovers(data_dir):
    out = {}
    for root, _, files in os.walk(data_dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                out[os.path.relpath(os.path.join(root, name), data_dir)] = f.read()
    return out


def key_candidates(files):
    """Every KEK the remaining files could hold: parsed KEK records and every raw window."""
    candidates = set()
    for name, data in files.items():
        try:
            kek = ks.parse_kek_record(data, name)
            if kek is not None:
                candidates.add(bytes(kek))
        except KeyStoreError:
            pass
        for i in range(0, max(0, len(data) - ks.KEK_LEN) + 1):
            candidates.add(data[i:i + ks.KEK_LEN])
    return candidates


def attacker_recover(snapshot, files):
    """A DukptTerminal rebuilt from one old state file and the remaining files, or None."""
    try:  # the format before sealing: the state in clear
        doc = json.loads(snapshot.decode())
        if "state" in doc:
            return dukpt.DukptTerminal.from_state(bytes.fromhex(doc["state"]))
    except (ValueError, UnicodeDecodeError, SecurityError):
        pass
    try:
        doc = json.loads(snapshot.decode())
        nonce, blob = bytes.fromhex(doc["nonce"]), bytes.fromhex(doc["sealed"])
    except (ValueError, KeyError):
        return None
    meta = {k: v for k, v in doc.items() if k not in ("version", "nonce", "sealed")}
    for kek in key_candidates(files):
        if len(kek) != ks.KEK_LEN:
            continue
        cipher = AES.new(kek, AES.MODE_GCM, nonce=nonce, mac_len=ks.TAG_LEN)
        cipher.update(ks._aad(meta))
        try:
            state = cipher.decrypt_and_verify(blob[:-ks.TAG_LEN], blob[-ks.TAG_LEN:])
        except ValueError:
            continue
        return dukpt.DukptTerminal.from_state(state)
    return None


def later_pin_keys(terminal, count):
    keys = []
    for _ in range(count):
        _, ksn, tk = terminal.next_transaction()
        keys.append((ksn, tk.pin_key()))
    return keys


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path / "data")


def test_old_key_states_are_useless_after_a_tamper(data_dir, monkeypatch):
    snapshots = record_state_writes(monkeypatch)
    run_terminal(data_dir, SALE * 3)
    assert len(snapshots) >= 4, "the run wrote one state per transaction"

    # Control: with the KEK still on disk the attacker code does recover each state and
    # re-derives the PIN keys the terminal used later, so a failure below is the defence.
    before = leftovers(data_dir)
    first = attacker_recover(snapshots[0], before)
    assert first is not None
    live = ks.KeyStore(os.path.join(data_dir, "keys"))
    assert later_pin_keys(first, 1)[0][0] == dukpt.make_ksn(bytes.fromhex(live.status()["ik_id"]), 1)

    kek_path = os.path.join(data_dir, "keys", ks.KEK_FILE)
    inode, size = os.stat(kek_path).st_ino, os.path.getsize(kek_path)
    run_terminal(data_dir, 'tamper "case opened"\nexpect state LOCKED\n')

    assert os.stat(kek_path).st_ino == inode and os.path.getsize(kek_path) == size == ks.KEK_FILE_SIZE
    after = leftovers(data_dir)
    assert after[os.path.join("keys", ks.KEK_FILE)] == bytes(ks.KEK_FILE_SIZE)
    recovered = [i for i, snap in enumerate(snapshots) if attacker_recover(snap, after) is not None]
    assert recovered == [], "old key states %s deciphered after the tamper" % recovered


def test_a_recovered_state_put_back_does_not_unlock_the_terminal(data_dir, monkeypatch):
    snapshots = record_state_writes(monkeypatch)
    run_terminal(data_dir, SALE)
    run_terminal(data_dir, 'tamper "case opened"\nexpect state LOCKED\n')
    keys_dir = os.path.join(data_dir, "keys")
    os.remove(os.path.join(keys_dir, ks.TAMPER_FILE))  # the attacker also drops the mark
    for snap in snapshots:
        with open(os.path.join(keys_dir, ks.STATE_FILE), "wb") as f:
            f.write(snap)
        try:
            store = ks.KeyStore(keys_dir)
        except KeyStoreError:
            continue
        assert not store.loaded, "a restored old state gave the terminal keys again"
