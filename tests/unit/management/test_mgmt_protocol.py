"""The management protocol core: ManagementServer.handle_line for every command, auth,
test mode, and malformed input (no sockets here; see test_mgmt_transports.py)."""

import asyncio
import json
import logging

import pytest

from kapos.errors import KaposError
from kapos.io import logbuffer
from kapos.app.management import MAX_AUTH_FAILURES, MAX_LINE, ManagementServer, Session

TOKEN = "correct horse battery staple"
PROTECTED = ["selftest", "counters", "logs", "screen", "receipt", "records", "snapshot",
             "printer_test", "inject", "fault"]


def run(coro):
    return asyncio.run(coro)


# ------------------------------------------------------------------ open commands

def test_hello_names_versions_board_auth_and_test_mode(mgmt):
    async def go():
        async with mgmt(token=TOKEN, test_mode=True) as h:
            r = await h.ok({"id": 1, "cmd": "hello"})
            assert r["id"] == 1 and r["protocol"] == 1
            assert r["versions"]["kapos"] and r["board"] == "sim"
            assert r["auth_required"] is True and r["authenticated"] is False
            assert r["test_mode"] is True
            assert {"status", "selftest", "inject", "fault", "printer_test"} <= set(r["commands"])
        async with mgmt(test_mode=False) as h:  # the harness authenticated its session
            r = await h.ok({"cmd": "hello"})
            assert r["auth_required"] is True and r["authenticated"] is True and r["test_mode"] is False

    run(go())


def test_status_needs_no_auth_and_is_read_only(mgmt):
    async def go():
        async with mgmt(token=TOKEN, test_mode=False) as h:
            handled = h.terminal.events_handled
            r = await h.ok({"id": "s", "cmd": "status"})
            assert r["id"] == "s"
            assert r["state"] == "IDLE" and "1 Sale" in r["screen"]
            assert r["last_result"] is None and r["counters"]["approved"] == 0
            assert r["test_mode"] is False and isinstance(r["seq"], int)
            assert h.terminal.events_handled == handled

    run(go())


# ------------------------------------------------------------------ auth

@pytest.mark.parametrize("cmd", PROTECTED)
def test_everything_beyond_hello_and_status_needs_auth(mgmt, cmd):
    async def go():
        async with mgmt(token=TOKEN, test_mode=True) as h:
            error = await h.error({"id": 7, "cmd": cmd, "key": "1", "fault": "host_offline"})
            assert "not authenticated" in error and "auth" in error

    run(go())


def no_backoff():
    from kapos.app.mgmt_auth import AuthThrottle

    return AuthThrottle(peer_base=0, global_base=0)


def test_wrong_token_refused_right_token_accepted(mgmt):
    async def go():
        async with mgmt(token=TOKEN, throttle=no_backoff()) as h:
            assert await h.error({"cmd": "auth", "token": "guess"}) == "wrong token"
            assert "not authenticated" in await h.error({"cmd": "counters"})
            assert (await h.ok({"cmd": "auth", "token": TOKEN}))["authenticated"] is True
            assert (await h.ok({"cmd": "counters"}))["counters"]["approved"] == 0
            assert (await h.ok({"cmd": "hello"}))["authenticated"] is True
            await h.ok({"cmd": "logout"})
            assert "not authenticated" in await h.error({"cmd": "counters"})

    run(go())


def test_auth_is_per_session_and_locks_after_repeated_failures(mgmt):
    async def go():
        async with mgmt(token=TOKEN, throttle=no_backoff()) as h:
            a, b = Session("a"), Session("b")
            await h.ok({"cmd": "auth", "token": TOKEN}, a)
            assert "not authenticated" in await h.error({"cmd": "counters"}, b)
            for _ in range(MAX_AUTH_FAILURES):
                assert await h.error({"cmd": "auth", "token": "x"}, b) == "wrong token"
            assert "too many wrong tokens" in await h.error({"cmd": "auth", "token": TOKEN}, b)
            await h.ok({"cmd": "counters"}, a)

    run(go())


def test_auth_needs_a_string_token(mgmt):
    async def go():
        async with mgmt(token=TOKEN) as h:
            assert "token" in await h.error({"cmd": "auth"})
            assert "token" in await h.error({"cmd": "auth", "token": 1234})

    run(go())


