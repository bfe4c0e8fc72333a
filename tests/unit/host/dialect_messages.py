"""Shared by the codec's property, interop and pyiso8583-spec tests: any valid kapos-87
message as a Hypothesis strategy, and our message dict in pyiso8583's shape and back."""

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from kapos.host.spec import DEFAULT_SPEC, FIXED, XN

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def field_value(field):
    """Any value the dialect accepts in `field` (a kapos.host.spec field)."""
    low = field.max_len if field.length_type == FIXED else 0
    if field.binary:
        return st.binary(min_size=low, max_size=field.max_len)
    if field.type == XN:
        return st.tuples(st.sampled_from("CD"),
                         st.text("0123456789", min_size=field.max_len - 1,
                                 max_size=field.max_len - 1)).map("".join)
    return st.text(field.allowed.decode(), min_size=low, max_size=field.max_len)


def _one_mac_field(message):
    """A message with a secondary bitmap MACs in 128, never also in 64."""
    if 64 in message and any(type(k) is int and k > 64 for k in message):
        del message[64]
    return message


MTIS = st.text("0123456789", min_size=3, max_size=3).map(lambda s: "0" + s)
MESSAGES = st.fixed_dictionaries(
    {"mti": MTIS},
    optional={n: field_value(DEFAULT_SPEC.field(n)) for n in DEFAULT_SPEC.numbers},
).map(_one_mac_field)


def to_pyiso(message):
    """Our dict -> pyiso8583's: str keys, 't' for the MTI, binary as upper-case hex."""
    doc = {"t": message["mti"]}
    for key, value in message.items():
        if key != "mti":
            doc[str(key)] = value.hex().upper() if isinstance(value, bytes) else value
    return doc


def from_pyiso(doc):
    """pyiso8583's dict -> ours (binary fields back to bytes)."""
    message = {"mti": doc["t"]}
    for key, value in doc.items():
        if key.isdigit() and key != "1":
            number = int(key)
            message[number] = bytes.fromhex(value) if DEFAULT_SPEC.field(number).binary else value
    return message
