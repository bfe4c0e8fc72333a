"""BIN table: brand ranges and PAN length rules."""

import pytest

from kapos.card import brand_of, pan_length_ok
from kapos.card.brands import BIN_TABLE, PAN_LENGTHS


@pytest.mark.parametrize(
    "pan, brand",
    [
        ("4111111111111111", "visa"),
        ("5555555555554444", "mastercard"),
        ("5105105105105100", "mastercard"),
        ("2221000000000009", "mastercard"),
        ("2720990000000000", "mastercard"),
        ("2220990000000000", "unknown"),  # just below 2221
        ("2721000000000000", "unknown"),  # just above 2720
        ("378282246310005", "amex"),
        ("341111111111111", "amex"),
        ("6011111111111117", "discover"),
        ("6445000000000000", "discover"),
        ("6500000000000000", "discover"),
        ("3528000000000000", "jcb"),
        ("3589000000000000", "jcb"),
        ("3527000000000000", "unknown"),
        ("6200000000000000", "unionpay"),
        ("5018000000000000", "maestro"),
        ("5600000000000000", "maestro"),
        ("5899000000000000", "maestro"),
        ("6304000000000000", "maestro"),
        ("6759000000000000", "maestro"),
        ("36000000000000", "diners"),
        ("9999000000000000", "unknown"),
        ("", "unknown"),
        ("abcd", "unknown"),
    ],
)
def test_brand_of(pan, brand):
    assert brand_of(pan) == brand


def test_private_prefix_wins_over_table():
    assert brand_of("6011111111111117", private_prefixes=("601111",)) == "closed-loop"
    assert brand_of("9990001234567", private_prefixes=("999", "888")) == "closed-loop"
    assert brand_of("9990001234567", private_prefixes="999") == "closed-loop"  # lone str
    assert brand_of("9990001234567", private_prefixes=("",)) == "unknown"  # empty prefix ignored


def test_lengths():
    assert pan_length_ok("amex", 15) and not pan_length_ok("amex", 16)
    assert pan_length_ok("mastercard", 16) and not pan_length_ok("mastercard", 19)
    assert pan_length_ok("visa", 13) and pan_length_ok("visa", 19) and not pan_length_ok("visa", 15)
    assert pan_length_ok("unknown", 12) and not pan_length_ok("unknown", 20)
    assert pan_length_ok("closed-loop", 19)


def test_table_is_well_formed():
    for brand, low, high in BIN_TABLE:
        assert len(low) == len(high) and low <= high and low.isdigit(), (brand, low, high)
        assert brand in PAN_LENGTHS