@pytest.mark.parametrize("token, message", [(None, "needs a token"), ("", "empty"),
                                            (" padded ", "printable"), ("x" * 300, "printable")])
def test_a_missing_or_unusable_token_is_refused_at_construction(mgmt, token, message):
    async def go():
        async with mgmt() as h:
            with pytest.raises(KaposError, match=message):
                ManagementServer(h.terminal, h.assembly.diagnostics, token=token)

    run(go())


def test_an_in_process_caller_must_authenticate_too(mgmt):
    async def go():
        async with mgmt(token=TOKEN, test_mode=True) as h:
            for cmd in ("keys_load", "inject", "logs"):
                assert "not authenticated" in await h.error({"cmd": cmd, "key": "1"})
            assert h.terminal.state == "IDLE"

    run(go())


def test_wrong_tokens_back_off_per_address_across_sessions(mgmt):
    async def go():
        from kapos.app.mgmt_auth import AuthThrottle

        now = [100.0]
        throttle = AuthThrottle(peer_base=1.0, clock=lambda: now[0])
        async with mgmt(token=TOKEN, throttle=throttle) as h:
            first = Session("10.0.0.9:5000", address="10.0.0.9")
            assert await h.error({"cmd": "auth", "token": "guess"}, first) == "wrong token"
            again = Session("10.0.0.9:5001", address="10.0.0.9")  # a reconnect does not reset it
            error = await h.error({"cmd": "auth", "token": TOKEN}, again)
            assert "wait 1.0 s" in error and not again.authed
            await h.ok({"cmd": "auth", "token": TOKEN}, Session("10.0.0.8:1", address="10.0.0.8"))
            now[0] += 1.0
            await h.ok({"cmd": "auth", "token": TOKEN}, again)

    run(go())


# ------------------------------------------------------------------ diagnostics commands

def test_selftest_passes_on_the_sim_board_and_names_a_fault(mgmt):
    async def go():
        async with mgmt(test_mode=True) as h:
            r = await h.ok({"id": 3, "cmd": "selftest"})
            assert r["passed"] is True and r["failed"] == []
            names = [c["name"] for c in r["checks"]]
            assert {"display", "keypad", "printer", "host", "nfc", "disk", "time"} <= set(names)
            assert all(set(c) >= {"name", "ok", "detail", "essential", "ms"} for c in r["checks"])
            await h.ok({"cmd": "fault", "fault": "printer_paper_out", "on": True})
            r = await h.ok({"cmd": "selftest"})
            assert r["passed"] is False and r["failed"] == ["printer"]
            printer = next(c for c in r["checks"] if c["name"] == "printer")
            assert "paper-out" in printer["detail"]

    run(go())


def test_counters_screen_receipt_records_after_a_sale(mgmt):
    async def go():
        async with mgmt(test_mode=True) as h:
            assert (await h.ok({"cmd": "receipt"}))["receipt"] is None
            assert (await h.ok({"cmd": "records"}))["records"] == []
            await h.sale()
            assert (await h.ok({"cmd": "counters"}))["counters"]["approved"] == 1
            screen = await h.ok({"cmd": "screen"})
            assert "APPROVED" in screen["screen"] and screen["title"] and isinstance(screen["lines"], list)
            receipt = await h.ok({"cmd": "receipt"})
            assert "************1111" in receipt["receipt"] and receipt["count"] == 2  # customer + merchant copy
            records = (await h.ok({"cmd": "records", "n": 5}))["records"]
            assert len(records) == 1 and records[0]["outcome"] == "approved"
            assert records[0]["card"].endswith("1111")
            everything = json.dumps([receipt, records, screen])
            assert "4111111111111111" not in everything and "411111" not in records[0]["card"]

    run(go())


def test_logs_are_masked_and_can_be_followed(mgmt):
    async def go():
        buffer = logbuffer.LogBuffer(capacity=50)
        logger = logging.getLogger("kapos.test_mgmt")
        logger.addHandler(buffer)
        try:
            async with mgmt(log_buffer=buffer) as h:
                logger.warning("card 4111111111111111 read, track ;4111111111111111=30121010000?")
                r = await h.ok({"cmd": "logs", "n": 10})
                text = "\n".join(r["lines"])
                assert "4111111111111111" not in text
                assert "411111******1111" in text and "[track]" in text
                logger.warning("second line")
                later = await h.ok({"cmd": "logs", "since": r["next"]})
                assert len(later["lines"]) == 1 and "second line" in later["lines"][0]
                assert "whole number" in await h.error({"cmd": "logs", "n": "ten"})
                assert "0 to 1000" in await h.error({"cmd": "logs", "n": 5000})
        finally:
            logger.removeHandler(buffer)

    run(go())


