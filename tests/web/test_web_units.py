"""The web tools without a browser: the console's 80x24 layout, the dashboard's ledger
operations, logins, the alarm watcher and hooks, the terminals view (version and self-test
from the terminal's 0800), and the simulator's refusals. Everything that touches the
ledger runs on SQLite and on PostgreSQL."""

import asyncio
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from kapos.app.scenario import Player, parse
from kapos.console import BRAILLE_BITS, QUADRANTS, Console, frame_to_braille, frame_to_quadrants
from kapos.local_target import LocalTarget
from kapos_tools.host.ledger import Ledger
from kapos_tools.host.web import users
from kapos_tools.host.web.alarms import BadMacHandler, Notifier, Watcher
from kapos_tools.host.web.ops import OperationError, Operations
from kapos_tools.websim.app import WebSim, WebSimError

from webstack import OPERATOR, Stack, run_async


class Null:
    def write(self, text):
        pass

    def flush(self):
        pass


@pytest.fixture
def console(tmp_path):
    from kapos.harness import started
    from kapos.wiring import Assembly

    assembly = Assembly("sim", overrides=[("storage.data_dir", '"%s"' % tmp_path)])
    c = Console(assembly, out=Null(), web_url="http://127.0.0.1:8000/")

    async def first_screen():  # the Console keeps the Assembly: the harness runs it, this fixture closes it
        async with started(assembly):
            await asyncio.sleep(0)
    run_async(first_screen())
    yield c
    assembly.close()


def _pixels(console):
    image = console.terminal.platform.get("display").image.convert("1")
    px = image.load()
    return image, {(x, y): int(px[x, y] != 0) for x in range(image.size[0]) for y in range(image.size[1])}


def test_the_console_fits_an_80x24_window_with_the_whole_oled_pixel_exact(console):
    console.size = (80, 24)
    lines = console.render()
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 80
    image, pixels = _pixels(console)
    rows = [line[1:65] for line in lines[2:18]]  # the 16 rows between the box lines
    assert lines[18].startswith("+---") and frame_to_braille(image) == rows
    decoded = {}
    for cy, row in enumerate(rows):  # braille cells decode back to all 128x64 pixels
        for cx, ch in enumerate(row):
            bits = 0 if ch == " " else ord(ch) - 0x2800
            for dx, dy, bit in BRAILLE_BITS:
                decoded[(2 * cx + dx, 4 * cy + dy)] = int(bool(bits & bit))
    assert decoded == pixels and any(pixels.values())


def test_a_tall_window_gets_quadrant_blocks_also_pixel_exact(console):
    console.size = (80, 40)
    lines = console.render()
    assert len(lines) <= 40 and max(len(line) for line in lines) <= 80
    image, pixels = _pixels(console)
    rows = [line[1:65] for line in lines[2:34]]
    decode = {ch: bits for bits, ch in QUADRANTS.items()}
    decoded = {}
    for cy, row in enumerate(rows):
        for cx, ch in enumerate(row):
            for (dx, dy), bit in zip(((0, 0), (1, 0), (0, 1), (1, 1)), decode[ch]):
                decoded[(2 * cx + dx, 2 * cy + dy)] = bit
    assert decoded == pixels and frame_to_quadrants(image) == rows


def test_a_window_too_small_gets_a_warning_not_wrapped_garbage(console):
    for size in ((60, 24), (80, 18), (40, 10)):
        console.size = size
        lines = console.render()
        assert "too small: needs 66x22" in lines
        assert all(len(line) <= size[0] for line in lines) and len(lines) <= size[1]


def test_a_printed_receipt_no_longer_pushes_the_screen_off_the_top(console):
    console.receipt = "\n".join("receipt line %d" % i for i in range(40))
    for size in ((80, 24), (120, 50)):
        console.size = size
        lines = console.render()
        assert len(lines) <= size[1] and lines[1].startswith("+---")  # the OLED box stays on top
    console.size = (120, 50)
    assert "receipt line 39" in "\n".join(console.render())  # side pane, last lines
    console.size = (80, 24)
    console.on_input("r")  # on demand in a narrow window
    shown = "\n".join(console.render())
    assert "receipt line 39" in shown and len(console.render()) <= 24
    console.on_input("?")
    shown = "\n".join(console.render())
    assert "visa-debit" in shown and "1234" in shown and "4321" in shown  # PINs on screen


# ---------------------------------------------------------------- ledger operations

@pytest.fixture
def ledger(ledger_url):
    """The host's ledger on SQLite, then on PostgreSQL (conftest.ledger_url)."""
    ledger = Ledger(ledger_url)
    ledger.load_cards()
    yield ledger
    ledger.close()


