"""A client written from docs/protocol.md reports its software version and self-test status
in field 48 of its 0800 (tags SV and ST, section 3): the reference host keeps the last
good report for the dashboard and answers a bad or oversized one 30, MACed, recording
nothing; it keeps serving the same connection afterwards.

The client is test_protocol_foreign_client.ForeignTerminal (pyiso8583 + pycryptodome, no
kapos message code); the host runs as its own process.
"""

import subprocess
import sys

from test_protocol_foreign_client import ForeignTerminal, host  # noqa: F401  (the fixture)

from kapos_tools.host import db as ledger_db


def item(tag, value):
    """One field 48 item as section 3 spells it: TAG, 3 digits of length, VALUE."""
    return "%s%03d%s" % (tag, len(value), value)


def network(client, code, private, bad_mac=False):
    doc = {"t": "0800", "7": client.now()[0], "11": client.next_stan(), "41": "FOREIGN1",
           "70": code, "48": private}
    return client.exchange(doc, bad_mac)


def reported(db_path):
    db = ledger_db.connect(db_path)
    try:
        row = db.execute("SELECT version, selftest FROM terminal_status WHERE terminal_id = ?",
                         ("FOREIGN1",)).fetchone()
        return tuple(row) if row is not None else None
    finally:
        db.close()


BAD_REPORTS = [
    item("SV", "1" * 33),  # over 32 characters
    item("SV", "1.0 beta"),  # a space
    item("SV", "v1.0"),  # does not start with a digit
    item("SV", ""),  # empty
    item("ST", "OK"),  # not P, N or F:...
    item("ST", "F:"),  # a failure naming no check
    item("ST", "F:Printer"),  # upper case
    item("ST", "F:" + ",".join(["printer"] * 8)),  # over 60 characters
    item("SV", "1.0.0") + item("ZZ", "1"),  # an unknown tag beside a good one
    "SV010" + "1.0",  # the length runs past the field
]


def test_a_client_built_from_the_spec_reports_its_version_and_self_test_in_the_0800(host):  # noqa: F811
    port, db_path = host
    client = ForeignTerminal(port)
    try:
        sign_on = network(client, "001", item("ST", "N") + item("SV", "3.2.1+pi4"))
        assert sign_on["39"] == "00" and "48" not in sign_on  # the report is not echoed
        assert reported(db_path) == ("3.2.1+pi4", "N")
        # the start-up self-test found faults: an echo (301) carries the result
        assert network(client, "301", item("ST", "F:printer,nfc"))["39"] == "00"
        assert reported(db_path) == ("3.2.1+pi4", "F:printer,nfc")  # SV left out: kept
        for private in BAD_REPORTS:
            reply = network(client, "301", private)
            assert reply["39"] == "30", private  # format error, MACed (exchange checked it)
            assert reported(db_path) == ("3.2.1+pi4", "F:printer,nfc"), private
        # a report whose MAC does not verify (not from the holder of the keys): 63, not kept
        assert network(client, "301", item("ST", "P"), bad_mac=True)["39"] == "63"
        assert reported(db_path) == ("3.2.1+pi4", "F:printer,nfc")
        # the same connection goes on: a good report and a sale are answered
        assert network(client, "301", item("ST", "P") + item("SV", "3.2.2"))["39"] == "00"
        assert reported(db_path) == ("3.2.2", "P")
        _, approved = client.sale(500)
        assert approved["39"] == "00"
    finally:
        client.close()
    # the operator sees the last report in `kapos host terminals` too
    listed = subprocess.run([sys.executable, "-m", "kapos_tools.host", "terminals", "--db", str(db_path)],
                            capture_output=True, text=True, timeout=30)
    line = [row for row in listed.stdout.splitlines() if row.startswith("FOREIGN1")]
    assert listed.returncode == 0 and line, listed.stdout + listed.stderr
    assert "version 3.2.2" in line[0] and "self-test P" in line[0]


def test_versions_the_spec_allows_are_taken(host):  # noqa: F811
    port, db_path = host
    client = ForeignTerminal(port)
    try:
        for value in ("0.1.0", "2026.12.1", "1.2.0rc1", "1_2-3+a.b", "9" * 32):
            assert network(client, "001", item("SV", value))["39"] == "00"
            assert reported(db_path)[0] == value
    finally:
        client.close()
