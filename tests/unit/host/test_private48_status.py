"""Field 48 SV (software version) and ST (self-test status): the checks the host applies
before it records what a terminal says of itself, and the ST value the terminal makes."""

import pytest

from kapos.host import messages as m
from kapos.host import private48 as P


def parse(items):
    return P.parse({48: P.pack(items)})


@pytest.mark.parametrize("value", ["0.1.0", "1.2.0rc1", "2026.12.01+pi4", "3_1-2", "9" * 32])
def test_a_version_starting_with_a_digit_of_the_allowed_characters_is_taken(value):
    assert parse([(P.SOFTWARE_VERSION, value)]) == {"SV": value}


@pytest.mark.parametrize("value", ["", "v1.0", "1.0 beta", "1.0\x00", "1.0;rm", "9" * 33, "1.0é"])
def test_a_bad_or_oversized_version_is_refused_naming_the_tag_not_the_value(value):
    with pytest.raises(P.BadPrivateData) as caught:
        parse([(P.SOFTWARE_VERSION, value)])
    assert "SV" in str(caught.value) and (not value or value not in str(caught.value))


@pytest.mark.parametrize("value", ["P", "N", "F:printer", "F:printer,nfc,host_link", "F:" + "a" * 58])
def test_self_test_values_the_spec_allows(value):
    assert parse([(P.SELFTEST, value)]) == {"ST": value}


@pytest.mark.parametrize("value", ["", "p", "OK", "F:", "F:,", "F:printer,", "F:Printer", "F:a b",
                                   "PN", "F:" + "a" * 59])
def test_self_test_values_outside_the_spec_are_refused(value):
    with pytest.raises(P.BadPrivateData):
        parse([(P.SELFTEST, value)])


def test_the_terminal_makes_a_value_the_host_accepts_from_any_list_of_failed_checks():
    assert P.selftest_value([]) == "P"
    assert P.selftest_value(["printer", "NFC reader"]) == "F:printer,nfcreader"
    assert P.selftest_value(["!!!"]) == "F:check"
    many = P.selftest_value(["check_number_%d" % i for i in range(20)])
    assert len(many) <= P.SELFTEST_MAX and many.startswith("F:check_number_0,")
    assert all(name.startswith("check_number_") for name in many[2:].split(","))  # whole names
    for failed in ([], ["x" * 500], ["printer"] * 40, ["Ünïcode", "a,b"]):
        value = P.selftest_value(failed)
        assert parse([(P.SELFTEST, value)]) == {"ST": value}


def test_an_0800_carries_the_report_sorted_and_a_plain_one_none():
    message = m.build_network(m.NETWORK_SIGN_ON, 7, (2026, 12, 1, 12, 0, 0, 0, 0, 0), "KAPOS001",
                              private=P.pack([(P.SELFTEST, "N"), (P.SOFTWARE_VERSION, "0.1.0")]))
    assert message[48] == "ST001NSV0050.1.0"
    assert 48 not in m.build_network(m.NETWORK_ECHO, 8, (2026, 12, 1, 12, 0, 0, 0, 0, 0), "KAPOS001")
