"""A running terminal updates itself: v1 -> v2 (trial boot, confirmed), v3 fails its
self-test and falls back to v2 on its own; the data directory (journal, keys) is never
touched. The service manager is kapos.update.supervise (what systemd does on a Pi)."""

import json
import os
import queue
import signal
import subprocess
import threading
import time

import pytest

from kapos.update.layout import Layout
from updatekit import PYTHON, Site, init_root, kapos, serve, tree_digest

V3_BROKEN = {"app/diagnostics.py": ("        checks.append(self._clock())\n",
                                    "        checks.append(Check(\"v3\", False, \"broken on purpose\"))\n")}


def row_counts(path):
    """Rows per table of an SQLite file (read-only; the terminal may be running)."""
    import sqlite3

    with sqlite3.connect("file:%s?mode=ro" % path, uri=True) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type = 'table'")]
        return {t: db.execute('select count(*) from "%s"' % t).fetchone()[0] for t in tables}


class Supervised:
    """The supervisor and its terminal; output lines are the events the test waits for."""

    def __init__(self, root, data_dir):
        args = [PYTHON, "-m", "kapos.update.supervise", "--root", root, "--max-starts", "8", "--",
                "run", "--board", "sim", "--headless", "--update-root", root, "--update-interval", "0.5",
                "--set", "storage.data_dir=%s" % data_dir]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, text, timeout=60.0):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.01, remaining))
            except queue.Empty:
                line = None
            if line is not None:
                self.seen.append(line)
                if text in line:
                    return line
            if line is None or time.monotonic() > deadline:
                raise AssertionError("never saw %r; output:\n%s" % (text, "\n".join(self.seen[-40:])))

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def site(tmp_path):
    return Site(str(tmp_path))


def test_v1_updates_to_v2_and_a_v3_that_fails_its_self_test_rolls_back_by_itself(site, tmp_path):
    site.release("1.0.0")
    server = serve(site.dir)
    root = init_root(str(tmp_path / "root"), server.url, site)
    data = str(tmp_path / "data")
    out = kapos("update", "apply", "--root", root)
    assert out.returncode == 0, out.stderr
    layout = Layout(root)
    terminal = Supervised(root, data)
    try:
        terminal.wait_for("1.0.0 confirmed itself")
        before = tree_digest(data)  # keys made at the first start; the journal directory
        assert "keys/kek.bin" in before, sorted(before)
        journal_rows = {name: row_counts(os.path.join(data, name)) for name in before
                        if name.endswith((".sqlite3", ".db"))}

        site.release("2.0.0")
        terminal.wait_for("switched to 2.0.0")
        terminal.wait_for("trial boot of 2.0.0")
        terminal.wait_for("2.0.0 confirmed itself")
        state = layout.state()
        assert layout.current() == "2.0.0" and state["previous"] == "1.0.0"
        assert state["last"]["result"] == "confirmed" and state["trial"] is None

        site.release("3.0.0", patch=V3_BROKEN)
        terminal.wait_for("switched to 3.0.0")
        terminal.wait_for("trial boot of 3.0.0")
        line = terminal.wait_for("3.0.0 rolled back to 2.0.0")
        assert "self-test failed" in line and "broken on purpose" in line
        terminal.wait_for("running 2.0.0")  # the boot check after the restart
        state = layout.state()
        assert layout.current() == "2.0.0"
        assert state["refused"] == ["3.0.0"]
        assert state["last"]["version"] == "3.0.0" and state["last"]["result"] == "rolled back"
        out = kapos("update", "status", "--root", root)
        assert "running   2.0.0" in out.stdout and "3.0.0 rolled back" in out.stdout
        # the journal and the keys survive every update and rollback: nothing removed, and the
        # key-encryption key (rewritten only by a key load or a tamper) is the same bytes
        after = tree_digest(data)
        lasting = {name for name in before if not name.endswith(("-wal", "-shm"))}
        assert lasting <= set(after)
        assert after["keys/kek.bin"] == before["keys/kek.bin"]
        for name, counts in journal_rows.items():  # no journal or ledger row lost
            now = row_counts(os.path.join(data, name))
            assert all(now[table] >= n for table, n in counts.items()), (name, counts, now)
    finally:
        terminal.stop()
        server.stop()


def test_diagnostics_show_running_previous_and_last_update(site, tmp_path):
    """The technician menu's self-test and `kapos diag` versions carry the update status."""
    import asyncio

    from kapos.harness import started
    from kapos.update.agent import UpdateAgent
    from kapos.wiring import Assembly

    site.release("1.0.0")
    server = serve(site.dir)
    try:
        root = init_root(str(tmp_path / "root"), server.url, site)
        assert kapos("update", "apply", "--root", root).returncode == 0
        layout = Layout(root)
        state = layout.state()
        layout.record(state, "1.0.0", "rolled back", "did not confirm")
        layout.write_state(state)
        assembly = Assembly("sim", None, [("storage.data_dir", str(tmp_path / "data"))])

        async def go():
            UpdateAgent(assembly, root)
            async with started(assembly):
                return await assembly.diagnostics.run("selftest"), assembly.diagnostics.versions()

        (title, lines), versions = asyncio.run(go())
        assembly.close()
        software = [line for line in lines if "software" in line]
        assert software and "1.0.0 rolled back: did not confirm" in software[0]
        assert versions["update_last_update"] == "1.0.0 rolled back: did not confirm"
        assert versions["update_previous"] == "-"
        json.dumps(versions)  # crosses the management channel as JSON
    finally:
        server.stop()


