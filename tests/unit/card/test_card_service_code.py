"""Service code rules (ISO/IEC 7813; summarised in design/references.md "Cards")."""

import pytest

from kapos import txn_types
from kapos.card import ServiceCode
from kapos.errors import CardReadError, CardRejected

TXN_TYPES = tuple(txn_types.names())

ALL = set(TXN_TYPES)
CASH = {t for t in TXN_TYPES if txn_types.row(t)["category"] == "cash"}  # cash out or in
INQUIRY = {t for t in TXN_TYPES if txn_types.row(t)["category"] == "inquiry"}
NO_CASH = ALL - CASH

# digit 1 -> (interchange, chip)
DIGIT1 = [
    ("1", "international", False),
    ("2", "international", True),
    ("5", "national", False),
    ("6", "national", True),
    ("7", "private", False),
    ("9", "test", False),
]

# digit 3 -> (allowed types, PIN with pad, PIN without pad)
DIGIT3 = [
    ("0", ALL, True, True),
    ("1", ALL, False, False),
    ("2", NO_CASH, False, False),
    ("3", CASH | INQUIRY, True, True),
    ("4", CASH, False, False),
    ("5", NO_CASH, True, True),
    ("6", ALL, True, False),
    ("7", NO_CASH, True, False),
]


@pytest.mark.parametrize("d1, interchange, chip", DIGIT1)
def test_digit1(d1, interchange, chip):
    sc = ServiceCode(d1 + "01")
    assert sc.interchange == interchange
    assert sc.chip_present is chip
    flags = {"international": sc.international, "national": sc.national,
             "private": sc.private, "test": sc.test}
    assert [k for k, v in flags.items() if v] == [interchange]


@pytest.mark.parametrize("d2, online", [("0", False), ("2", True), ("4", True)])
def test_digit2_online_only(d2, online):
    assert ServiceCode("1" + d2 + "1").online_only is online


@pytest.mark.parametrize("d3, allowed, pin_pad, pin_no_pad", DIGIT3)
def test_digit3(d3, allowed, pin_pad, pin_no_pad):
    sc = ServiceCode("10" + d3)
    assert set(sc.allowed_types) == allowed
    for t in TXN_TYPES:
        assert sc.allows(t) is (t in allowed)
    assert sc.pin_required() is pin_pad
    assert sc.pin_required(has_pin_pad=True) is pin_pad
    assert sc.pin_required(has_pin_pad=False) is pin_no_pad


@pytest.mark.parametrize("bad", ["", "12", "1011", "1a1", "²01", None])
def test_malformed(bad):
    with pytest.raises(CardReadError, match="service code must be 3 digits"):
        ServiceCode(bad)


@pytest.mark.parametrize("code, pos", [("301", 1), ("811", 1), ("111", 2), ("108", 3), ("109", 3)])
def test_reserved_values_refused(code, pos):
    with pytest.raises(CardRejected, match="position %d" % pos):
        ServiceCode(code)


def test_unknown_txn_type():
    with pytest.raises(CardRejected):
        ServiceCode("101").allows("purchase")


def test_equality_and_repr():
    assert ServiceCode("201") == ServiceCode("201")
    assert ServiceCode("201") != ServiceCode("101")
    assert repr(ServiceCode("201")) == "ServiceCode('201')"


def test_a_new_type_is_ruled_by_its_rows_category(monkeypatch):
    """A type added as a row (no list here to edit) follows its category."""
    monkeypatch.setitem(txn_types.TYPES, "cashback", dict(txn_types.row("cash"), name="cashback", code="09"))
    assert ServiceCode("103").allows("cashback")  # ATM only: cash yes
    assert not ServiceCode("102").allows("cashback")  # goods and services only: no cash
    assert "cashback" in ServiceCode("101").allowed_types


def test_an_unregistered_type_is_a_clear_refusal_not_a_crash():
    with pytest.raises(CardRejected, match="unknown transaction type"):
        ServiceCode("101").allows("no-such-type")
