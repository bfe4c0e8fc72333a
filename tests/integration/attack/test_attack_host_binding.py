"""Attacks on the reference host's terminal binding, KSN freshness, enrolment and secrets
at rest, each against a real `kapos host` process over TCP with messages written by hand
(hostwire.py: docs/protocol.md, kapos.host.codec, kapos.security.dukpt).

Every test here passed the attack on the host before the terminal registry and the key
file: a terminal could speak for another with its own keys, reuse or rewind KSNs, talk
to the host without enrolment, and the ledger (mode 0644) held the PVV key."""

import os
import sqlite3
import stat
import subprocess
import sys

import pytest

from hostwire import MERCHANT, ROOT, Device, HostProcess
from kapos.simdata.keys import TEST_BDK, ik_id_for
from kapos.host import codec
from kapos.host import messages as m
from kapos.host.codec import MTI


@pytest.fixture
def host(tmp_path):
    started = []

    def start(*args, **kw):
        process = HostProcess(tmp_path, *args, **kw)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def host_cli(*args):
    return subprocess.run([sys.executable, "-m", "kapos_tools.host"] + list(args),
                          capture_output=True, text=True, cwd=ROOT, timeout=30)


# ---------------------------------------------------------------- binding


def test_a_terminal_cannot_act_as_another_with_its_own_keys(host):
    h = host("--auto-enroll")
    victim, attacker = Device("KAPOS001"), Device("EVIL0001")
    data, _ = victim.sale(1, 700)
    genuine, _ = h.exchange(data)
    assert genuine[39] == "00"
    assert h.exchange(attacker.echo(1)[0])[0][39] == "00"  # the attacker's own terminal is fine
    before = h.balance()

    # a sale, a void of the victim's sale and a reversal of it, all saying "KAPOS001" in
    # field 41 but MACed under the attacker's own (valid) DUKPT keys
    forged_sale, ksn = attacker.sale(2, 900, terminal_id="KAPOS001")
    reply, raw = h.exchange(forged_sale)
    assert reply[39] == "63"
    assert attacker.reply_mac_ok(raw, ksn), "a refusal is still MACed: the sender's MAC was good"

    void = victim.sale_message(3, 700)
    for field in (2, 14):
        void.pop(field)
    void[3] = m.processing_code("void")
    void[37] = genuine[37]
    void[90] = m.original_data("0200", "000001", void[7])
    assert h.exchange(attacker.seal(void, attacker.ksn()))[0][39] == "63"

    reversal = m.build_reversal(victim.sale_message(1, 700), "timeout")
    reversal[41] = "KAPOS001"
    reversal[MTI] = "0400"
    assert h.exchange(attacker.seal(reversal, attacker.ksn()))[0][39] == "63"

    assert h.balance() == before, "nothing the impostor sent was applied"
    assert "KSN of another device" in h.log()


def test_a_reused_ksn_is_refused_but_an_exact_repeat_gets_its_stored_reply(host):
    h = host("--auto-enroll")
    device = Device("KAPOS001")
    data, ksn = device.sale(1, 500)
    first, raw = h.exchange(data)
    assert first[39] == "00"
    # the reply was lost: the very same bytes again are answered with the very same reply
    again, raw_again = h.exchange(data)
    assert raw_again == raw
    # a new message under the used KSN (its keys may have leaked) is refused
    reuse, _ = device.sale(2, 500, ksn=ksn)
    reply, raw_reuse = h.exchange(reuse)
    assert reply[39] == "63" and device.reply_mac_ok(raw_reuse, ksn)
    assert h.balance() == 100000 - 500, "charged once"
    assert "already used" in h.log()


def test_a_ksn_counter_from_the_past_is_refused(host):
    h = host("--auto-enroll")
    device = Device("KAPOS001")
    assert h.exchange(device.sale(1, 100, ksn=device.ksn(100))[0])[0][39] == "00"
    # a counter slightly behind, never used (a PIN transaction's KSN taken before an echo's):
    assert h.exchange(device.sale(2, 100, ksn=device.ksn(97))[0])[0][39] == "00"
    stale, _ = device.sale(3, 100, ksn=device.ksn(40))  # far behind: old keys
    assert h.exchange(stale)[0][39] == "63"
    device.counter = 100
    assert h.balance() == 100000 - 200
    assert "stale KSN counter 40" in h.log()


# ---------------------------------------------------------------- enrolment


