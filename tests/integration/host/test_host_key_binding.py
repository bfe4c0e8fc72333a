"""A ledger holding PVVs is bound to its PVV key: the host refuses to start, with a clear
message, when the key file is missing (a new one would be made) or is another host's -
on SQLite and on PostgreSQL. Before the check value, a missing PostgreSQL key file meant
a fresh random PVV key: every PIN refused, every card locked after three tries."""

import os

import pytest

from engines import engine  # noqa: F401
from hostkit import ledger_url
from kapos_tools.host import cli, keyfile

pytestmark = pytest.mark.usefixtures("engine")


def start(db, key_file, capsys):
    """`kapos host --show-ledger` (opens the ledger as a serving host would): exit code, stderr."""
    code = cli.main(["--db", db, "--key-file", key_file, "--show-ledger", "--quiet"])
    return code, capsys.readouterr().err


def pins_in(db):
    from kapos_tools.host.db import connect

    conn = connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM cards WHERE pvv IS NOT NULL").fetchone()[0]
    finally:
        conn.close()


def test_missing_key_file_is_refused_and_not_recreated(tmp_path, capsys):
    db = ledger_url(str(tmp_path / "host.db"))
    key_file = str(tmp_path / "host.keys")
    assert start(db, key_file, capsys)[0] == 0  # first start: key file made, PINs loaded
    assert pins_in(db) > 0
    saved = open(key_file, "rb").read()
    os.unlink(key_file)
    code, err = start(db, key_file, capsys)
    assert code == 2
    assert "PVV key" in err and "missing" in err and "restore" in err
    assert not os.path.exists(key_file)  # no fresh key file left for the next start to trust
    with open(key_file, "wb") as f:  # the right file restored: it starts
        f.write(saved)
    os.chmod(key_file, 0o600)
    assert start(db, key_file, capsys)[0] == 0


def test_another_hosts_key_file_is_refused(tmp_path, capsys):
    db = ledger_url(str(tmp_path / "host.db"))
    key_file = str(tmp_path / "host.keys")
    assert start(db, key_file, capsys)[0] == 0
    mine = keyfile.read_key_file(key_file)
    other = keyfile.HostKeys(os.urandom(16), mine.bdk, mine.token_key)
    keyfile.write_key_file(key_file, other)
    code, err = start(db, key_file, capsys)
    assert code == 2 and "other than the one in the key file" in err
    assert mine.pvv_key.hex() not in err.lower() and other.pvv_key.hex() not in err.lower()
    keyfile.write_key_file(key_file, mine)
    assert start(db, key_file, capsys)[0] == 0


def test_a_ledger_without_pins_starts_with_a_new_key_file(tmp_path, capsys):
    """Nothing made under the old key: a new key file is fine (and binds the ledger)."""
    db = ledger_url(str(tmp_path / "host.db"))
    key_file = str(tmp_path / "host.keys")
    cards = tmp_path / "cards.toml"
    cards.write_text('[[card]]\nid = "nopin"\npan = "4000000000000002"\nexpires_in_months = 12\n'
                     'balance = 100\n')
    assert cli.main(["--db", db, "--key-file", key_file, "--cards", str(cards),
                     "--show-ledger", "--quiet"]) == 0
    os.unlink(key_file)
    assert cli.main(["--db", db, "--key-file", key_file, "--cards", str(cards),
                     "--show-ledger", "--quiet"]) == 0
    assert os.path.exists(key_file)
