"""Composition (L6): board file + config -> Platform + services -> Terminal."""

import calendar
import logging
import os
import tempfile
import time

from kapos.ports.shared import crypto_backend, escpos_cache

crypto_backend.prefer_ctypes()  # before kapos.app.pinseal imports Crypto: start-up time

from kapos import boards  # noqa: E402
from kapos.app import config as config_mod
from kapos.simdata import cards as testcards_mod
from kapos.app.diagnostics import Diagnostics
from kapos.app.pinseal import TestKeyPinSealer
from kapos.simdata.keys import TEST_BDK, ik_id_for
from kapos.core import events
from kapos.security import dukpt
from kapos.io.keystore import KeyStore
from kapos.app.secmodule import SecurityModule
from kapos.app.runtime import Terminal
from kapos.app.techlock import TechLockFile
from kapos.errors import ConfigError

log = logging.getLogger("kapos.wiring")


def parse_clock(text):
    """'2026-11-25T10:00:00' (UTC) -> epoch seconds."""
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        raise ConfigError("clock must look like 2026-11-25T10:00:00, got %r" % text)


def check_scenario(scenario, config_path=None, overrides=()):
    """Refuse a scenario whose cards, states, config lines or clock are wrong before
    anything starts (ScenarioError naming the line: `kapos run --script` exits 2)."""
    from kapos.core import states

    def check_config(key, value):
        config_mod.load(config_path, list(overrides) + [(key, value)])

    scenario.check(testcards_mod.load().keys(), states.ALL, check_config, parse_clock)


HOSTS_GROUP = "kapos.hosts"  # entry points: name -> factory of an in-process host engine


def _own_entry_point(group, name, path=None):
    """'module:attr' registered as `name` in `group` by kapos' own distribution: its
    entry_points.txt read from the first kapos-*.dist-info on sys.path (where
    importlib.metadata.distribution("kapos") finds it), without importing
    importlib.metadata (~12 ms of a cold start). None: no such distribution or entry."""
    import sys

    for folder in sys.path if path is None else path:
        try:
            names = os.listdir(folder or ".")
        except OSError:
            continue
        for entry in sorted(names):
            if entry.lower().startswith("kapos-") and entry.endswith(".dist-info"):
                return _entry_in(os.path.join(folder or ".", entry, "entry_points.txt"), group, name)
    return None