def _ref(ops, name):
    return [a for a in ops.accounts() if a["name"] == name][0]["ref"]


def test_a_top_up_is_a_balanced_audited_posting_and_keeps_the_ledger_consistent(ledger):
    ops = Operations(ledger)
    before = ledger.balance("4111111111111111")
    assert ops.topup("olga", _ref(ops, "TEST/VISA DEBIT"), "2500") == before + 2500
    assert ledger.check() == []
    assert ledger.db.execute("SELECT balance FROM books WHERE account = 'cash:topup'").fetchone()[0] == -2500
    audit = ops.audit_log()
    assert audit[0]["user"] == "olga" and audit[0]["action"] == "topup" and "2500" in audit[0]["detail"]
    assert "4111111111111111" not in json.dumps(audit) and "4111111111111111" not in json.dumps(ops.accounts())
    for bad in ("0", "-5", "abc", None, "99999999999"):
        with pytest.raises(OperationError):
            ops.topup("olga", _ref(ops, "TEST/VISA DEBIT"), bad)
    with pytest.raises(OperationError):
        ops.topup("olga", 99999, 100)
    assert ledger.balance("4111111111111111") == before + 2500 and ledger.check() == []


def test_block_declines_62_and_unblock_gives_back_the_cards_own_rule(ledger):
    ops = Operations(ledger)
    cards = {c["id"]: c for c in ops.cards()}
    ops.block("olga", cards["visa-debit"]["ref"])
    ops.block("olga", cards["do-not-honor"]["ref"])
    assert ledger.db.execute("SELECT decline FROM cards WHERE key = '4111111111111111'").fetchone()[0] == "62"
    with pytest.raises(OperationError):
        ops.block("olga", cards["visa-debit"]["ref"])
    ops.unblock("olga", cards["visa-debit"]["ref"])
    ops.unblock("olga", cards["do-not-honor"]["ref"])
    assert ledger.db.execute("SELECT decline FROM cards WHERE key = '4111111111111111'").fetchone()[0] is None
    assert ledger.db.execute("SELECT decline FROM cards WHERE key = '4000000000000002'").fetchone()[0] == "05"
    assert [a["action"] for a in ops.audit_log()][:4] == ["unblock", "unblock", "block", "block"]


def test_a_blocked_card_is_declined_by_the_host_on_a_real_sale(tmp_path, ledger_url):
    stack = Stack(tmp_path, ledger_url=None if ledger_url.endswith(".db") else ledger_url)
    try:
        ops = stack.dashboard.dashboard.ops
        ref = stack.run(lambda: {c["id"]: c for c in ops.cards()}["visa-debit"]["ref"])
        stack.run(lambda: ops.block("olga", ref))
        target = LocalTarget(stack.assembly.terminal, stack.assembly.testcards)
        script = ("key 1\nkeys 500\nkey ENTER\nswipe visa-debit\nkey 1\nkeys 1234\nkey ENTER\n"
                  "expect result declined\n")
        stack.call(Player(target, default_timeout=5.0).play(parse(script)))
        assert stack.run(lambda: ops.transactions()[0]["code"]) == "62"
    finally:
        stack.close()


def test_a_re_issued_token_revokes_every_older_copy_of_it(tmp_path):
    stack = Stack(tmp_path)
    try:
        ops = stack.dashboard.dashboard.ops
        target = LocalTarget(stack.assembly.terminal, stack.assembly.testcards)
        sale = "key 1\nkeys 350\nkey ENTER\ntap token\nexpect screen \"ENTER=OK\"\nkey ENTER\nexpect result %s\nkey ENTER\n"
        stack.call(Player(target, default_timeout=5.0).play(parse(sale % "approved")))
        ref = stack.run(lambda: {c["id"]: c for c in ops.cards()}["token"]["ref"])
        block = stack.run(lambda: ops.reissue_token("olga", ref))
        assert len(bytes.fromhex(block)) == 16
        stack.call(Player(target, default_timeout=5.0).play(parse(sale % "declined")))  # the old tag
        assert stack.run(lambda: ops.transactions()[0]["code"]) == "63"
        assert stack.run(lambda: ops.audit_log()[0]["action"]) == "reissue-token"
        with pytest.raises(OperationError):  # a PAN card has no token to re-issue
            stack.run(lambda: ops.reissue_token("olga", {c["id"]: c for c in ops.cards()}["visa-debit"]["ref"]))
    finally:
        stack.close()


# ---------------------------------------------------------------- logins