def test_an_unknown_terminal_is_refused_until_enrolled(host, tmp_path):
    h = host()  # no --auto-enroll: the production default
    device = Device("KAPOS001")
    data, ksn = device.sale(1, 300)
    reply, raw = h.exchange(data)
    assert reply[39] == "63" and device.reply_mac_ok(raw, ksn)
    assert "not enrolled" in h.log()

    # malformed enrolments: a clear error, exit 2, nothing enrolled
    for bad in (["--ik-id", "XYZ"], ["--ik-id", "1234"], [], ["--ik-id", "00" * 8, "--bdk-id",
                                                               "12345678"]):
        result = host_cli("enroll", "--db", h.db, "--terminal", "KAPOS001", "--merchant",
                          MERCHANT, *bad)
        assert result.returncode == 2 and "error" in result.stderr and "Traceback" not in \
            result.stderr, result.stderr
    bad_id = host_cli("enroll", "--db", h.db, "--terminal", "KAPOS 01!", "--merchant", MERCHANT,
                      "--bdk-id", "12345678")
    assert bad_id.returncode == 2 and "terminal id" in bad_id.stderr
    assert "no terminals enrolled" in host_cli("terminals", "--db", h.db).stdout

    # enrolled with another device's IK ID: still refused
    other = ik_id_for("OTHER001").hex()
    assert host_cli("enroll", "--db", h.db, "--terminal", "KAPOS001", "--merchant", MERCHANT,
                    "--ik-id", other).returncode == 0
    assert h.exchange(device.sale(2, 300)[0])[0][39] == "63"
    again = host_cli("enroll", "--db", h.db, "--terminal", "KAPOS001", "--merchant", MERCHANT,
                     "--bdk-id", "12345678")
    assert again.returncode == 2 and "already enrolled" in again.stderr
    # the right one (while the host runs): served
    assert host_cli("enroll", "--db", h.db, "--terminal", "KAPOS001", "--merchant", MERCHANT,
                    "--bdk-id", "12345678", "--replace").returncode == 0
    assert h.exchange(device.sale(3, 300)[0])[0][39] == "00"
    listed = host_cli("terminals", "--db", h.db).stdout
    assert "KAPOS001" in listed and ik_id_for("KAPOS001").hex().upper() in listed
    # disabled: refused again
    assert host_cli("disable", "--db", h.db, "--terminal", "KAPOS001").returncode == 0
    assert h.exchange(device.sale(4, 300)[0])[0][39] == "63"


def test_auto_enrolment_binds_the_first_ksn_and_the_merchant(host):
    h = host("--auto-enroll")
    device = Device("KAPOS001")
    assert h.exchange(device.sale(1, 100)[0])[0][39] == "00"
    # the same terminal id later with another IK ID (another device) is refused
    impostor = Device("KAPOS001", ik_id=ik_id_for("ELSEWHERE"))
    assert h.exchange(impostor.sale(2, 100)[0])[0][39] == "63"
    # the enrolled device under another merchant id is refused
    moved = Device("KAPOS001", merchant="OTHER-MERCHANT")
    moved.counter = device.counter
    assert h.exchange(moved.sale(3, 100)[0])[0][39] == "63"


# ---------------------------------------------------------------- secrets at rest


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_ledger_is_private_and_holds_no_key_to_its_pins(host):
    h = host("--auto-enroll")
    device = Device("KAPOS001")
    assert h.exchange(device.sale(1, 100)[0])[0][39] == "00"
    for suffix in ("", "-wal", "-shm"):
        assert _mode(h.db + suffix) == 0o600, suffix
    key_file = h.db + ".keys"
    assert _mode(key_file) == 0o600
    # someone who copies the ledger finds PANs and PVVs, but no key to test PINs against
    db = sqlite3.connect(h.db)
    try:
        assert db.execute("SELECT value FROM meta WHERE key = 'pvv_key'").fetchone() is None
    finally:
        db.close()
    import json

    with open(key_file) as f:
        pvv_key = json.load(f)["pvv_key"]
    for suffix in ("", "-wal"):
        with open(h.db + suffix, "rb") as f:
            data = f.read()
        assert pvv_key.encode() not in data and pvv_key.lower().encode() not in data
        assert bytes.fromhex(pvv_key) not in data


def test_a_legacy_ledger_is_made_private_and_its_pvv_key_moved_out(host, tmp_path):
    from kapos_tools.host.ledger import Ledger

    db = str(tmp_path / "host.db")
    legacy = Ledger(db)  # no key file: the old layout, the PVV key in meta
    legacy.load_cards()
    legacy.close()
    os.chmod(db, 0o644)
    h = host("--auto-enroll")
    assert _mode(db) == 0o600
    device = Device("KAPOS001")
    data, _ = device.sale(1, 100)
    assert h.exchange(data)[0][39] == "00"
    probe = sqlite3.connect(db)
    try:
        assert probe.execute("SELECT value FROM meta WHERE key = 'pvv_key'").fetchone() is None
    finally:
        probe.close()