def _entry_in(entry_points_txt, group, name):
    """The value of `name` in [group] of an entry_points.txt (INI-like), or None."""
    try:
        with open(entry_points_txt, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    section = None
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == group and "=" in line:
            key, value = line.split("=", 1)
            if key.strip() == name:
                return value.strip()
    return None


def _load_entry(value):
    """An entry point's object from 'module:attr.attr [extras]' (extras ignored)."""
    import importlib

    module, _, attrs = value.split("[", 1)[0].strip().partition(":")
    obj = importlib.import_module(module.strip())
    for attr in attrs.strip().split(".") if attrs.strip() else ():
        obj = getattr(obj, attr)
    return obj


def host_engine_factory(name="reference"):
    """The factory registered as `name` in the `kapos.hosts` entry-point group (kapos_tools
    registers the reference host's engine): the firmware never imports tools/."""
    # kapos' own distribution first (kapos_tools ships in it), read directly: importing
    # importlib.metadata and scanning every installed distribution costs tens of ms
    value = _own_entry_point(HOSTS_GROUP, name)
    if value is not None:
        return _load_entry(value)
    from importlib import metadata

    try:
        found = metadata.entry_points(group=HOSTS_GROUP)
    except TypeError:  # Python < 3.10
        found = metadata.entry_points().get(HOSTS_GROUP, [])
    for entry in found:
        if entry.name == name:
            return entry.load()
    raise ConfigError("host.mode = \"reference\" needs the reference host (kapos_tools, "
                      "installed by `make`); or set host.mode = \"iso8583\"")


def make_authorizer(config, cards=None, security=None, clock=None):
    """The Authorizer of host.mode: the terminal's ISO 8583 client (HostAuthorizer with its
    journal) over TCP/serial to a host (iso8583), or over a loopback transport to the
    reference host's engine in this process (reference) - one bank's rules either way."""
    from kapos.io.host_link import from_config
    from kapos.app.secmodule import DukptMac

    mode = config["host"]["mode"]
    if mode not in config_mod.HOST_MODES:
        raise ConfigError("host.mode %r is unknown (known: %s)" % (mode, ", ".join(config_mod.HOST_MODES)))
    mac = None
    if isinstance(security, SecurityModule) and (config["host"]["mac"] or mode == "reference"):
        mac = DukptMac(security)
    elif config["host"]["mac"] and mode == "iso8583":
        raise ConfigError("host.mac needs keys.mode = \"dukpt\" (or set host.mac = false)")
    if mode == "iso8583":
        return from_config(config, mac=mac, clock=clock)
    from kapos.io.transport import LoopbackTransport

    ledger = os.path.join(config["storage"]["data_dir"], "sim-host.db")
    engine = host_engine_factory("reference")(ledger, clock=clock, mac=mac is not None)
    transport = LoopbackTransport(engine, delay=config["host"]["reply_delay"])
    authorizer = from_config(config, mac=mac, clock=clock, transport=transport)
    authorizer.engine = engine  # the in-process host (its ledger), for tests and diagnostics
    return authorizer


def make_security(config, settings):
    """The PIN sealer / security module the keys config asks for."""
    mode = config["keys"]["mode"]
    if mode == "test-key":
        return TestKeyPinSealer(), None
    if mode != "dukpt":
        raise ConfigError("keys.mode %r is unknown (known: dukpt, test-key)" % mode)
    store = KeyStore(os.path.join(config["storage"]["data_dir"], "keys"))
    if not store.loaded and not store.tampered and config["keys"]["auto_test_keys"]:
        ik_id = ik_id_for(settings.terminal_id)
        store.install(dukpt.derive_initial_key(TEST_BDK, ik_id), ik_id, source="public test BDK (auto)")
        log.warning("loaded keys from the PUBLIC test BDK: for test cards only")
    return SecurityModule(store), store


def _model_journal_fsync(board, journal):
    """[board] journal_fsync_ms (the timed sim board): each journal commit also takes that
    long, as an fsync does on an SD card (boards/sim-pi.toml)."""
    delay_ms = board["board"].get("journal_fsync_ms", 0)
    if isinstance(delay_ms, bool) or not isinstance(delay_ms, (int, float)) or not 0 <= delay_ms <= 5000:
        raise ConfigError("[board] journal_fsync_ms is a number of milliseconds from 0 to 5000")
    if journal is not None and delay_ms:
        journal.fsync_delay = delay_ms / 1000.0


class Assembly:
    """Everything one terminal run is made of; kapos.harness starts it for every caller."""

    def __init__(self, board_name="sim", config_path=None, overrides=(), out_dir=None, clock=None,
                 fresh_storage=False, data_dir=None):
        self.config = config_mod.load(config_path, overrides)
        self._tmp = None
        if data_dir is not None:  # the caller's directory (kapos.harness: its temporary one)
            self.config["storage"]["data_dir"] = str(data_dir)
        elif fresh_storage:  # starts from nothing and leaves nothing behind (removed by close())
            self._tmp = tempfile.TemporaryDirectory(prefix="kapos-run-")
            self.config["storage"]["data_dir"] = self._tmp.name
        self.settings = config_mod.settings_from(self.config)
        self.board = boards.load_board(board_name)
        if config_mod.card_data_in_clear(self.config, self.board, boards.DRIVERS):
            log.warning("host.mac = false: card data crosses the host link IN CLEAR and unMACed "
                        "(simulated card readers only)")
        plain_pin = config_mod.plain_technician_pin(self.config, self.board, boards.DRIVERS)
        if plain_pin:
            log.warning(plain_pin)
        # python-escpos' parsed printer database, kept across starts
        escpos_cache.use_cache_dir(os.path.join(self.config["storage"]["data_dir"], "cache", "escpos"))
        self.platform = boards.build_platform(self.board)
        for device in self.platform.devices.values():
            if out_dir is not None and hasattr(device, "out_dir"):
                device.out_dir = out_dir
        clock_device = self.platform.get("clock")
        if clock is not None and hasattr(clock_device, "set_time"):
            clock_device.set_time(parse_clock(clock))
        # Test cards stay valid both on the terminal's (possibly simulated) date and on the
        # wall-clock date a reference host in another process goes by.
        sim_now = clock_device.now() if clock_device is not None else time.time()
        # test cards (kapos.simdata) only where every card reader is a simulated twin: a
        # board with a real reader takes real cards, by hand
        self.testcards = {} if config_mod.real_card_readers(self.board, boards.DRIVERS) else \
            testcards_mod.load(now=max(sim_now, time.time()))
        self.security, self.keystore = make_security(self.config, self.settings)
        self.authorizer = make_authorizer(self.config, self.testcards, self.security,
                                          clock=clock_device.now if clock_device is not None else None)
        _model_journal_fsync(self.board, getattr(self.authorizer, "journal", None))
        self.terminal = Terminal(self.platform, self.settings, self.authorizer, self.security)
        # the technician PIN lock survives a restart (app/techlock.py)
        # (timed by the clock the runtime stamps events with)
        self.tech_lock = TechLockFile(self.config["storage"]["data_dir"], self.terminal.monotonic)
        self.tech_lock.restore(self.terminal.ctx)
        self.terminal.observers.append(self.tech_lock.observer(self.terminal))
        key_status = getattr(self.security, "key_status", None)
        self.diagnostics = Diagnostics(self.terminal, config=self.config, key_status=key_status,
                                       data_dir=self.config["storage"]["data_dir"])
        self.terminal.diagnostics = self.diagnostics

    def load_keys(self, initial_key, ik_id, source="management channel"):
        """Install a new initial key and clear a tamper lock."""
        if self.keystore is None:
            raise ConfigError("keys.mode is not dukpt")
        self.keystore.install(initial_key, ik_id, source=source)
        self.terminal.post(events.KEYS_LOADED)
        return self.keystore.status()

    def close(self):
        self.authorizer.close()
        self._release()

    async def aclose(self):
        """close() from inside the loop: the host link's store-and-forward task is awaited."""
        aclose = getattr(self.authorizer, "aclose", None)
        if aclose is not None:
            await aclose()
        else:
            self.authorizer.close()
        self._release()

    def _release(self):
        self.platform.close()
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            tmp.cleanup()
