"""Property tests for kapos.host: codec round trip and robustness, framer chunking, and
the serial link under byte corruption."""

from dialect_messages import MESSAGES, SETTINGS
from hypothesis import given
from hypothesis import strategies as st

from kapos.errors import DecodeError
from kapos.host.codec import decode, encode, mac_field
from kapos.host.framing import (ACK_BYTES, NAK_BYTES, Acked, MessageReceived, Retransmit,
                                SendFailed, SerialFramer, SerialLink, TcpFramer)


# ---------------------------------------------------------------- codec

@SETTINGS
@given(MESSAGES)
def test_decode_encode_round_trip(message):
    data = encode(message)
    assert decode(data) == message
    assert encode(decode(data)) == data


@SETTINGS
@given(MESSAGES)
def test_encode_with_a_mac_placeholder_is_the_copy_with_a_zero_mac(message):
    """encode(mac=True) against what client.encode_message did before it: a copy without
    64/128 and eight zero bytes in the MAC field the remaining fields call for."""
    unsigned = dict(message)
    unsigned.pop(64, None)
    unsigned.pop(128, None)
    unsigned[mac_field(unsigned)] = bytes(8)
    assert encode(message, mac=True) == encode(unsigned)


def _decode_only_raises_decode_error(data):
    try:
        message = decode(data)
    except DecodeError as error:
        assert error.field is not None or error.offset is not None
        return
    # whatever decodes is canonical: it encodes back to the very same bytes
    assert encode(message) == data


@SETTINGS
@given(st.binary(max_size=300))
def test_decode_of_arbitrary_bytes_raises_only_decode_error(data):
    _decode_only_raises_decode_error(data)


@SETTINGS
@given(st.text("0123456789", min_size=4, max_size=4), st.binary(max_size=300))
def test_decode_of_bytes_after_a_valid_mti_raises_only_decode_error(mti, rest):
    _decode_only_raises_decode_error(mti.encode() + rest)


MUTATIONS = st.lists(st.tuples(st.sampled_from(["set", "insert", "delete", "truncate"]),
                               st.integers(0, 2000), st.integers(0, 255)),
                     min_size=1, max_size=4)


@SETTINGS
@given(MESSAGES, MUTATIONS)
def test_decode_of_mutated_messages_raises_only_decode_error(message, mutations):
    data = bytearray(encode(message))
    for kind, where, value in mutations:
        if not data:
            break
        i = where % len(data)
        if kind == "set":
            data[i] = value
        elif kind == "insert":
            data.insert(i, value)
        elif kind == "delete":
            del data[i]
        else:
            del data[i:]
    _decode_only_raises_decode_error(bytes(data))


# ---------------------------------------------------------------- framers: chunking

PAYLOADS = st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=8)


def _chunks(data, cuts):
    points = sorted(set(c % (len(data) + 1) for c in cuts))
    out, last = [], 0
    for p in points + [len(data)]:
        out.append(data[last:p])
        last = p
    return out


@SETTINGS
@given(PAYLOADS, st.lists(st.integers(0, 10 ** 6), max_size=20))
def test_tcp_chunking_does_not_matter(payloads, cuts):
    framer = TcpFramer()
    stream = b"".join(framer.frame(p) for p in payloads)
    received = []
    for chunk in _chunks(stream, cuts):
        received.extend(framer.receive(chunk))
    assert received == payloads
    assert framer.pending == 0


CONTROL = st.sampled_from([b"", ACK_BYTES, NAK_BYTES, ACK_BYTES + NAK_BYTES])


@SETTINGS
@given(st.lists(st.tuples(st.binary(min_size=1, max_size=200), CONTROL), min_size=1,
                max_size=6),
       st.lists(st.integers(0, 10 ** 6), max_size=20))
def test_serial_chunking_does_not_matter(frames, cuts):
    """Each frame (plus the ACK/NAK bytes that may follow it) is followed by a quiet line;
    however the bytes are chunked, the same events come out in the same order."""
    def run(split):
        framer = SerialFramer()
        events = []
        for payload, control in frames:
            burst = framer.frame(payload) + control
            for chunk in (_chunks(burst, cuts) if split else [burst]):
                events.extend(framer.feed(chunk))
            events.extend(framer.line_idle())
        return events

    whole = run(False)
    assert whole == run(True)
    assert [e.payload for e in whole if isinstance(e, MessageReceived)] == [
        p for p, _ in frames]


# ---------------------------------------------------------------- serial link corruption

