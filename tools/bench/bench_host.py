"""Benchmark: authorizations per second through the reference host on loopback.

The reference host runs as its own process (`python -m kapos_tools.host`, SQLite ledger
with synchronous=FULL); each terminal is its own process with a HostAuthorizer, its own
journal (synchronous=FULL) in a temp dir and one TCP connection - as N real terminals
would be. Every terminal signs on and warms up first; then all of them sell back to back
in ONE shared window (the same start and end for all), and the rate is the sales finished
inside that window divided by its length, so a terminal that started late cannot add a
window of its own. One authorization = STAN commit + journal commit + 0200/0210 round
trip + result commit at the terminal, one ledger commit at the host.

    .venv/bin/python tools/bench/bench_host.py [--seconds 3] [--terminals 1,8]
"""

import argparse
import asyncio
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time

CARDS = """
[[card]]
id = "bench"
pan = "4111111111111111"
expires_in_months = 48
balance = 1000000000000
daily_limit = 1000000000000000
"""


def _terminal(index, port, directory, queue, go, window):
    from kapos import card as cards
    from kapos.simdata import cards as testcards
    from kapos.simdata.keys import TEST_BDK, ik_id_for
    from kapos.security import dukpt
    from kapos.io.host_link import HostAuthorizer
    from kapos.io.journal import Journal
    from kapos.io.keystore import KeyStore
    from kapos.app.secmodule import DukptMac, SecurityModule
    from kapos.io.transport import TcpTransport

    swipe = testcards.load()["visa-debit"].swipe_text()

    async def main():
        journal = Journal(os.path.join(directory, "terminal-%d" % index))
        # as a real terminal: a DUKPT KSN, MAC and enciphered card data on every message
        store = KeyStore(os.path.join(directory, "keys-%d" % index))
        ik_id = ik_id_for("BENCH%03d" % index)
        store.install(dukpt.derive_initial_key(TEST_BDK, ik_id), ik_id)
        auth = HostAuthorizer(TcpTransport("127.0.0.1", port), journal, "BENCH%03d" % index,
                              "KAPOS-MERCHANT1", timeout=10.0, mac=DukptMac(SecurityModule(store)))
        await auth.start()
        latencies = []
        declined = 0
        ref = 0

        def sale_request():
            nonlocal ref
            ref += 1
            now = time.time()
            request = {"ref": ref, "type": "sale", "amount": 100, "fee": 0,
                       "currency_code": "978", "account": "debit",
                       "card": cards.parse_swipe(swipe), "pin_block": None, "ksn": None,
                       "target": None, "original": None, "token_data": None, "time": now,
                       "date": time.strftime("%Y%m%d"), "terminal_id": "BENCH%03d" % index,
                       "merchant_id": "KAPOS-MERCHANT1"}
            return request

        await auth.authorize(sale_request())  # warm-up: connection, first MAC key
        queue.put(("ready", index))
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        start, end = window[0], window[1]  # wall-clock times shared by every terminal
        while time.time() < start:
            await asyncio.sleep(start - time.time())
        while True:
            started = time.time()
            if started >= end:
                break
            reply = await auth.authorize(sale_request())
            finished = time.time()
            if finished > end:  # finished after the window closed: not counted
                break
            latencies.append(finished - started)
            if not reply["approved"]:
                declined += 1
        await auth.aclose()
        return latencies, declined

    queue.put(("done", asyncio.run(main())))


def start_host(directory):
    cards = os.path.join(directory, "cards.toml")
    with open(cards, "w") as f:
        f.write(CARDS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "kapos_tools.host", "--listen", "127.0.0.1:0", "--db",
         os.path.join(directory, "host.db"), "--cards", cards, "--quiet",
         "--auto-enroll"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = proc.stdout.readline().decode()
    if not line.startswith("kapos host listening on"):
        proc.kill()
        raise SystemExit("the host did not start: %r" % line)
    return proc, int(line.split()[4].rsplit(":", 1)[1])


def measure(port, terminals, seconds, directory):
    queue = multiprocessing.Queue()
    go = multiprocessing.Event()
    window = multiprocessing.Array("d", 2)
    procs = [multiprocessing.Process(target=_terminal, args=(i, port, directory, queue, go, window))
             for i in range(terminals)]
    for p in procs:
        p.start()
    for _ in procs:  # every terminal connected and warmed up before the window opens
        kind, _ = queue.get(timeout=120)
        assert kind == "ready", kind
    window[0] = time.time() + 0.2
    window[1] = window[0] + seconds
    go.set()
    results = [queue.get(timeout=seconds + 60)[1] for _ in procs]
    for p in procs:
        p.join()
    latencies = sorted(x for lat, _ in results for x in lat)
    count = len(latencies)
    declined = sum(d for _, d in results)
    return {"terminals": terminals, "count": count, "declined": declined,
            "rate": count / seconds, "p50": latencies[count // 2] * 1000,
            "p99": latencies[min(count - 1, int(count * 0.99))] * 1000}


def main(argv=()):
    """Called with no arguments by tools/bench/run.py (`make bench`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--terminals", default="1,8")
    args = parser.parse_args(list(argv))
    with tempfile.TemporaryDirectory(prefix="kapos-bench-") as directory:
        host, port = start_host(directory)
        try:
            print("bench_host: sales through the reference host on 127.0.0.1:%d, one shared %.1f s window "
                  "per line, %d CPU(s); SQLite synchronous=FULL on both sides" % (port, args.seconds,
                                                                                os.cpu_count() or 1))
            for n in [int(x) for x in args.terminals.split(",")]:
                r = measure(port, n, args.seconds, directory)
                print("  %d terminal(s): %7.1f authorizations/s  (%d finished in the %.1f s window, %d declined; "
                      "latency p50 %.2f ms, p99 %.2f ms)"
                      % (n, r["rate"], r["count"], args.seconds, r["declined"], r["p50"],
                         r["p99"]))
        finally:
            host.terminate()
            host.wait(10)


if __name__ == "__main__":
    main(sys.argv[1:])