def test_printer_test_prints_a_page_and_reports_paper_out(mgmt):
    async def go():
        async with mgmt(test_mode=True) as h:
            r = await h.ok({"cmd": "printer_test"})
            assert r["printed"] is True and r["status"] == "ok"
            receipt, escpos = h.platform.printer.jobs[-1]
            assert "PRINTER TEST" in receipt.text() and escpos
            assert h.terminal.receipts == [], "a test page is not a transaction receipt"
            await h.ok({"cmd": "fault", "fault": "printer_paper_out"})
            assert "paper-out" in await h.error({"cmd": "printer_test"})
            assert h.terminal.state == "IDLE"

    run(go())


def test_printer_test_and_selftest_wait_while_a_transaction_runs(mgmt):
    async def go():
        async with mgmt(test_mode=True) as h:
            await h.ok({"cmd": "inject", "key": "1"})
            assert "busy (state AMOUNT)" in await h.error({"cmd": "printer_test"})
            assert "busy" in await h.error({"cmd": "selftest"})
            assert h.platform.printer.jobs == []

    run(go())


def test_snapshot_counts_results_receipts_and_beeps(mgmt):
    async def go():
        async with mgmt(test_mode=True) as h:
            before = await h.ok({"cmd": "snapshot"})
            assert before["results_total"] == 0 and before["beeps"] == []
            await h.sale()
            after = await h.ok({"cmd": "snapshot"})
            assert after["results"] == ["approved"] and after["results_total"] == 1
            assert after["receipts_total"] == 2 and "APPROVED" in after["receipts"][-1]  # two copies
            assert after["beeps_total"] > 0 and "key" in after["beeps"]
            assert after["seq"] > before["seq"]

    run(go())


# ------------------------------------------------------------------ test mode: inject, fault

def test_inject_key_swipe_and_tap_drive_the_terminal(mgmt):
    async def go():
        async with mgmt(test_mode=True) as h:
            r = await h.ok({"cmd": "inject", "key": "1"})
            assert r["handled"] is True and r["state"] == "AMOUNT"
            await h.ok({"cmd": "inject", "key": "5"})
            r = await h.ok({"cmd": "inject", "key": "enter"})
            assert r["state"] == "CARD"
            r = await h.ok({"cmd": "inject", "swipe": "visa-debit"})
            assert r["state"] == "ACCOUNT" and "1111" in r["screen"]
            await h.ok({"cmd": "inject", "key": "CANCEL"})
            for key in ("1", "5", "ENTER"):
                await h.ok({"cmd": "inject", "key": key})
            r = await h.ok({"cmd": "inject", "tap": "emv-tap"})
            assert r["state"] == "ACCOUNT"
            await h.ok({"cmd": "inject", "key": "CANCEL"})
            for key in ("1", "5", "ENTER"):
                await h.ok({"cmd": "inject", "key": key})
            token = h.assembly.testcards["token"].uid.hex().upper()
            r = await h.ok({"cmd": "inject", "tap_uid": token})
            assert r["state"] == "CONFIRM"
            await h.ok({"cmd": "inject", "key": "CANCEL"})
            for key in ("1", "5", "ENTER"):
                await h.ok({"cmd": "inject", "key": key})
            r = await h.ok({"cmd": "inject", "swipe_raw": "%B123?"})
            assert "Card read error" in r["screen"]

    run(go())


