"""Terminal configuration: TOML file -> validated dict -> core Settings.

Every key and its default is in kapos/data/default-config.toml (also the documentation).
A wrong key or type is a ConfigError naming the key, never a crash later.
"""

import os
import tomllib

from kapos.app.merchantpin import MerchantPinCheck
from kapos.core.settings import Settings
from kapos.errors import ConfigError

DEFAULT_FILE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "default-config.toml")


def _load_toml(path):
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("config file not found: %s" % path)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config file %s is not valid TOML: %s" % (path, exc))


def _merge(base, override, where=""):
    """Overlay `override` onto `base`; keys unknown to the defaults are errors."""
    merged = dict(base)
    for key, value in override.items():
        name = where + key
        if key not in base:
            if where in ("limits.per_type.", "fees."):
                merged[key] = value  # open tables
                continue
            raise ConfigError("unknown config key: %s" % name)
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError("config key %s must be a table" % name)
            merged[key] = _merge(base[key], value, name + ".")
        else:
            expected = type(base[key])
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if number and expected is float:
                value = float(value)
            elif number and expected is int and name.startswith("timeouts."):
                expected = type(value)  # seconds may be fractional; amounts stay whole
            if not isinstance(value, expected) or isinstance(value, bool) != isinstance(base[key], bool):
                raise ConfigError("config key %s must be %s, got %r" % (name, expected.__name__, value))
            merged[key] = value
    return merged


def set_dotted(config, dotted, text):
    """Apply a `section.key=value` override (command line, scenario `config` lines)."""
    parts = dotted.split(".")
    value = text
    try:
        value = tomllib.loads("v = %s" % text)["v"]
    except tomllib.TOMLDecodeError:
        pass  # a bare word is a string
    override = value
    for part in reversed(parts):
        override = {part: override}
    return _merge(config, override)


def load(path=None, overrides=()):
    config = _load_toml(DEFAULT_FILE)
    if path:
        config = _merge(config, _load_toml(path))
    for dotted, text in overrides:
        config = set_dotted(config, dotted, text)
    validate(config)
    return config


def _non_negative_int(config, section, key):
    value = config[section][key]
    if not isinstance(value, int) or value < 0:
        raise ConfigError("config key %s.%s must be a whole number >= 0" % (section, key))


def validate(config):
    t = config["terminal"]
    if len(t["terminal_id"]) != 8:
        raise ConfigError("terminal.terminal_id must be exactly 8 characters")
    if not 1 <= len(t["merchant_id"]) <= 15:
        raise ConfigError("terminal.merchant_id must be 1 to 15 characters")
    if not (len(t["currency_code"]) == 3 and t["currency_code"].isdigit()):
        raise ConfigError("terminal.currency_code must be 3 digits (ISO 4217 numeric)")
    if not 0 <= t["exponent"] <= 3:
        raise ConfigError("terminal.exponent must be 0 to 3")
    if not 1 <= t["card_read_tries"] <= 10:
        raise ConfigError("terminal.card_read_tries must be 1 to 10")
    for key in ("per_transaction", "daily"):
        _non_negative_int(config, "limits", key)
    for key in ("contactless_limit", "cvm_limit"):
        _non_negative_int(config, "emv", key)
    code = config["emv"]["country_code"]
    if not (isinstance(code, str) and len(code) == 3 and code.isdigit()):
        raise ConfigError("emv.country_code must be 3 digits (ISO 3166 numeric)")
    for txn_type, value in config["limits"]["per_type"].items():
        if not isinstance(value, int) or value < 0:
            raise ConfigError("config key limits.per_type.%s must be a whole number >= 0" % txn_type)
    for account, table in config["fees"].items():
        for key in ("fixed", "rate_bp"):
            value = table.get(key, 0)
            if not isinstance(value, int) or value < 0:
                raise ConfigError("config key fees.%s.%s must be a whole number >= 0" % (account, key))
    for key, value in config["timeouts"].items():
        if not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError("config key timeouts.%s must be a positive number" % key)
    h = config["host"]
    if h["mode"] not in HOST_MODES:
        raise ConfigError("host.mode must be reference or iso8583")
    if h["transport"] not in ("tcp", "serial"):
        raise ConfigError("host.transport must be tcp or serial")
    if h.get("secondary_address"):  # a second host process on the same ledger (failover)
        from kapos.io.transport import parse_address

        try:
            secondary = parse_address(h["secondary_address"])
        except Exception:
            raise ConfigError("host.secondary_address must be host:port")
        if h["transport"] != "tcp" or secondary == parse_address(h.get("address", "127.0.0.1:8583")):
            raise ConfigError("host.secondary_address needs host.transport = 'tcp' and an "
                              "address other than host.address")
    if h["mode"] == "iso8583" and h["timeout"] >= config["timeouts"]["host"]:
        raise ConfigError("host.timeout (%s s) must be below timeouts.host (%s s), so the link gives up first"
                          % (h["timeout"], config["timeouts"]["host"]))
    for rule, values in config["monitor"].items():
        for key in ("count", "window"):
            if not isinstance(values.get(key), int) or values[key] < 1:
                raise ConfigError("config key monitor.%s.%s must be a whole number >= 1" % (rule, key))
    tech = config["technician"]["pin"]
    if not (4 <= len(tech) <= 8 and tech.isdigit()):
        raise ConfigError("technician.pin must be 4 to 8 digits")
    merchant_pin_check(config)  # a malformed hash stops start-up here, naming the key
    technician_pin_check(config)
    p = config["pin"]
    if not 4 <= p["min_length"] <= p["max_length"] <= 12:
        raise ConfigError("pin lengths must satisfy 4 <= min_length <= max_length <= 12")