def test_passwords_are_scrypt_hashes_and_roles_are_checked(ledger):
    users.add_user(ledger, "olga", "operator", "a-long-password")
    stored = ledger.db.execute("SELECT password FROM ops_users WHERE name = 'olga'").fetchone()[0]
    assert stored.startswith("scrypt$") and "a-long-password" not in stored
    assert users.verify(ledger, "olga", "a-long-password") == "operator"
    assert users.verify(ledger, "olga", "a-long-passworD") is None
    assert users.verify(ledger, "nobody", "a-long-password") is None
    for name, role, password in (("olga", "operator", "x" * 12), ("bad name", "viewer", "x" * 12),
                                 ("ann", "root", "x" * 12), ("ann", "viewer", "short")):
        with pytest.raises(users.UserError):
            users.add_user(ledger, name, role, password)


def test_first_start_makes_one_admin_with_a_private_generated_password(ledger, tmp_path):
    path = str(tmp_path / "dashboard-admin.txt")
    assert users.first_admin(ledger, path) == path
    import os
    import stat

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    password = open(path).read().split("password: ")[1].split()[0]
    assert users.verify(ledger, "admin", password) == "operator"
    assert users.first_admin(ledger, str(tmp_path / "again.txt")) is None  # users exist: nothing new


# ---------------------------------------------------------------- alarms

def test_the_watcher_turns_pin_lockouts_velocity_declines_and_bad_macs_into_alarms_once(ledger):
    ops = Operations(ledger)
    seen = []
    watcher = Watcher(ops, on_alarm=seen.append)
    with ledger._tx():
        for stan, code in (("000001", "75"), ("000002", "65"), ("000003", "00")):
            ledger.db.execute("INSERT INTO txns (terminal_id, stan, transmission, mti, type, code, status, created, "
                              "card_key) VALUES ('KAPOS001', ?, '1', '0200', 'sale', ?, 'declined', 0, "
                              "'4111111111111111')", (stan, code))
        ledger.db.execute("INSERT INTO alerts (terminal_id, rule, detail, at) VALUES ('KAPOS001', 'read_failures', "
                          "'3 in 60 s', 0)")
    handler = BadMacHandler(watcher.pending_log)
    import logging

    logging.getLogger("kapos_tools.host.test").addHandler(handler)
    logging.getLogger("kapos_tools.host.test").warning("%s from %s stan %s: bad MAC", "0200", "KAPOS009", "000009")
    found = watcher.scan()
    assert sorted(a["kind"] for a in found) == ["anomaly", "mac", "pin", "velocity"]
    assert all("4111111111111111" not in a["detail"] for a in found)
    assert [a for a in found if a["kind"] == "mac"][0]["terminal"] == "KAPOS009"
    assert watcher.scan() == []  # each once
    assert len(seen) == 4


def test_the_command_hook_gets_the_alarm_as_json_on_stdin_without_a_shell(tmp_path):
    out = tmp_path / "alarm.json"
    script = "import sys; open(sys.argv[1], 'w').write(sys.stdin.read())"
    notifier = Notifier(command="%s -c %s %s" % (sys.executable, json.dumps(script), out))
    alarm = {"id": 7, "kind": "tamper", "terminal": "KAPOS001", "detail": "case; rm -rf /"}
    run_async(notifier._guard(notifier._run, alarm))
    assert json.loads(out.read_text())["alarm"] == alarm
    with pytest.raises(ValueError):
        Notifier(webhook="file:///etc/passwd")


# ---------------------------------------------------------------- refusals over HTTP

