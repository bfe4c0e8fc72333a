"""The transaction-type rows (kapos.txn_types), the sans-I/O host client
(kapos.host.client), the Authorizer interface (kapos.host.authorizer) and field 48
(kapos.host.private48): run by pytest on CPython and by the MicroPython gate inside
MicroPython, the same results on both."""

import pytest

from kapos import txn_types
from kapos.errors import DecodeError, LocalProtocolError
from kapos.host import authorizer, client, private48
from kapos.host import messages as m

WHEN = (2026, 11, 25, 10, 0, 0, 2, 329, 0)
IDS = {"terminal_id": "KAPOS001", "merchant_id": "KAPOS-MERCHANT1", "currency_code": "978"}


def test_every_shipped_row_has_a_known_posting_rule_and_a_unique_code():
    codes = [txn_types.row(name)["code"] for name in txn_types.names()]
    assert len(codes) == len(set(codes))
    for name in txn_types.names():
        assert txn_types.row(name)["posting"] in txn_types.POSTINGS
        assert txn_types.by_code(txn_types.row(name)["code"]) == name
    assert txn_types.of_posting("hold") == ("preauth",)
    assert set(txn_types.of_posting("complete", "release")) == {"completion", "release"}


def test_register_refuses_a_taken_code_a_bad_posting_and_a_long_heading():
    with pytest.raises(ValueError):
        txn_types.register("dup", code="00")
    with pytest.raises(ValueError):
        txn_types.register("odd", code="97", posting="teleport")
    with pytest.raises(ValueError):
        txn_types.register("long", code="97", receipt="A HEADING OVER SIXTEEN")
    assert txn_types.get("dup") is None and txn_types.get("odd") is None


def test_a_registered_row_is_read_by_the_client_and_unregistered_again():
    txn_types.register("gift", code="96", totals="debit", posting="debit")
    try:
        assert txn_types.by_code("96") == "gift"
        totals = dict.fromkeys(m.TOTALS_FIELDS, 0)
        client.add_to_totals(totals, "gift", 700)
        assert totals["debits_count"] == 1 and totals["debits_amount"] == 700
    finally:
        txn_types.unregister("gift")
    assert txn_types.by_code("96") is None


def test_amounts_of_a_completion_a_release_and_a_void():
    assert client.amounts({"type": "completion", "amount": 6500}) == (6500, 0, 6500)
    assert client.amounts({"type": "release", "amount": 0}) == (0, 0, 0)
    assert client.amounts({"type": "void", "amount": 900}, {"total": 925}) == (900, 0, 925)


def test_a_completion_names_its_hold_and_a_release_carries_no_amount():
    original = {"rrn": "000000000007", "stan": "000003", "transmission": "1125100000"}
    completion = client.build_request({"type": "completion", "amount": 6500,
                                       "original": original}, 4, WHEN, WHEN, 1, IDS)
    assert completion[3][:2] == "91" and completion[4] == "%012d" % 6500
    assert completion[37] == "000000000007" and 2 not in completion
    release = client.build_request({"type": "release", "amount": 0, "original": original},
                                   5, WHEN, WHEN, 1, IDS)
    assert release[3][:2] == "92" and 4 not in release
    with pytest.raises(LocalProtocolError):
        client.build_request({"type": "completion", "amount": 100, "original": {}},
                             6, WHEN, WHEN, 1, IDS)


def test_private48_round_trip_and_refusals():
    text = private48.pack([(private48.BATCH, "000001"), (private48.PIN_VERIFIED, "1")])
    assert private48.unpack(text)[private48.BATCH] == "000001"
    with pytest.raises(LocalProtocolError):
        private48.pack([("toolong", "x")])
    with pytest.raises(DecodeError):
        private48.unpack("B")


def test_the_authorizer_interface_answers_safely_where_a_link_has_nothing():
    """What the runtime and the technician menu call on any authorizer: the base class
    answers 'nothing pending, nothing to show, no settlement' instead of failing."""
    plain = authorizer.Authorizer()
    assert plain.pending() == 0
    assert plain.describe() == [] and plain.journal_summary() == []
    assert plain.cancel("1", "timeout") is None
    assert issubclass(authorizer.HostUnavailable, Exception)
