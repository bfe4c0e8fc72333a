"""kapos.host.framing: TCP length framing and the STX/LEN/ETX/LRC serial link."""

import pytest

from kapos.errors import LocalProtocolError, RemoteProtocolError
from kapos.host.framing import (ACK_BYTES, NAK_BYTES, AckReceived, Acked, BytesSkipped,
                                FrameError, MessageReceived, NakReceived, Retransmit,
                                SendFailed, SerialFramer, SerialLink, TcpFramer, lrc)


# ---------------------------------------------------------------- TCP

def test_tcp_frame_layout():
    assert TcpFramer().frame(b"abc") == b"\x00\x03abc"
    assert TcpFramer().frame(b"x" * 300)[:2] == b"\x01\x2c"


def test_tcp_partial_and_back_to_back_messages():
    framer = TcpFramer()
    stream = framer.frame(b"first") + framer.frame(b"second")
    framer.feed(stream[:1])
    assert framer.next_message() is None
    framer.feed(stream[1:9])
    assert framer.next_message() == b"first"
    assert framer.next_message() is None
    assert framer.pending == 2
    framer.feed(stream[9:])
    assert framer.next_message() == b"second"
    assert framer.next_message() is None and framer.pending == 0


def test_tcp_receive_returns_all_complete_messages():
    framer = TcpFramer()
    assert framer.receive(framer.frame(b"a") + framer.frame(b"bc") + b"\x00") == [b"a", b"bc"]
    assert framer.pending == 1


@pytest.mark.parametrize("header", [b"\x00\x00", b"\x10\x01", b"\xff\xff"])
def test_tcp_bad_length_breaks_the_framer(header):
    framer = TcpFramer()  # max 4096
    framer.feed(header + b"payload")
    with pytest.raises(RemoteProtocolError):
        framer.next_message()
    with pytest.raises(RemoteProtocolError):  # the connection must be dropped
        framer.feed(b"\x00\x01x")
    with pytest.raises(RemoteProtocolError):
        framer.next_message()


def test_tcp_configured_maximum():
    framer = TcpFramer(max_payload=100)
    assert framer.receive(b"\x00\x64" + b"x" * 100) == [b"x" * 100]
    with pytest.raises(RemoteProtocolError):
        framer.receive(b"\x00\x65" + b"x" * 101)


@pytest.mark.parametrize("payload", [b"", b"x" * 4097, "text"])
def test_tcp_refuses_to_frame_invalid_payloads(payload):
    with pytest.raises(LocalProtocolError):
        TcpFramer().frame(payload)


# ---------------------------------------------------------------- serial framer

def test_serial_frame_layout():
    # STX, LEN 00 01, payload 01, ETX, LRC = 00 ^ 01 ^ 01 ^ 03 = 03
    assert SerialFramer().frame(b"\x01") == bytes.fromhex("020001010303")
    data = SerialFramer().frame(b"hello")
    assert data[0] == 0x02 and data[1:3] == b"\x00\x05" and data[3:8] == b"hello"
    assert data[8] == 0x03 and data[9] == lrc(data[1:9])


def test_serial_good_frame_is_delivered_when_the_line_goes_quiet():
    framer = SerialFramer()
    data = framer.frame(b"hello")
    assert framer.feed(data[:4]) == [] and framer.feed(data[4:]) == []
    events = framer.line_idle()
    assert events == [MessageReceived(b"hello")]
    assert events[0].write == ACK_BYTES
    assert framer.line_idle() == []


def _bad(data, reason, max_payload=4096):
    framer = SerialFramer(max_payload)
    framer.feed(data)
    events = framer.line_idle()
    assert len(events) == 1 and isinstance(events[0], FrameError), events
    assert events[0].reason == reason and events[0].write == NAK_BYTES
    assert framer.state == "idle"
    return events[0]


