"""The built-in test cards (kapos/data/testcards.toml): what `make run` hot keys and
scenario `swipe <id>` / `tap <id>` present, and what the test bank knows."""

import os
import tomllib

from kapos import card as cards
from kapos.errors import ConfigError

DEFAULT_FILE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "testcards.toml")


class TestCard:
    __test__ = False  # not a pytest class

    def __init__(self, entry):
        self.id = entry["id"]
        self.hotkey = entry.get("hotkey")
        self.present = entry.get("present", "swipe")
        self.pan = entry.get("pan")
        self.name = entry.get("name", "")
        self.expiry = entry.get("expiry")
        self.service_code = entry.get("service_code", "101")
        self.pin = entry.get("pin")
        self.balance = int(entry.get("balance", 0))
        self.decline = entry.get("decline")
        self.uid = bytes.fromhex(entry["uid"]) if entry.get("uid") else None
        self.token = bool(entry.get("token", False))
        self.raw = entry.get("raw")

    def swipe_text(self):
        """What a magstripe reader sends for this card: track 1 and track 2 with LRC."""
        if self.raw is not None:
            return self.raw
        t1 = cards.build_track1(self.pan, self.name or "TEST/CARD", self.expiry, self.service_code, "000")
        t2 = cards.build_track2(self.pan, self.expiry, self.service_code, "000")
        return t1 + t2

    def track2_equivalent(self):
        return "%s=%s%s000" % (self.pan, self.expiry, self.service_code)

    def account_key(self):
        """How the bank finds the account: the PAN, or the token UID."""
        return self.uid.hex().upper() if self.token else self.pan


def load(path=DEFAULT_FILE):
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError("test cards file %s: %s" % (path, exc))
    found = {}
    for entry in data.get("card", []):
        if "id" not in entry:
            raise ConfigError("test cards file %s: a card has no id" % path)
        found[entry["id"]] = TestCard(entry)
    return found
