"""Child process of test_host_crash: transactions through HostAuthorizer with the
journal on disk, until it is killed.

    python crash_child.py JOURNAL_DIR PORT SEED run|recover

run:     start (recovering whatever the last kill left), print "ready", then sell,
         refund, void and cancel at random forever.
recover: start, deliver every queued reversal, print "idle", exit 0.
"""

import asyncio
import random
import sys
import time

from kapos import card as cards
from kapos.simdata import cards as testcards
from kapos.errors import HostUnavailable
from kapos.io.host_link import HostAuthorizer
from kapos.io.journal import Journal
from kapos.io.transport import TcpTransport

TC = testcards.load()


def request(ref, kind, amount, card=None, original=None):
    now = time.time()
    return {"ref": ref, "type": kind, "amount": amount, "fee": 0, "currency_code": "978",
            "account": "debit", "card": card, "pin_block": None, "ksn": None, "target": None,
            "original": original, "token_data": None, "time": now,
            "date": time.strftime("%Y%m%d", time.localtime(now)), "terminal_id": "KAPOS001",
            "merchant_id": "KAPOS-MERCHANT1"}


async def main(journal_dir, port, seed, mode):
    journal = Journal(journal_dir)
    auth = HostAuthorizer(TcpTransport("127.0.0.1", port, connect_timeout=1.0), journal,
                          "KAPOS001", "KAPOS-MERCHANT1", timeout=2.0, retry_base=0.02,
                          retry_max=0.2)
    await auth.start()
    print("ready", flush=True)
    if mode == "recover":
        await auth.wait_idle(30)
        print("idle", flush=True)
        await auth.aclose()
        return
    rng = random.Random(seed)
    last_sale = None
    ref = 0
    while True:
        ref += 1
        pick = rng.random()
        card = cards.parse_swipe(TC["visa-debit"].swipe_text())
        amount = rng.randint(1, 5000)
        if pick < 0.15:
            req = request(ref, "refund", amount, card)
        elif pick < 0.25 and last_sale is not None:
            req = request(ref, "void", last_sale["amount"], None, original=last_sale)
            last_sale = None
        else:
            req = request(ref, "sale", amount, card)
        try:
            reply = await auth.authorize(req)
        except HostUnavailable:
            continue
        if req["type"] == "sale" and reply["approved"]:
            if rng.random() < 0.15:
                auth.cancel(ref, "hardware error")  # e.g. the printer failed
            else:
                last_sale = {"ref": ref, "stan": reply["stan"], "rrn": reply["rrn"],
                             "auth_code": reply["auth_code"], "amount": amount,
                             "time": req["time"], "card": card.masked()}


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
