"""The log ring buffer: PANs and track data are masked before a line is stored."""

import logging

import pytest

from kapos.io import logbuffer
from kapos.io.logbuffer import LogBuffer, mask_pans, mask_value


@pytest.mark.parametrize("text, expected", [
    ("card 4111111111111111 ok", "card 411111******1111 ok"),
    ("amex 378282246310005", "amex 378282*****0005"),
    ("19 digits 6011000990139424123", "19 digits 601100*********4123"),
    ("grouped 4111 1111 1111 1111.", "grouped 411111******1111."),
    ("dashed 5555-5555-5555-4444", "dashed 555555******4444"),
    ("glued 41111111111111113012 x", "glued 411111**********3012 x"),
    ("t2 ;4111111111111111=30121010000? end", "t2 [track] end"),
    ("t1 %B4111111111111111^TEST/VISA^30121010000000000000? end", "t1 [track] end"),
])
def test_pan_looking_runs_and_tracks_are_masked(text, expected):
    assert mask_pans(text) == expected


@pytest.mark.parametrize("text", [
    "ref 000012 stan 000013 rrn 000000000012",
    "2026-11-25 10:15:00,123 INFO kapos.runtime: sale approved total=1235",
    "card ************1111 masked already",
    "12 digits 123456789012",
])
def test_short_numbers_dates_and_masked_pans_are_left_alone(text):
    assert mask_pans(text) == text


def test_mask_value_walks_json_like_values():
    value = {"a": ["4111111111111111", 5, None], "b": {"c": "x 5555555555554444"}}
    assert mask_value(value) == {"a": ["411111******1111", 5, None], "b": {"c": "x 555555******4444"}}


def test_buffer_keeps_the_newest_lines_masked_with_sequence_numbers():
    buffer = LogBuffer(capacity=3, fmt="%(levelname)s %(message)s")
    logger = logging.getLogger("kapos.test_logbuffer")
    logger.addHandler(buffer)
    logger.setLevel(logging.INFO)
    try:
        for i in range(5):
            logger.info("line %d card 4111111111111111", i)
        lines, seq = buffer.lines()
        assert lines == ["INFO line %d card 411111******1111" % i for i in (2, 3, 4)]
        assert seq == 5
        assert buffer.lines(n=1)[0] == ["INFO line 4 card 411111******1111"]
        assert buffer.lines(since=4)[0] == ["INFO line 4 card 411111******1111"]
        assert buffer.lines(since=5)[0] == []
        try:
            raise ValueError("bad 4111111111111111")
        except ValueError:
            logger.exception("failed")
        lines, _ = buffer.lines()
        assert lines[-1] == "ValueError: bad 411111******1111", "a traceback is stored line by line, masked"
        buffer.clear()
        assert buffer.lines() == ([], buffer.lines()[1])
    finally:
        logger.removeHandler(buffer)
        logger.setLevel(logging.NOTSET)


def test_install_is_idempotent_and_uninstall_removes_the_handler():
    name = "kapos.test_install"
    try:
        first = logbuffer.install(name, capacity=10)
        assert logbuffer.install(name) is first and logbuffer.installed(name) is first
        assert first in logging.getLogger(name).handlers
    finally:
        removed = logbuffer.uninstall(name)
    assert removed is first and first not in logging.getLogger(name).handlers
    assert logbuffer.installed(name) is None