def test_the_switch_waits_for_the_end_of_a_transaction_and_progress_shows_on_the_idle_screen(site, tmp_path):
    """In process: the agent downloads and installs v2 during a sale, but switches and asks
    for the restart only once the terminal is back on the idle screen."""
    import asyncio

    from kapos.harness import started
    from kapos.update.agent import UpdateAgent
    from kapos.wiring import Assembly
    from updatekit import install_in_process

    site.release("1.0.0")
    server = serve(site.dir)
    try:
        root = str(tmp_path / "root")
        layout = install_in_process(root, server.url, site, "1.0.0")
        site.release("2.0.0")
        assembly = Assembly("sim", None, [("storage.data_dir", str(tmp_path / "data"))])
        screens = []
        assembly.terminal.observers.append(lambda kind, payload: kind == "screen" and screens.append(payload.text()))

        async def go():
            agent = UpdateAgent(assembly, root)
            agent.version = "1.0.0"
            terminal = assembly.terminal
            async with started(assembly):
                terminal.press("1")  # a sale begins: AMOUNT
                while terminal.state == "IDLE":
                    await asyncio.sleep(0.01)
                reached = asyncio.Event()
                wait_idle = agent._idle

                async def idle_reached():
                    reached.set()
                    await wait_idle()

                agent._idle = idle_reached
                check = asyncio.ensure_future(agent.check_once())
                await asyncio.wait_for(reached.wait(), 30)
                during = (layout.current(), getattr(terminal, "restart_requested", None), agent.status()["pending"])
                terminal.press("CANCEL")
                await asyncio.wait_for(check, 30)
                return during, getattr(terminal, "restart_requested", None)

        (current, restart, pending), after = asyncio.run(go())
        assembly.close()
        assert current == "1.0.0" and restart is None and "2.0.0 installed" in pending
        assert after == "update to 2.0.0" and layout.current() == "2.0.0"
        assert layout.state()["trial"]["version"] == "2.0.0"
        assert "Software 2.0.0: restarting" in " ".join(screens[-1].split())
        assert not [t for t in screens[:-1] if "Update 2.0.0" in t]  # a sale's screens are left alone
    finally:
        server.stop()


def test_download_progress_shows_on_the_idle_screen(site, tmp_path):
    import asyncio

    from kapos.harness import started
    from kapos.update.agent import UpdateAgent
    from kapos.wiring import Assembly
    from updatekit import install_in_process

    site.release("1.0.0")
    server = serve(site.dir)
    try:
        root = str(tmp_path / "root")
        install_in_process(root, server.url, site, "1.0.0")
        site.release("2.0.0")
        assembly = Assembly("sim", None, [("storage.data_dir", str(tmp_path / "data"))])
        screens = []
        assembly.terminal.observers.append(lambda kind, payload: kind == "screen" and screens.append(payload.text()))

        async def go():
            agent = UpdateAgent(assembly, root)
            agent.version = "1.0.0"
            async with started(assembly):
                await agent.check_once()

        asyncio.run(go())
        assembly.close()
        shown = [" ".join(t.split()) for t in screens]
        shown = [t for t in shown if "Update 2.0.0" in t]
        assert any("download" in t for t in shown) and any("install 100%" in t for t in shown), shown
    finally:
        server.stop()


def test_no_switch_while_a_reversal_is_pending_and_a_refusal_shows_in_the_self_test(site, tmp_path, monkeypatch):
    import asyncio

    from kapos.harness import started
    from kapos.update import agent as agent_mod
    from kapos.update.agent import UpdateAgent
    from kapos.wiring import Assembly
    from updatekit import install_in_process

    monkeypatch.setattr(agent_mod, "IDLE_RECHECK", 0.05)
    site.release("1.0.0")
    server = serve(site.dir)
    try:
        root = str(tmp_path / "root")
        layout = install_in_process(root, server.url, site, "1.0.0")
        site.release("2.0.0")
        assembly = Assembly("sim", None, [("storage.data_dir", str(tmp_path / "data"))])
        pending = [1]
        assembly.terminal.authorizer.pending = lambda: pending[0]  # a reversal not yet sent

        async def go():
            agent = UpdateAgent(assembly, root)
            agent.version = "1.0.0"
            async with started(assembly) as running:
                terminal = running.terminal
                reached = asyncio.Event()
                wait_idle = agent._idle

                async def idle_reached():
                    reached.set()
                    await wait_idle()

                agent._idle = idle_reached
                check = asyncio.ensure_future(agent.check_once())
                await asyncio.wait_for(reached.wait(), 30)
                rechecked = asyncio.Event()
                looks = [0]
                is_idle = terminal.is_idle

                def counting():  # the agent looks again and again while the reversal waits
                    looks[0] += 1
                    if looks[0] >= 3:
                        rechecked.set()
                    return is_idle()

                terminal.is_idle = counting
                await asyncio.wait_for(rechecked.wait(), 30)
                during = layout.current(), getattr(terminal, "restart_requested", None)
                pending[0] = 0  # the reversal went out
                await asyncio.wait_for(check, 30)
                site.repo.resign_timestamp(expires=-60)  # then the repository is frozen
                await agent.check_once()
                return during, getattr(terminal, "restart_requested", None), await assembly.diagnostics.selftest()

        (current, restart), after, checks = asyncio.run(go())
        assembly.close()
        assert current == "1.0.0" and restart is None
        assert after == "update to 2.0.0" and layout.current() == "2.0.0"
        software = [c for c in checks if c.name == "software"][0]
        assert "refused: update metadata expired" in software.detail
    finally:
        server.stop()