def merchant_pin_check(config):
    """The merchant PIN verifier, or None when refunds and voids are turned off ("")."""
    encoded = config["security"]["merchant_pin_hash"]
    return MerchantPinCheck(encoded) if encoded else None


def technician_pin_check(config):
    """The technician PIN verifier from security.technician_pin_hash, or None ("": the plain
    technician.pin, the sim board's default)."""
    encoded = config["security"]["technician_pin_hash"]
    return MerchantPinCheck(encoded, key="security.technician_pin_hash") if encoded else None


SIMULATED_DRIVERS = "kapos.ports.sim."  # driver classes that read no real card
CARD_READERS = ("magstripe", "nfc", "chip")  # chip: a contact reader (PC/SC) reads real cards too


# reference: the reference host's engine in this process (kapos_tools' `kapos.hosts`
# entry point) over a loopback transport; iso8583: a host over TCP or serial
HOST_MODES = ("reference", "iso8583")


def card_data_in_clear(config, board, drivers):
    """True when this config sends card data in clear on the host link (host.mac = false
    with host.mode = "iso8583": no MAC, track 2 / PAN in fields 35 / 2, docs/protocol.md
    section 13). Allowed only when every card reader of `board` is simulated; otherwise
    a ConfigError, so that a real card is never sent in clear by a silent downgrade.
    `drivers` is the board registry (kapos.boards.DRIVERS)."""
    host = config["host"]
    if host["mode"] != "iso8583" or host["mac"]:
        return False
    real = real_card_readers(board, drivers)
    if real:
        peripheral, name = real[0]
        raise ConfigError("host.mac = false would send card data from the %s reader (%s) in "
                          "clear: it is allowed only on the simulated board; set host.mac = true"
                          % (peripheral, name))
    return True


def plain_technician_pin(config, board, drivers):
    """A warning when a board with a real card reader opens its technician menu with the
    plain technician.pin from the config file (the sim board's way: anyone who reads the
    file, or knows the public default, opens it), or None. Never the PIN itself."""
    if config["security"]["technician_pin_hash"] or not real_card_readers(board, drivers):
        return None
    return ("the technician menu opens with the plain technician.pin of the config file: set "
            "security.technician_pin_hash (merchant_pin_hash's format; kapos release params "
            "--technician-pin; docs/security.md)")


def real_card_readers(board, drivers):
    """[(peripheral, driver name)] of `board`'s card readers that are not simulated twins:
    empty on a simulated board (the only place test cards are loaded and injected)."""
    real = []
    for peripheral in CARD_READERS:
        name = (board.get(peripheral) or {}).get("driver")
        path = drivers.get(peripheral, {}).get(name, "") if name else SIMULATED_DRIVERS
        if not path.startswith(SIMULATED_DRIVERS):
            real.append((peripheral, name))
    return real


def settings_from(config):
    t = config["terminal"]
    return Settings(
        terminal_id=t["terminal_id"], merchant_id=t["merchant_id"],
        merchant_name=t["merchant_name"], currency=t["currency"],
        currency_code=t["currency_code"], exponent=t["exponent"],
        per_transaction=config["limits"]["per_transaction"], daily=config["limits"]["daily"],
        per_type=dict(config["limits"]["per_type"]),
        fees={k: dict(v) for k, v in config["fees"].items()},
        timeouts=dict(config["timeouts"]),
        pin_min=config["pin"]["min_length"], pin_max=config["pin"]["max_length"],
        accept_unknown_brands=t["accept_unknown_brands"], private_bins=t["private_bins"],
        tech_pin=config["technician"]["pin"],
        monitor={rule: dict(values) for rule, values in config["monitor"].items()},
        merchant_pin_check=merchant_pin_check(config), tech_pin_check=technician_pin_check(config),
        card_read_tries=t["card_read_tries"], emv=dict(config["emv"]),
    )
