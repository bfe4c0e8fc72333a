"""The shipped pyiso8583 spec (kapos_tools.pyiso8583_spec) is the kapos-87 dialect:
every field has the same length type, maximum length and encoding as kapos.host.spec,
and any valid message reads and writes byte for byte the same with either codec."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

iso8583 = pytest.importorskip("iso8583")

from kapos.errors import LocalProtocolError  # noqa: E402
from kapos.host.codec import decode, encode  # noqa: E402
from kapos.host.spec import DEFAULT_SPEC, FIXED, XN  # noqa: E402
from kapos_tools.pyiso8583_spec import KAPOS_87  # noqa: E402

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def to_pyiso(message):
    """kapos dict -> pyiso8583 dict: str keys, 't' for the MTI, binary as hex."""
    doc = {"t": message["mti"]}
    for key, value in message.items():
        if key != "mti":
            doc[str(key)] = value.hex().upper() if isinstance(value, bytes) else value
    return doc


def from_pyiso(doc):
    message = {"mti": doc["t"]}
    for key, value in doc.items():
        if key.isdigit() and key != "1":
            number = int(key)
            message[number] = bytes.fromhex(value) if DEFAULT_SPEC.field(number).binary else value
    return message


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

def _value(field):
    low = field.max_len if field.length_type == FIXED else 0
    if field.binary:
        return st.binary(min_size=low, max_size=field.max_len)
    if field.type == XN:
        return st.tuples(st.sampled_from("CD"),
                         st.text("0123456789", min_size=field.max_len - 1,
                                 max_size=field.max_len - 1)).map("".join)
    return st.text(field.allowed.decode(), min_size=low, max_size=field.max_len)


def _one_mac_field(message):
    if 64 in message and any(type(k) is int and k > 64 for k in message):
        del message[64]
    return message


MESSAGES = st.fixed_dictionaries(
    {"mti": st.text("0123456789", min_size=3, max_size=3).map(lambda s: "0" + s)},
    optional={n: _value(DEFAULT_SPEC.field(n)) for n in DEFAULT_SPEC.numbers},
).map(_one_mac_field)


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
