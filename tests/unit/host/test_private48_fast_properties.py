"""Hypothesis: field 48's strip()-based reader and value rules equal the per-character
reference (test_private48_fast_checks) on any text, ASCII or not."""

from hypothesis import given
from hypothesis import strategies as st
from test_private48_fast_checks import (TRICKY, outcome, reference_is_digits,
                                        reference_unpack, reference_value_ok)

from kapos.host import private48, sale_messages

items = st.lists(st.tuples(st.sampled_from(sorted(private48.TAGS) + ["ZZ", "a1"]),
                           st.text(TRICKY, max_size=20)), max_size=4)


@given(items, st.text(max_size=3), st.integers(0, 60))
def test_unpack_equals_the_reference(pairs, noise, at):
    text = "".join("%s%03d%s" % (tag, len(value), value) for tag, value in pairs)
    text = text[:at] + noise + text[at:]
    assert outcome(private48.unpack, text) == outcome(reference_unpack, text)


@given(st.sampled_from(sorted(private48.TAGS)), st.text(max_size=30) | st.text(TRICKY, max_size=30))
def test_value_rules_equal_the_reference(tag, value):
    assert bool(private48.TAGS[tag][2](value)) == bool(reference_value_ok(tag, value))


@given(st.text(max_size=12) | st.text("0123456789", max_size=12))
def test_is_digits_equals_the_reference(text):
    assert sale_messages._is_digits(text) == reference_is_digits(text)
