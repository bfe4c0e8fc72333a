"""An in-process bank: the swappable test double behind the Authorizer interface.

It knows the built-in test cards (accounts, balances, PINs), checks funds, declines what
the card file says to decline, and keeps approvals so that a void or a cancel undoes
exactly once. It is what `make run` and the scenario tests authorize against until the
reference host (kapos host) is used instead.
"""

import asyncio

from kapos.host.authorizer import Authorizer, HostUnavailable
from kapos.app.testkeys import TEST_TOKEN_KEY
from kapos.errors import SecurityError
from kapos.security.token import verify_token_block

TEXTS = {
    "00": "Approved", "05": "Do not honor", "12": "Invalid transaction", "14": "Invalid card",
    "51": "Insufficient funds", "55": "Incorrect PIN", "63": "Security violation",
    "94": "Duplicate", "96": "System error",
}


class TestBank(Authorizer):
    __test__ = False

    def __init__(self, testcards, delay=0.0, pin_checker=None):
        self.accounts = {}  # account key -> balance
        self.cards = {}
        for card in testcards.values():
            if card.pan or card.token:
                key = card.account_key()
                self.accounts[key] = card.balance
                self.cards[key] = card
        self.delay = delay
        self.pin_checker = pin_checker  # (request, expected_pin) -> bool, or None: no check
        self.approved = {}  # ref -> (account key, signed amount applied)
        self.cancelled = []
        self.online = True
        self.seq = 0
        self.alerts = []

    def _token_ok(self, test_card, block):
        """Anti-clone: a token pays only with the MAC'd block from its memory."""
        try:
            return verify_token_block(TEST_TOKEN_KEY, test_card.uid, block) >= 0
        except SecurityError:
            return False

    def _reply(self, code, request, balance=None):
        self.seq += 1
        reply = {"approved": code == "00", "code": code, "text": TEXTS.get(code, "Declined"),
                 "stan": "%06d" % (self.seq % 1000000), "rrn": "%012d" % self.seq,
                 "auth_code": "%06d" % ((self.seq * 7919) % 1000000) if code == "00" else None,
                 "balance": balance}
        return reply

    async def authorize(self, request):
        if not self.online:
            raise HostUnavailable("host unreachable")
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.decide(request)

    def decide(self, request):
        kind = request["type"]
        if kind == "void":
            original = request.get("original") or {}
            entry = self.approved.pop(original.get("ref"), None)
            if entry is None:
                return self._reply("12", request)
            key, applied = entry
            self.accounts[key] -= applied
            return self._reply("00", request)
        card = request["card"]
        key = card.pan_for_host() or card.token_id()
        if key not in self.accounts:
            return self._reply("14", request)
        test_card = self.cards[key]
        if test_card.token and not self._token_ok(test_card, request.get("token_data")):
            return self._reply("63", request)
        if test_card.decline:
            return self._reply(test_card.decline, request)
        pin_verified = False
        if request.get("pin_block") is not None and self.pin_checker is not None:
            if not self.pin_checker(request, test_card.pin):
                return self._reply("55", request)
            pin_verified = True
        total = request["amount"] + request.get("fee", 0)
        balance = self.accounts[key]
        if kind == "balance":
            return dict(self._reply("00", request, balance=balance), pin_verified=pin_verified)
        if kind == "refund":
            delta = request["amount"]
        elif kind in ("sale", "cash", "transfer"):
            if total > balance:
                return self._reply("51", request)
            delta = -total
        else:
            return self._reply("12", request)
        self.accounts[key] = balance + delta
        if kind == "transfer":
            target = request.get("target")
            self.accounts[target] = self.accounts.get(target, 0) + request["amount"]
        self.approved[request["ref"]] = (key, delta)
        reply = self._reply("00", request, balance=self.accounts[key] if kind == "cash" else None)
        reply["pin_verified"] = pin_verified
        return reply

    async def alert(self, data):
        """The terminal's anomaly alerts, kept as the host would log them."""
        self.alerts.append(data)

    async def echo(self):
        """Network management echo: answers when the bank is reachable."""
        if not self.online:
            raise HostUnavailable("host unreachable")
        return True

    def cancel(self, ref, reason):
        entry = self.approved.pop(ref, None)
        self.cancelled.append((ref, reason))
        if entry is not None:
            key, applied = entry
            self.accounts[key] -= applied