def test_serial_bad_frames_are_nakked():
    good = SerialFramer().frame(b"hello")
    _bad(good[:-1] + bytes([good[-1] ^ 0x01]), "bad LRC")
    _bad(good[:-2] + b"\x04" + good[-1:], "no ETX")
    _bad(b"\x02\x00\x00" + good, "bad length 0")
    _bad(SerialFramer(5000).frame(b"x" * 4097), "bad length 4097")
    _bad(good[:6], "incomplete frame")
    _bad(good + b"\x02", "bytes after the frame")
    assert _bad(b"noise", "stray bytes").skipped == 5


def test_serial_ack_and_nak_after_a_frame_are_control_bytes():
    framer = SerialFramer()
    assert framer.feed(framer.frame(b"hi") + ACK_BYTES + NAK_BYTES) == [AckReceived(),
                                                                        NakReceived()]
    assert framer.line_idle() == [MessageReceived(b"hi")]


def test_serial_frame_hidden_in_a_bad_frame_is_never_delivered():
    inner = SerialFramer().frame(b"evil")
    outer = SerialFramer().frame(b"ab" + inner + b"cd")
    # corrupt the length so the outer frame ends before the hidden one
    corrupted = outer[:2] + bytes([3]) + outer[3:]
    framer = SerialFramer()
    framer.feed(corrupted)
    assert [type(e) for e in framer.line_idle()] == [FrameError]
    # and a stray byte instead of STX does not make the receiver parse the payload
    framer.feed(b"\x00" + outer[1:])
    assert [type(e) for e in framer.line_idle()] == [FrameError]


def test_serial_frames_separated_by_quiet_lines():
    framer = SerialFramer()
    received = []
    for payload in (b"one", b"two", b"\x02\x03\x06\x15"):
        framer.feed(framer.frame(payload))
        received.extend(e.payload for e in framer.line_idle())
    assert received == [b"one", b"two", b"\x02\x03\x06\x15"]


# ---------------------------------------------------------------- serial link

def test_link_send_ack():
    link = SerialLink()
    data = link.send(b"0200...")
    assert data == SerialFramer().frame(b"0200...")
    assert link.awaiting_ack
    with pytest.raises(LocalProtocolError):
        link.send(b"another")
    assert link.receive(ACK_BYTES) == [Acked()]
    assert not link.awaiting_ack
    assert link.timeout() == []


def test_link_retransmits_three_times_then_fails():
    link = SerialLink()
    data = link.send(b"payload")
    events = [link.receive(NAK_BYTES), link.timeout(), link.receive(NAK_BYTES)]
    assert events == [[Retransmit(data)]] * 3
    assert events[0][0].write == data
    failed = link.timeout()
    assert len(failed) == 1 and isinstance(failed[0], SendFailed)
    assert not link.awaiting_ack
    link.send(b"next")  # the link is usable again


def test_link_configured_retries():
    link = SerialLink(retries=0)
    link.send(b"x")
    assert isinstance(link.timeout()[0], SendFailed)


def test_link_unexpected_control_bytes_are_skipped():
    link = SerialLink()
    assert link.receive(ACK_BYTES + NAK_BYTES) == [BytesSkipped(1), BytesSkipped(1)]


def test_link_receives_a_message_and_acks_it():
    link = SerialLink()
    assert link.receive(SerialFramer().frame(b"0210")) == []
    assert link.receiving
    events = link.line_idle()
    assert events == [MessageReceived(b"0210")] and events[0].write == ACK_BYTES
    assert not link.receiving


def test_two_links_in_memory():
    terminal, host = SerialLink(), SerialLink()
    wire = terminal.send(b"request")
    assert host.receive(wire) == []
    (got,) = host.line_idle()
    assert got.payload == b"request"
    assert terminal.receive(got.write) == [Acked()]
    wire = host.send(b"response")
    terminal.receive(wire)
    (got,) = terminal.line_idle()
    assert got.payload == b"response"
    assert host.receive(got.write) == [Acked()]


def test_event_reprs_never_show_payloads():
    assert "secret" not in repr(MessageReceived(b"secret"))
    assert "secret" not in repr(Retransmit(b"secret"))
    assert repr(FrameError("bad LRC", 3)) == "FrameError(reason='bad LRC', skipped=3)"
    assert MessageReceived(b"a") != MessageReceived(b"b")
