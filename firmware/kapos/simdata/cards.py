"""The built-in test cards (kapos/simdata/testcards.toml): what `make run` hot keys and
scenario `swipe <id>` / `tap <id>` present, and what the reference host loads by default."""

import os
import time
import tomllib

from kapos import card as cards
from kapos.errors import ConfigError
from kapos.hal import Tap

DEFAULT_FILE = os.path.join(os.path.dirname(__file__), "testcards.toml")


def expiry_months_ahead(months, now=None):
    """'YYMM' of the month `months` after (or before, if negative) the month of `now`
    (epoch seconds, default the wall clock)."""
    t = time.gmtime(time.time() if now is None else now)
    index = t.tm_year * 12 + (t.tm_mon - 1) + int(months)
    return "%02d%02d" % ((index // 12) % 100, index % 12 + 1)


def entry_expiry(entry, now=None):
    """A card entry's expiry: fixed `expiry`, or `expires_in_months` from `now`."""
    if entry.get("expires_in_months") is not None:
        try:
            return expiry_months_ahead(int(entry["expires_in_months"]), now)
        except (TypeError, ValueError):
            raise ConfigError("test card %s: expires_in_months must be a whole number" % entry.get("id"))
    return entry.get("expiry")


class TestCard:
    __test__ = False  # not a pytest class

    def __init__(self, entry, now=None):
        self.id = entry["id"]
        self.hotkey = entry.get("hotkey")
        self.present = entry.get("present", "swipe")
        self.pan = entry.get("pan")
        self.name = entry.get("name", "")
        self.expiry = entry_expiry(entry, now)
        self.service_code = entry.get("service_code", "101")
        self.pin = entry.get("pin")
        self.balance = int(entry.get("balance", 0))
        self.decline = entry.get("decline")
        self.uid = bytes.fromhex(entry["uid"]) if entry.get("uid") else None
        self.token = bool(entry.get("token", False))
        self.token_counter = int(entry.get("token_counter", 1))
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

    def tap(self):
        """The Tap an NFC reader produces for this card: an EMV card's track 2 equivalent,
        or a token's UID and the anti-clone block from its memory."""
        if self.uid is None:
            raise ConfigError("test card %s cannot be tapped (no uid)" % self.id)
        if self.token:
            return Tap(self.uid, token=self.token_block())
        return Tap(self.uid, track2=self.track2_equivalent())

    def token_block(self, key=None):
        """The anti-clone block this token carries in its memory (issued under the test key)."""
        from kapos.simdata.keys import TEST_TOKEN_KEY
        from kapos.security.token import make_token_block

        return make_token_block(key or TEST_TOKEN_KEY, self.uid, self.token_counter)

    def account_key(self):
        """How the bank finds the account: the PAN, or the token UID."""
        return self.uid.hex().upper() if self.token else self.pan


def load(path=DEFAULT_FILE, now=None):
    """The cards of `path`; relative expiries count from `now` (the terminal's clock)."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError("test cards file %s: %s" % (path, exc))
    found = {}
    for entry in data.get("card", []):
        if "id" not in entry:
            raise ConfigError("test cards file %s: a card has no id" % path)
        found[entry["id"]] = TestCard(entry, now)
    return found
