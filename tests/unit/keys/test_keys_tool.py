"""`kapos keys`: new BDK file, local load and status, token blocks; never a key value printed."""

import json
import os

from kapos.cli import main
from kapos.security.token import verify_token_block
from kapos.simdata.keys import TEST_TOKEN_KEY


def test_new_bdk_load_and_status(tmp_path, capsys):
    bdk = tmp_path / "bdk.json"
    assert main(["keys", "new-bdk", "--out", str(bdk)]) == 0
    assert os.stat(bdk).st_mode & 0o777 == 0o600
    secret = json.loads(bdk.read_text())["bdk"]
    data_dir = str(tmp_path / "keys")
    assert main(["keys", "load", "--terminal-id", "KAPOS001", "--bdk", str(bdk), "--data-dir", data_dir]) == 0
    assert main(["keys", "status", "--data-dir", data_dir]) == 0
    out = capsys.readouterr().out
    assert "loaded    True" in out and secret not in out and secret.lower() not in out
    assert main(["keys", "new-bdk", "--out", str(bdk)]) == 2  # no silent overwrite


def test_status_of_an_empty_store_fails(tmp_path):
    assert main(["keys", "status", "--data-dir", str(tmp_path)]) == 1


def test_token_block_verifies(capsys):
    assert main(["keys", "token-block", "--uid", "04A2B3C4D5E6F7", "--counter", "5"]) == 0
    block = bytes.fromhex(capsys.readouterr().out.strip())
    assert verify_token_block(TEST_TOKEN_KEY, bytes.fromhex("04A2B3C4D5E6F7"), block) == 5
    assert main(["keys", "token-block", "--uid", "0102", "--counter", "1"]) == 2


def test_load_and_status_over_the_management_channel(capsys):
    """`kapos keys load --connect` re-keys a running terminal (here: one whose case was
    opened) through its management channel; status never shows key values."""
    from kapos_tools.diag.simrun import BackgroundTerminal

    with BackgroundTerminal("sim", token="t0ken") as term:
        term._loop.call_soon_threadsafe(lambda: term.terminal.post("tamper", source="case opened"))
        import time

        for _ in range(50):
            if term.terminal.state == "LOCKED":
                break
            time.sleep(0.02)
        assert term.terminal.state == "LOCKED"
        assert main(["keys", "status", "--connect", term.address, "--token", "t0ken"]) == 1
        assert main(["keys", "load", "--terminal-id", "KAPOS001", "--connect", term.address,
                     "--token", "t0ken"]) == 0
        for _ in range(50):
            if term.terminal.state == "IDLE":
                break
            time.sleep(0.02)
        assert term.terminal.state == "IDLE"
        assert main(["keys", "status", "--connect", term.address, "--token", "t0ken"]) == 0
        assert main(["keys", "status", "--connect", term.address, "--token", "wrong"]) == 2
    out = capsys.readouterr().out
    assert "loaded    True" in out and "tampered  False" in out