def _post(url, data, headers=None):
    request = urllib.request.Request(url, data=urllib.parse.urlencode(data).encode(), method="POST",
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_pages_refuse_wrong_secrets_and_anonymous_reads(tmp_path):
    stack = Stack(tmp_path)
    try:
        assert _post(stack.sim_url + "/login", {"token": "not-the-token"}) == 401
        assert _post(stack.dash_url + "/login", {"user": OPERATOR[0], "password": "wrong-password"}) == 401
        for url in ("/api/status", "/api/events", "/frame.png"):
            assert _get(stack.sim_url + url) == 401
        for url in ("/api/state", "/api/events"):
            assert _get(stack.dash_url + url) == 401
        assert _post(stack.dash_url + "/api/topup", {"account": 1, "amount": 5}) == 401
        for _ in range(5):
            _post(stack.dash_url + "/login", {"user": "mallory", "password": "guess-guess"})
        assert _post(stack.dash_url + "/login", {"user": "mallory", "password": "guess-guess"}) == 429
    finally:
        stack.close()


def test_the_simulator_listens_on_loopback_only_and_on_no_real_board(tmp_path):
    from kapos.wiring import Assembly

    assembly = Assembly("sim", overrides=[("storage.data_dir", '"%s"' % tmp_path)])
    try:
        web = WebSim(assembly, "t" * 20)
        with pytest.raises(WebSimError):
            run_async(web.start("0.0.0.0", 0))

        class RealDisplay:  # a device that is not a simulated twin
            pass

        assembly.terminal.platform.devices["display"] = RealDisplay()
        with pytest.raises(WebSimError):
            WebSim(assembly, "t" * 20)
    finally:
        assembly.close()


# ---------------------------------------------------------------- the terminals view

def test_the_terminals_view_shows_the_version_and_self_test_the_terminal_reported_in_its_0800(
        tmp_path, ledger_url):
    from kapos import __version__

    stack = Stack(tmp_path, ledger_url=None if ledger_url.endswith(".db") else ledger_url)
    try:
        ops = stack.dashboard.dashboard.ops
        auth = stack.assembly.authorizer

        def kapos001():
            return [t for t in ops.terminals() if t["terminal"] == "KAPOS001"][0]
        # the sign-on at start (0800 001) carried 48 SV and ST N; the start-up self-test's
        # result follows in an echo once it has run (the sim board passes)
        deadline = time.monotonic() + 10
        row = stack.run(kapos001)
        while row["selftest"] == "not run yet" and time.monotonic() < deadline:
            time.sleep(0.05)
            row = stack.run(kapos001)
        assert row["version"] == __version__ and row["selftest"] == "passed"
        assert row["selftest_ok"] is True and row["pending_reversals"] == 0 and row["last_seen"]
        # the start-up self-test found two faults: an echo tells the host at once
        assert stack.call(auth.report_selftest(["printer", "NFC reader"])) is True
        row = stack.run(kapos001)
        assert row["selftest"] == "FAILED: printer, nfcreader" and row["selftest_ok"] is False
        assert stack.call(auth.report_selftest([])) is True
        assert stack.run(kapos001)["selftest"] == "passed"
        # a version that breaks the SV rules is refused 30; the host keeps the last good one
        from kapos.io.host_link import software_version

        auth.software_version = "1.0 beta"  # forced: a space is not allowed
        assert stack.call(auth.echo())["code"] == "30"
        assert stack.run(kapos001)["version"] == __version__
        assert software_version("1.0 beta") is None and software_version("2.1.0rc1") == "2.1.0rc1"
        auth.software_version = "2.1.0rc1"  # e.g. an installed release's
        assert stack.call(auth.echo())["ok"] and stack.run(kapos001)["version"] == "2.1.0rc1"
    finally:
        stack.close()


def test_kapos_host_user_add_saves_a_user_in_either_engines_ledger(ledger, ledger_url, monkeypatch, capsys):
    import argparse

    from kapos_tools.host.web.cli import cmd_user_add

    monkeypatch.setenv("KAPOS_HOST_USER_PASSWORD", "a-cli-password")
    args = argparse.Namespace(db=ledger_url, name="carl", role="viewer", replace=False)
    assert cmd_user_add(args) == 0
    assert users.verify(ledger, "carl", "a-cli-password") == "viewer"
    with pytest.raises(users.UserError):  # exists: only --replace sets a new password
        cmd_user_add(args)
    monkeypatch.setenv("KAPOS_HOST_USER_PASSWORD", "another-password")
    assert cmd_user_add(argparse.Namespace(db=ledger_url, name="carl", role="operator", replace=True)) == 0
    assert users.verify(ledger, "carl", "another-password") == "operator"
    assert "a-cli-password" not in capsys.readouterr().out


def test_a_sqlite_ledger_of_the_first_dashboard_release_keeps_its_audit_and_blocks(tmp_path):
    path = str(tmp_path / "host.db")
    ledger = Ledger(path)
    ledger.load_cards()
    try:
        with ledger._tx():  # the first release's tables: a `user` column (reserved in PostgreSQL)
            ledger.db.execute("CREATE TABLE ops_audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, "
                              "user TEXT NOT NULL, action TEXT NOT NULL, target TEXT, detail TEXT)")
            ledger.db.execute("INSERT INTO ops_audit (at, user, action, target, detail) VALUES "
                              "(1, 'olga', 'login', 'operator', '')")
            ledger.db.execute("CREATE TABLE ops_blocks (card_key TEXT PRIMARY KEY, prior TEXT, "
                              "user TEXT NOT NULL, at REAL NOT NULL)")
        ops = Operations(ledger)
        assert [(a["user"], a["action"]) for a in ops.audit_log()] == [("olga", "login")]
        ops.block("vera", {c["id"]: c for c in ops.cards()}["visa-debit"]["ref"])
        assert [(a["user"], a["action"]) for a in ops.audit_log()][0] == ("vera", "block")
    finally:
        ledger.close()
