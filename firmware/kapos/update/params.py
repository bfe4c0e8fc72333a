"""Terminal parameters from the host: limits, fees, receipt header, merchant and technician
PIN hashes, host address and update channel, as one signed and versioned document.

The document is a TUF target of the update repository (`params/<channel>.json`), so it is
signed by the targets key(s) under the same threshold, expiry and rollback rules as a
release. Its `serial` must be above the one applied; the whole set is merged onto the
configuration and checked by the same validation as the TOML file (app/config.py). Any
error refuses the whole set with the reason, and the terminal keeps the previous one.

    {"kind": "kapos-params", "serial": 7,
     "params": {"limits": {"per_transaction": 30000}, "terminal": {"merchant_name": "Bar 2"},
                "fees": {"credit": {"rate_bp": 120}}, "host": {"address": "10.0.0.2:8583"},
                "security": {"merchant_pin_hash": "pbkdf2-sha256$...",
                             "technician_pin_hash": "pbkdf2-sha256$..."},
                "update": {"channel": "stable"}}}

A PIN hash is checked by the config's own rules (app/merchantpin.py): a malformed one refuses
the whole set. Refusal reasons name the key, never its value.
"""

import json
import os
import time

from kapos.app import config as config_mod
from kapos.errors import ConfigError, UpdateError
from kapos.io.files import atomic_write

KIND = "kapos-params"
# what a host may set: (section, key or None for the whole table)
ALLOWED = {("limits", None), ("fees", None), ("terminal", "merchant_name"),
           ("security", "merchant_pin_hash"), ("security", "technician_pin_hash"),
           ("host", "address"), ("update", "channel")}
NEEDS_RESTART = {("host", "address"), ("update", "channel")}
STORE = "params.json"


def _leaves(params):
    for section, table in params.items():
        if not isinstance(table, dict):
            raise UpdateError("parameter set refused: %s must be a table" % section)
        for key in table:
            if (section, None) not in ALLOWED and (section, key) not in ALLOWED:
                raise UpdateError("parameter set refused: %s.%s cannot be set from the host" % (section, key))
            yield section, key


def check(doc, config, applied_serial=0):
    """The configuration `doc` gives on top of `config`, or UpdateError naming the reason."""
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise UpdateError("parameter set refused: not a kapos parameter document")
    serial = doc.get("serial")
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 1:
        raise UpdateError("parameter set refused: serial must be a whole number >= 1")
    if serial <= applied_serial:
        raise UpdateError("parameter set refused: serial %d is not above the applied %d (replayed)"
                          % (serial, applied_serial))
    params = doc.get("params")
    if not isinstance(params, dict):
        raise UpdateError("parameter set refused: params missing")
    list(_leaves(params))
    terminal_params = {k: v for k, v in params.items() if k != "update"}
    channel = (params.get("update") or {}).get("channel")
    if channel is not None and not (isinstance(channel, str) and channel.isidentifier()):
        raise UpdateError("parameter set refused: update.channel must be a plain name")
    try:
        merged = config_mod._merge(config, terminal_params)  # the TOML file's own merge rules
        config_mod.validate(merged)
        config_mod.settings_from(merged)
    except ConfigError as exc:
        raise UpdateError("parameter set %d refused: %s" % (serial, exc))
    return merged


def needs_restart(doc):
    return any(leaf in NEEDS_RESTART for leaf in _leaves(doc["params"]))


def load_stored(root):
    try:
        with open(os.path.join(root, STORE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def store(root, doc):
    record = dict(doc, applied_at=int(time.time()))
    # 0600: it may carry PIN hashes (short PINs fall to an offline search: docs/updates.md)
    atomic_write(os.path.join(root, STORE), json.dumps(record, indent=1, sort_keys=True).encode(), mode=0o600)


def overrides(root):
    """The applied parameter set as `--set` overrides for the next start (none if absent)."""
    doc = load_stored(root)
    if not doc:
        return []
    out = []

    def walk(prefix, value):
        if isinstance(value, dict):
            for k, v in sorted(value.items()):
                walk(prefix + [k], v)
        else:
            out.append((".".join(prefix), json.dumps(value)))  # JSON scalars are TOML values

    for section, table in doc["params"].items():
        if section != "update":
            walk([section], table)
    return out