@pytest.mark.parametrize("damage", ["truncated", "not json", "too open", "short key"])
def test_a_damaged_or_exposed_key_file_stops_the_host_without_showing_keys(tmp_path, damage):
    db = str(tmp_path / "host.db")
    first = subprocess.run([sys.executable, "-m", "kapos_tools.host", "--db", db,
                            "--show-ledger"], capture_output=True, text=True, cwd=ROOT,
                           timeout=30)
    assert first.returncode == 0, first.stderr
    key_file = db + ".keys"
    with open(key_file) as f:
        text = f.read()
    import json

    keys = json.loads(text)
    if damage == "truncated":
        damaged = text[: len(text) // 2]
    elif damage == "not json":
        damaged = "\x00" * 40
    elif damage == "short key":
        damaged = text.replace(keys["pvv_key"], keys["pvv_key"][:10])
    else:
        damaged = text
    with open(key_file, "w") as f:
        f.write(damaged)
    os.chmod(key_file, 0o644 if damage == "too open" else 0o600)
    result = subprocess.run([sys.executable, "-m", "kapos_tools.host", "--db", db,
                             "--listen", "127.0.0.1:0"], capture_output=True, text=True,
                            cwd=ROOT, timeout=30)
    assert result.returncode == 2
    assert key_file in result.stderr
    assert ("chmod 600" if damage == "too open" else "corrupt") in result.stderr
    assert "Traceback" not in result.stderr
    for value in keys.values():
        if value != "kapos-host-keys/1":
            assert value[:12] not in result.stderr and value[:12].lower() not in result.stderr


def test_secret_options_from_a_file_or_the_environment_stay_off_the_command_line(host, tmp_path):
    bdk = bytes(range(1, 17))
    bdk_file = tmp_path / "bdk.json"
    bdk_file.write_text('{"bdk": "%s", "bdk_id": "12345678"}' % bdk.hex().upper())
    os.chmod(bdk_file, 0o600)
    h = host("--auto-enroll", "--bdk-file", str(bdk_file))
    with open("/proc/%d/cmdline" % h.proc.pid, "rb") as f:
        cmdline = f.read()
    assert bdk.hex().encode() not in cmdline.lower()
    own = Device("KAPOS001", bdk=bdk)
    assert h.exchange(own.sale(1, 100)[0])[0][39] == "00", "the host uses the file's BDK"
    test_keyed = Device("KAPOS002", bdk=TEST_BDK)
    assert h.exchange(test_keyed.sale(1, 100)[0])[0][39] == "63"  # bad MAC under the real BDK
    h.stop()

    # the environment works too, and the key file keeps the BDK for the next start
    env = dict(os.environ, KAPOS_HOST_TOKEN_KEY="00112233445566778899AABBCCDDEEFF")
    h2 = host("--auto-enroll", env=env)
    own.counter = 10
    assert h2.exchange(own.sale(2, 100)[0])[0][39] == "00"
    h2.stop()
    assert bdk.hex() not in h2.log().lower() and "00112233445566778899" not in h2.log()

    # on the command line it still works, with a warning that it is visible to everyone
    h3 = host("--auto-enroll", "--bdk", bdk.hex())
    h3.stop()
    assert "--bdk on the command line can be read by every local user" in h3.log()
    assert bdk.hex() not in h3.log().lower()


def test_a_repeat_mti_without_a_mac_is_refused_like_its_request(host):
    """The ledger takes a repeat (0201, 0101, 0221 ...) for its request. Before, only the
    request MTIs (and 0221, 0401, 0421) needed a MAC: an unMACed 0201 sale in clear was
    approved and debited the card on a host that requires MACs."""
    h = host("--auto-enroll")
    device = Device("KAPOS001")
    assert h.exchange(device.echo(1)[0])[0][39] == "00"
    before = h.balance()
    for stan, mti in ((2, "0201"), (3, "0101")):
        forged = dict(device.sale_message(stan, 900), **{MTI: mti})
        reply, _ = h.exchange(codec.encode(forged))
        assert reply[39] == "63", (mti, reply)
    assert h.balance() == before
    # MACed under the device's next KSN, the same repeat is an ordinary sale
    repeat = dict(device.sale_message(4, 900), **{MTI: "0201"})
    reply, raw = h.exchange(device.seal(repeat, device.ksn()))
    assert reply[39] == "00" and h.balance() == before - 900
