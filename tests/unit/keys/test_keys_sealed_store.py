"""The sealed key store: the DUKPT state under a KEK in one fixed file, crypto-erased in
place on tamper; damaged files are clear errors that change nothing; a plaintext state from
the previous version is migrated on first load."""

import binascii
import json
import os

import pytest

from kapos.errors import KaposError, KeyStoreError
from kapos.security import dukpt
from kapos.io import keystore as ks
from kapos.io.keystore import KeyStore

BDK = bytes.fromhex("FEDCBA9876543210F1F1F1F1F1F1F1F1")
IK_ID = bytes.fromhex("1234567890123456")
IK = dukpt.derive_initial_key(BDK, IK_ID)


def loaded(directory):
    store = KeyStore(str(directory))
    store.install(IK, IK_ID)
    return store


def snapshot(directory):
    out = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        with open(path, "rb") as f:
            out[name] = (os.stat(path).st_ino, f.read())
    return out


def test_state_on_disk_is_sealed_and_every_file_is_private(tmp_path):
    store = loaded(tmp_path)
    store.next_transaction()
    raw = open(store.path, "rb").read()
    clear_state = dukpt.DukptTerminal.load_initial_key(IK, IK_ID).export_state()
    assert binascii.hexlify(clear_state[8:24]) not in raw and IK.hex().encode() not in raw
    assert set(json.loads(raw)) == {"ik_id", "loaded_at", "source", "version", "nonce", "sealed"}
    assert os.path.getsize(store.kek_path) == ks.KEK_FILE_SIZE
    store.zeroize()
    for name in os.listdir(str(tmp_path)):
        assert os.stat(os.path.join(str(tmp_path), name)).st_mode & 0o777 == 0o600, name


def test_transactions_rewrite_the_state_but_never_the_kek(tmp_path):
    store = loaded(tmp_path)
    kek_before = snapshot(str(tmp_path))[ks.KEK_FILE]
    states = set()
    for _ in range(3):
        store.next_transaction()
        states.add(open(store.path, "rb").read())
    assert len(states) == 3
    assert snapshot(str(tmp_path))[ks.KEK_FILE] == kek_before
    assert KeyStore(str(tmp_path)).status()["counter"] == 4


def test_tamper_overwrites_the_kek_in_place_with_random_then_zeros(tmp_path, monkeypatch):
    store = loaded(tmp_path)
    inode = os.stat(store.kek_path).st_ino
    writes = []
    real = ks.overwrite_in_place

    def recording(path, data):
        writes.append((path, os.stat(path).st_ino, bytes(data)))
        real(path, data)

    monkeypatch.setattr(ks, "overwrite_in_place", recording)
    store.zeroize()
    kek_writes = [(ino, data) for path, ino, data in writes if path == store.kek_path]
    assert [ino for ino, _ in kek_writes] == [inode, inode]
    (_, first), (_, second) = kek_writes
    assert len(first) == len(second) == ks.KEK_FILE_SIZE
    assert first.count(0) < 64 and second == bytes(ks.KEK_FILE_SIZE)  # random, then zeros
    assert os.stat(store.kek_path).st_ino == inode
    assert os.path.getsize(store.kek_path) == ks.KEK_FILE_SIZE
    assert open(store.kek_path, "rb").read() == bytes(ks.KEK_FILE_SIZE)
    assert not os.path.exists(store.path) and store.tampered


def test_reloading_keys_after_tamper_reuses_the_kek_file_and_a_new_kek(tmp_path):
    store = loaded(tmp_path)
    inode = os.stat(store.kek_path).st_ino
    old_record = open(store.kek_path, "rb").read()
    store.zeroize()
    store.install(IK, IK_ID)
    assert os.stat(store.kek_path).st_ino == inode
    assert open(store.kek_path, "rb").read() not in (old_record, bytes(ks.KEK_FILE_SIZE))
    assert KeyStore(str(tmp_path)).loaded and not store.tampered


def test_a_power_cut_during_the_erase_is_finished_at_the_next_start(tmp_path):
    store = loaded(tmp_path)
    with open(store.tamper_path, "wb") as f:  # the mark is written first, then the power went
        f.write(b"keys erased after tamper\n")
    again = KeyStore(str(tmp_path))
    assert not again.loaded and again.tampered
    assert open(store.kek_path, "rb").read() == bytes(ks.KEK_FILE_SIZE)
    assert not os.path.exists(store.path)