@pytest.mark.parametrize("request_, message", [
    ({"cmd": "inject"}, "exactly one of"),
    ({"cmd": "inject", "key": "1", "swipe": "visa-debit"}, "exactly one of"),
    ({"cmd": "inject", "key": "X"}, "not a keypad key"),
    ({"cmd": "inject", "key": 1}, "non-empty string"),
    ({"cmd": "inject", "swipe": "no-such-card"}, "unknown test card"),
    ({"cmd": "inject", "tap": "visa-debit"}, "cannot be tapped"),
    ({"cmd": "inject", "tap_uid": "zz"}, "hexadecimal"),
    ({"cmd": "inject", "tap_uid": "04"}, "4, 7 or 10 bytes"),
    ({"cmd": "fault"}, "one of printer_paper_out"),
    ({"cmd": "fault", "fault": "meteor"}, "one of printer_paper_out"),
    ({"cmd": "fault", "fault": "host_offline", "on": "yes"}, "true or false"),
    ({"cmd": "records", "n": -1}, "0 to 100"),
])
def test_missing_or_wrong_fields_are_clear_errors(mgmt, request_, message):
    async def go():
        async with mgmt(test_mode=True) as h:
            assert message in await h.error(request_)
            assert h.terminal.state == "IDLE"
            await h.ok({"cmd": "status"})

    run(go())


@pytest.mark.parametrize("request_", [{"cmd": "inject", "key": "1"}, {"cmd": "inject", "swipe": "visa-debit"},
                                      {"cmd": "fault", "fault": "host_offline"}])
def test_inject_and_fault_are_refused_outside_test_mode(mgmt, request_):
    async def go():
        async with mgmt(token=TOKEN, test_mode=False) as h:
            await h.ok({"cmd": "auth", "token": TOKEN})
            error = await h.error(request_)
            assert "only available in test mode" in error and "--test-mode" in error
            assert h.terminal.state == "IDLE" and h.terminal.authorizer.online

    run(go())


def test_faults_switch_on_and_off(mgmt):
    async def go():
        async with mgmt(test_mode=True) as h:
            r = await h.ok({"cmd": "fault", "fault": "host_offline", "on": True})
            assert r["faults"] == ["host_offline"] and h.terminal.authorizer.online is False
            await h.ok({"cmd": "fault", "fault": "nfc_absent"})
            assert h.platform.nfc.present is False
            r = await h.ok({"cmd": "fault", "fault": "printer_paper_out", "on": True})
            assert r["faults"] == ["host_offline", "nfc_absent", "printer_paper_out"]
            failed = (await h.ok({"cmd": "selftest"}))["failed"]
            assert set(failed) == {"host", "nfc", "printer"}
            for name in ("host_offline", "nfc_absent", "printer_paper_out"):
                await h.ok({"cmd": "fault", "fault": name, "on": False})
            assert (await h.ok({"cmd": "selftest"}))["passed"] is True

    run(go())


def test_inject_needs_a_running_terminal():
    async def go():
        from kapos.wiring import Assembly

        a = Assembly("sim", fresh_storage=True)
        try:
            server = ManagementServer(a.terminal, a.diagnostics, a.testcards, token=TOKEN, test_mode=True)
            assert (await server.handle_line(json.dumps({"cmd": "auth", "token": TOKEN})))["ok"]
            reply = await server.handle_line('{"cmd": "inject", "key": "1"}')
            assert reply == {"id": None, "ok": False, "error": "the terminal is not running"}
            await server.close()
        finally:
            a.close()

    run(go())


# ------------------------------------------------------------------ malformed input

@pytest.mark.parametrize("line, message", [
    ("{not json", "bad JSON"),
    ("POST / HTTP/1.1", "bad JSON"),
    ('{"id": NaN, "cmd": "status"}', "NaN is not a JSON number"),
    ('{"id": 1, "cmd": "logs", "n": Infinity}', "Infinity is not a JSON number"),
    ('{"id": -Infinity, "cmd": "status"}', "-Infinity is not a JSON number"),
    ('{"id": 1e999, "cmd": "status"}', "out of range"),
    ("[" * 4000 + "]" * 4000, "bad JSON: nested too deeply"),
    ("[1, 2]", "must be a JSON object, got an array"),
    ('"status"', "must be a JSON object, got a string"),
    ("42", "must be a JSON object, got a number"),
    ("null", "must be a JSON object, got null"),
    ("", "empty request"),
    ("   ", "empty request"),
    (b'{"cmd": "status", "x": "\xff\xfe"}', "not valid UTF-8"),
    ('{"cmd": "status", "pad": "%s"}' % ("x" * MAX_LINE), "longer than 8192 bytes"),
    (b'{"cmd": "status", "pad": "%s"}' % (b"x" * MAX_LINE), "longer than 8192 bytes"),
])
def test_malformed_requests_get_a_clear_error_and_change_nothing(mgmt, line, message):
    async def go():
        async with mgmt(test_mode=True) as h:
            before = (h.terminal.state, h.terminal.screen, dict(h.terminal.ctx.counters), h.terminal.events_handled)
            reply = await h.server.handle_line(line)
            assert reply["ok"] is False and message in reply["error"], reply
            assert set(reply) == {"id", "ok", "error"}
            assert (h.terminal.state, h.terminal.screen, dict(h.terminal.ctx.counters),
                    h.terminal.events_handled) == before
            assert reply["id"] is None and h.server.session.close_after  # TCP closes after it
            assert json.dumps(reply, allow_nan=False)

    run(go())


