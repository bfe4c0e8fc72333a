"""The shipped pyiso8583 spec (kapos_tools.pyiso8583_spec) is the kapos-87 dialect:
every field has the same length type, maximum length and encoding as kapos.host.spec,
and any valid message reads and writes byte for byte the same with either codec."""

import pytest
from hypothesis import given

iso8583 = pytest.importorskip("iso8583")

from dialect_messages import MESSAGES, SETTINGS, from_pyiso, to_pyiso  # noqa: E402
from kapos.errors import LocalProtocolError  # noqa: E402
from kapos.host.codec import decode, encode  # noqa: E402
from kapos.host.spec import DEFAULT_SPEC  # noqa: E402
from kapos_tools.pyiso8583_spec import KAPOS_87  # noqa: E402

def test_the_spec_has_exactly_the_dialect_fields_plus_header_mti_and_bitmaps():
    fields = sorted(int(k) for k in KAPOS_87 if k.isdigit() and k != "1")
    assert fields == list(DEFAULT_SPEC.numbers)
    assert KAPOS_87["h"]["max_len"] == 0  # no header
    assert KAPOS_87["t"] == dict(KAPOS_87["t"], data_enc="ascii", len_type=0, max_len=4)
    for bitmap in ("p", "1"):
        assert (KAPOS_87[bitmap]["data_enc"], KAPOS_87[bitmap]["len_type"],
                KAPOS_87[bitmap]["max_len"]) == ("b", 0, 8)


@pytest.mark.parametrize("number", DEFAULT_SPEC.numbers)
def test_every_field_has_the_same_length_type_max_length_and_encoding(number):
    ours = DEFAULT_SPEC.field(number)
    theirs = KAPOS_87[str(number)]
    assert theirs["len_type"] == ours.length_type  # ASCII prefix digits: 0, 2 or 3
    assert theirs["max_len"] == ours.max_len
    assert theirs["data_enc"] == ("b" if ours.binary else "ascii")
    assert theirs["len_enc"] == "ascii"
    assert theirs.get("len_count", "bytes") == "bytes"
    assert "left_pad" not in theirs and "right_pad" not in theirs


# ---------------------------------------------------------------- round trips

@SETTINGS
@given(MESSAGES)
def test_a_message_encoded_by_kapos_decodes_identically_with_pyiso8583(message):
    data = encode(message)
    doc, _ = iso8583.decode(bytearray(data), KAPOS_87)
    assert from_pyiso(doc) == message
    raw, _ = iso8583.encode(doc, KAPOS_87)
    assert bytes(raw) == data


@SETTINGS
@given(MESSAGES)
def test_a_message_encoded_by_pyiso8583_decodes_identically_with_kapos(message):
    raw, _ = iso8583.encode(to_pyiso(message), KAPOS_87)
    assert decode(bytes(raw)) == message
    assert encode(decode(bytes(raw))) == bytes(raw)


def test_a_length_over_the_dialect_maximum_is_refused_by_both():
    too_long = {"t": "0200", "53": "00" * 17}
    with pytest.raises(iso8583.EncodeError):
        iso8583.encode(too_long, KAPOS_87)
    with pytest.raises(LocalProtocolError):
        encode({"mti": "0200", 53: bytes(17)})