def damage_cases():
    def truncate_kek(s):
        os.truncate(s.kek_path, 100)

    def flip_kek(s):
        with open(s.kek_path, "r+b") as f:
            f.seek(20)
            b = f.read(1)
            f.seek(20)
            f.write(bytes([b[0] ^ 1]))

    def empty_kek(s):
        os.truncate(s.kek_path, 0)

    def truncate_state(s):
        os.truncate(s.path, 40)

    def flip_state(s):
        doc = json.loads(open(s.path).read())
        blob = bytearray(bytes.fromhex(doc["sealed"]))
        blob[3] ^= 0x80
        doc["sealed"] = blob.hex()
        open(s.path, "w").write(json.dumps(doc))

    def edit_metadata(s):
        doc = json.loads(open(s.path).read())
        doc["ik_id"] = "FFFFFFFFFFFFFFFF"
        open(s.path, "w").write(json.dumps(doc))

    def remove_kek(s):
        os.remove(s.kek_path)

    return [("truncated KEK", truncate_kek, "key-encryption key file .* damaged"),
            ("flipped KEK bit", flip_kek, "key-encryption key file .* damaged"),
            ("empty KEK", empty_kek, "key-encryption key file .* damaged"),
            ("truncated state", truncate_state, "key state file .* damaged"),
            ("flipped state bit", flip_state, "does not authenticate"),
            ("edited metadata", edit_metadata, "does not authenticate"),
            ("KEK missing", remove_kek, "no key-encryption key")]


@pytest.mark.parametrize("name,damage,message", damage_cases(), ids=[c[0] for c in damage_cases()])
def test_a_damaged_file_is_a_clear_error_that_changes_nothing(tmp_path, name, damage, message):
    store = loaded(tmp_path)
    store.next_transaction()
    damage(store)
    before = snapshot(str(tmp_path))
    with pytest.raises(KeyStoreError, match=message) as info:
        KeyStore(str(tmp_path))
    assert isinstance(info.value, KaposError)
    assert snapshot(str(tmp_path)) == before
    assert IK.hex() not in str(info.value).lower()


def write_legacy(directory, counter_uses=2):
    """A key file as kapos wrote it before sealing: the DUKPT state in clear."""
    terminal = dukpt.DukptTerminal.load_initial_key(IK, IK_ID)
    state = terminal.export_state()
    for _ in range(counter_uses):
        state, _, _ = terminal.next_transaction()
    doc = {"ik_id": IK_ID.hex().upper(), "loaded_at": 1, "source": "old", "state": state.hex()}
    path = os.path.join(str(directory), ks.LEGACY_FILE)
    with open(path, "w") as f:
        json.dump(doc, f)
    os.chmod(path, 0o600)
    return path


def test_a_plaintext_state_from_the_previous_version_is_migrated(tmp_path):
    legacy = write_legacy(tmp_path)
    store = KeyStore(str(tmp_path))
    assert store.loaded and store.status()["counter"] == 3 and store.status()["source"] == "old"
    assert not os.path.exists(legacy)
    ksn, _ = store.next_transaction()
    assert ksn.hex().upper().endswith("00000003")
    assert KeyStore(str(tmp_path)).status()["counter"] == 4


def test_a_migration_cut_short_after_sealing_removes_the_clear_copy(tmp_path):
    write_legacy(tmp_path)
    KeyStore(str(tmp_path))
    legacy = write_legacy(tmp_path, counter_uses=1)  # the clear copy came back (crash before removal)
    store = KeyStore(str(tmp_path))
    assert store.status()["counter"] == 3  # the sealed state wins, no counter goes back
    assert not os.path.exists(legacy)


def test_a_damaged_plaintext_state_is_refused_and_left_alone(tmp_path):
    path = os.path.join(str(tmp_path), ks.LEGACY_FILE)
    with open(path, "w") as f:
        f.write('{"state": "zz"}')
    before = snapshot(str(tmp_path))
    with pytest.raises(KeyStoreError, match="old key file .* damaged"):
        KeyStore(str(tmp_path))
    assert snapshot(str(tmp_path)) == before


def test_a_link_planted_at_the_temporary_name_is_not_written_through(tmp_path):
    # someone who can write the data directory links the state's temp file elsewhere,
    # hoping the sealed key state (or the KEK) lands in a file they choose
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    state = tmp_path / ks.STATE_FILE
    os.symlink(str(victim), ks.temporary_name(str(state)))
    store = loaded(tmp_path)
    assert victim.read_bytes() == b"keep me"
    assert store.loaded and not os.path.islink(str(state)) and state.is_file()
    assert not os.path.lexists(ks.temporary_name(str(state)))