@pytest.mark.parametrize("line, message", [
    ('{"id": 1}', 'missing "cmd"'),
    ('{"id": 1, "cmd": 5}', '"cmd" must be a string'),
    ('{"id": 1, "cmd": "reboot"}', "unknown command 'reboot'"),
    ('{"id": {"a": 1}, "cmd": "status"}', '"id" must be'),
    ('{"id": 1, "cmd": "logs", "n": 1.5}', "whole number"),
])
def test_a_bad_field_is_a_clear_error_and_the_session_stays_usable(mgmt, line, message):
    async def go():
        async with mgmt(test_mode=True) as h:
            before = (h.terminal.state, h.terminal.screen, h.terminal.events_handled)
            reply = await h.server.handle_line(line)
            assert reply["ok"] is False and message in reply["error"], reply
            assert (h.terminal.state, h.terminal.screen, h.terminal.events_handled) == before
            assert not h.server.session.close_after
            assert (await h.ok({"cmd": "inject", "key": "1"}))["state"] == "AMOUNT"

    run(go())


def test_a_reply_with_a_non_finite_number_becomes_a_strict_error(mgmt):
    from kapos.app.management import _encode

    data = _encode({"id": 3, "ok": True, "time": float("nan")})
    reply = json.loads(data, parse_constant=lambda name: pytest.fail("non-strict JSON: %s" % name))
    assert reply == {"id": 3, "ok": False, "error": "internal error: reply not encodable"}


def test_request_id_is_echoed_even_on_errors(mgmt):
    async def go():
        async with mgmt() as h:
            assert (await h.send({"id": "abc", "cmd": "nope"}))["id"] == "abc"
            assert (await h.send({"id": 9, "cmd": "inject", "key": "1"}))["id"] == 9

    run(go())


def test_a_bug_in_a_command_is_an_error_reply_not_a_crash(mgmt, monkeypatch):
    async def go():
        async with mgmt() as h:
            async def broken():
                raise RuntimeError("boom")

            monkeypatch.setattr(h.assembly.diagnostics, "selftest", broken)
            error = await h.error({"cmd": "selftest"})
            assert error == "internal error: RuntimeError"
            assert h.terminal.state == "IDLE"
            await h.ok({"cmd": "status"})

    run(go())


def test_close_detaches_from_the_terminal(mgmt):
    async def go():
        async with mgmt(test_mode=True) as h:
            buzzer = h.platform.buzzer
            assert "beep" in buzzer.__dict__
            await h.server.close()
            assert h.server._observe not in h.terminal.observers
            assert "beep" not in buzzer.__dict__

    run(go())


def test_a_serial_session_forgets_its_auth_when_idle(mgmt):
    async def go():
        async with mgmt(token=TOKEN) as h:
            console = Session("serial", idle_logout=0.05)
            await h.ok({"cmd": "auth", "token": TOKEN}, console)
            await h.ok({"cmd": "counters"}, console)
            await asyncio.sleep(0.1)
            assert "not authenticated" in await h.error({"cmd": "counters"}, console)

    run(go())


def test_parse_hostport():
    from kapos.app.management import DEFAULT_PORT, parse_hostport

    assert parse_hostport("127.0.0.1:7700") == ("127.0.0.1", 7700)
    assert parse_hostport("0.0.0.0") == ("0.0.0.0", DEFAULT_PORT)
    assert parse_hostport(":7800") == ("127.0.0.1", 7800)
    assert parse_hostport("[::1]:7700") == ("::1", 7700)
    assert parse_hostport("[::1]") == ("::1", DEFAULT_PORT)
    with pytest.raises(KaposError, match="must look like"):
        parse_hostport("host:port")
