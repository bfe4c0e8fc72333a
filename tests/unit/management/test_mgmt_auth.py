"""The management token file and the wrong-token back-off (kapos.app.mgmt_auth)."""

import os
import stat

import pytest

from kapos.app.mgmt_auth import (AuthThrottle, ManageTokenError, load_or_create_token, read_token_file,
                                      terminal_token, token_path)
from kapos.errors import KaposError


def test_the_token_is_made_once_private_and_kept(tmp_path):
    data_dir = str(tmp_path / "var")
    token = load_or_create_token(data_dir)
    path = token_path(data_dir)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(token) >= 32 and token.isprintable()
    assert load_or_create_token(data_dir) == token  # the next start reads it back
    assert os.listdir(data_dir) == ["manage-token"]  # no temporary file left behind
    assert load_or_create_token(str(tmp_path / "other")) != token  # per terminal


def test_a_start_that_loses_the_race_uses_the_winners_token(tmp_path, monkeypatch):
    data_dir = str(tmp_path)
    real_link = os.link

    def someone_else_first(src, dst):
        with open(dst, "w") as f:
            f.write("the-winner-token\n")
        os.chmod(dst, 0o600)
        return real_link(src, dst)  # raises FileExistsError, as in a real race

    monkeypatch.setattr(os, "link", someone_else_first)
    assert load_or_create_token(data_dir) == "the-winner-token"
    assert os.listdir(data_dir) == ["manage-token"]


def test_a_token_file_open_to_others_is_refused_by_the_terminal(tmp_path):
    path = tmp_path / "manage-token"
    path.write_text("s3cret-token\n")
    path.chmod(0o644)
    with pytest.raises(ManageTokenError, match="chmod 600") as info:
        load_or_create_token(str(tmp_path))
    assert "s3cret" not in str(info.value)
    assert read_token_file(str(path)) == "s3cret-token"  # a client's copy is only read
    assert issubclass(ManageTokenError, KaposError)


@pytest.mark.parametrize("content, message", [("", "empty"), ("\n\n", "empty"), ("a\x01b", "printable"),
                                              ("x" * 300, "printable")])
def test_an_unusable_token_file_is_a_clear_error_without_its_content(tmp_path, content, message):
    path = tmp_path / "t"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(ManageTokenError, match=message) as info:
        read_token_file(str(path))
    assert content.strip() == "" or content not in str(info.value)


def test_terminal_token_prefers_the_file_then_the_environment(tmp_path):
    given = tmp_path / "given"
    given.write_text("from-file")
    given.chmod(0o600)
    data_dir = str(tmp_path / "var")
    assert terminal_token(data_dir, str(given), environ={"KAPOS_MANAGE_TOKEN": "env"}) == "from-file"
    assert terminal_token(data_dir, environ={"KAPOS_MANAGE_TOKEN": "env"}) == "env"
    assert terminal_token(data_dir, environ={"KAPOS_MANAGE_TOKEN_FILE": str(given)}) == "from-file"
    assert not os.path.exists(token_path(data_dir))
    made = terminal_token(data_dir, environ={})
    assert made == open(token_path(data_dir)).read().strip()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_back_off_doubles_per_address_and_a_right_token_clears_it():
    clock = Clock()
    throttle = AuthThrottle(peer_base=0.5, global_free=100, clock=clock)
    assert throttle.refused_for("10.0.0.1") == 0
    waits = []
    for _ in range(5):
        throttle.failed("10.0.0.1")
        waits.append(throttle.refused_for("10.0.0.1"))
        clock.now += waits[-1]
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert throttle.refused_for("10.0.0.2") == 0  # another address is not slowed
    throttle.succeeded("10.0.0.1")
    assert throttle.refused_for("10.0.0.1") == 0


def test_back_off_is_capped():
    clock = Clock()
    throttle = AuthThrottle(peer_base=0.5, ceiling=60.0, global_free=10 ** 6, clock=clock)
    for _ in range(200):
        throttle.failed("a")
    assert throttle.refused_for("a") == 60.0


def test_guesses_spread_over_many_addresses_hit_the_global_back_off():
    clock = Clock()
    throttle = AuthThrottle(global_base=0.25, global_free=10, clock=clock)
    for i in range(10):
        assert throttle.refused_for("10.0.1.%d" % i) == 0
        throttle.failed("10.0.1.%d" % i)
    assert throttle.refused_for("10.0.2.1") == 0  # ten are free
    throttle.failed("10.0.2.1")
    assert throttle.refused_for("10.0.2.2") == 0.25  # then everyone waits, doubling
    throttle.failed("10.0.2.2")
    assert throttle.refused_for("10.0.2.3") == 0.5


def test_the_table_of_addresses_stays_small():
    clock = Clock()
    throttle = AuthThrottle(max_peers=100, global_free=10 ** 6, clock=clock)
    for i in range(1000):
        clock.now += 0.001
        throttle.refused_for("a%d" % i)
        throttle.failed("a%d" % i)
    assert len(throttle._peers) <= 100


def test_keys_status_show_token_prints_the_terminals_token(tmp_path, capsys):
    from kapos.cli import main

    data_dir = str(tmp_path)
    main(["keys", "status", "--data-dir", data_dir, "--show-token"])  # provisioning: makes it
    token = load_or_create_token(data_dir)
    assert token in capsys.readouterr().out
    main(["keys", "status", "--data-dir", data_dir])
    assert token not in capsys.readouterr().out  # only on request
    assert main(["keys", "status", "--connect", "127.0.0.1:1", "--show-token"]) == 2
    assert "never crosses the management channel" in capsys.readouterr().err