# Payloads that try hard to confuse the receiver: control bytes and whole valid frames
# hidden inside them.
_FRAMER = SerialFramer()
TRICKY_PAYLOADS = st.one_of(
    st.binary(min_size=1, max_size=64),
    st.lists(st.one_of(st.binary(max_size=6),
                       st.binary(min_size=1, max_size=6).map(_FRAMER.frame),
                       st.sampled_from([b"\x02", b"\x03", b"\x06", b"\x15", b"\x00"])),
             min_size=1, max_size=6).map(b"".join).filter(len),
)


def _exchange(draw, payloads, corrupt_control):
    """Terminal -> host over a channel that substitutes at most one byte per frame
    transmission (and, with corrupt_control, may also substitute the ACK/NAK byte).
    Returns [(payload, outcome, deliveries)]."""
    sender, receiver = SerialLink(max_payload=600), SerialLink(max_payload=600)
    results = []
    for payload in payloads:
        wire = sender.send(payload)
        deliveries = []
        outcome = None
        for _ in range(10):
            if draw(st.booleans()):
                i = draw(st.integers(0, len(wire) - 1))
                wire = wire[:i] + bytes([wire[i] ^ draw(st.integers(1, 255))]) + wire[i + 1:]
            back = b""
            for chunk in _chunks(wire, draw(st.lists(st.integers(0, 10 ** 4), max_size=3))):
                for event in receiver.receive(chunk):
                    back += event.write
            for event in receiver.line_idle():  # the sender is done: the line goes quiet
                back += event.write
                if isinstance(event, MessageReceived):
                    deliveries.append(event.payload)
            if back and corrupt_control and draw(st.booleans()):
                back = bytes([back[0] ^ draw(st.integers(1, 255))]) + back[1:]
            events = sender.receive(back) if back else []
            for event in sender.line_idle():  # tell the host about noise; it ignores it
                receiver.receive(event.write)
            decisive = [e for e in events if isinstance(e, (Acked, Retransmit, SendFailed))]
            if not decisive:
                decisive = sender.timeout()  # nothing (usable) came back: ACK timer
            assert len(decisive) == 1
            event = decisive[0]
            if isinstance(event, Acked):
                outcome = "acked"
                break
            if isinstance(event, SendFailed):
                outcome = "failed"
                break
            wire = event.write  # retransmission
        assert outcome is not None
        results.append((payload, outcome, deliveries))
    return results


@SETTINGS
@given(st.lists(TRICKY_PAYLOADS, min_size=1, max_size=4), st.data())
def test_serial_link_with_one_corrupted_byte_per_frame(payloads, data):
    """Every single-byte substitution in a frame is detected: the host delivers exactly
    the payload sent, exactly once if the terminal saw the ACK, never otherwise."""
    for payload, outcome, deliveries in _exchange(data.draw, payloads, False):
        assert all(d == payload for d in deliveries)
        assert len(deliveries) == (1 if outcome == "acked" else 0)


@SETTINGS
@given(st.lists(TRICKY_PAYLOADS, min_size=1, max_size=4), st.data())
def test_serial_link_with_corrupted_acks_never_delivers_a_corrupted_payload(payloads, data):
    """A corrupted ACK/NAK may cause a duplicate (retransmission of a delivered frame) or
    a loss (NAK read as ACK), but a delivered payload is always exactly the one sent."""
    for payload, outcome, deliveries in _exchange(data.draw, payloads, True):
        assert all(d == payload for d in deliveries)


# ---------------------------------------------------------------- exhaustive check

def _trap(prefix, suffix=b"zz"):
    """A payload with a fake frame end inside: if LEN were corrupted to len(prefix),
    ETX and LRC would both match at that point."""
    size = len(prefix)
    head = bytes([size >> 8, size & 0xFF])
    fake_lrc = 0
    for byte in head + prefix + b"\x03":
        fake_lrc ^= byte
    return prefix + b"\x03" + bytes([fake_lrc]) + suffix


def test_every_single_byte_substitution_is_detected():
    """Exhaustive: every position of the frame, every substituted value."""
    framer = SerialFramer()
    payloads = [b"\x01", b"hello", b"\x02\x00\x01x\x03{", framer.frame(b"evil"),
                b"\x06\x15\x02\x00\x02ab\x03", _trap(b"abc"), _trap(b"\x02\x00\x01", b""),
                _trap(b"0200" + bytes(8)), bytes(300)]
    for payload in payloads:
        frame = framer.frame(payload)
        for i in range(len(frame)):
            for flip in range(1, 256):
                corrupted = frame[:i] + bytes([frame[i] ^ flip]) + frame[i + 1:]
                receiver = SerialFramer()
                receiver.feed(corrupted)
                events = receiver.line_idle()
                assert not any(isinstance(e, MessageReceived) for e in events), (payload, i)
        receiver = SerialFramer()
        receiver.feed(frame)
        assert receiver.line_idle() == [MessageReceived(payload)]
