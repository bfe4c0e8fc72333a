"""Luhn (ISO/IEC 7812-1 Annex B), PAN checks and masking."""

import pytest

from kapos.card import luhn_valid, luhn_check_digit, check_pan, mask_pan, short_mask, bin_of
from kapos.errors import CardReadError

# Widely published processor test PANs (Visa, Mastercard, Amex, Discover).
TEST_PANS = ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"]


@pytest.mark.parametrize("pan", TEST_PANS)
def test_luhn_valid_test_pans(pan):
    assert luhn_valid(pan)
    assert luhn_check_digit(pan[:-1]) == pan[-1]


@pytest.mark.parametrize("bad", ["4111111111111112", "", "1", "4111-1111", "41111111111111١1", None, 4111])
def test_luhn_invalid(bad):
    assert not luhn_valid(bad)


def test_luhn_check_digit_known_example():
    # ISO/IEC 7812-1 style worked example "7992739871" -> check digit 3
    assert luhn_check_digit("7992739871") == "3"
    assert luhn_valid("79927398713")


def test_luhn_check_digit_rejects_non_digits():
    with pytest.raises(ValueError):
        luhn_check_digit("12a4")


def test_check_pan_messages():
    check_pan("4111111111111111")
    with pytest.raises(CardReadError, match="^PAN fails Luhn check$"):
        check_pan("4111111111111112")
    with pytest.raises(CardReadError, match="length must be 12-19"):
        check_pan("41111111117")  # 11 digits
    with pytest.raises(CardReadError, match="length must be 12-19"):
        check_pan("4" * 20)
    with pytest.raises(CardReadError, match="not all digits"):
        check_pan("4111 1111 1111 1111")
    with pytest.raises(CardReadError, match="not all digits"):
        check_pan("411111111111111²")  # str.isdigit() would accept this


def test_masking():
    assert mask_pan("4111111111111111") == "************1111"
    assert mask_pan("378282246310005") == "***********0005"
    assert short_mask("4111111111111111") == "**** 1111"
    assert mask_pan("123") == "***"
    assert short_mask("12") == "****"


def test_bin():
    assert bin_of("5555555555554444") == "555555"
    assert bin_of("5555555555554444", 8) == "55555555"
    with pytest.raises(ValueError):
        bin_of("5555555555554444", 4)
