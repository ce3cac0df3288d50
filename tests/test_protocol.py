import io

import pytest

from bpfvm import protocol


def test_roundtrip_across_arbitrary_chunking():
    messages = [{"ev": "report", "data": {"longrepr": "x\n" * 1000, "nul": "\u0000\u00ff"}},
                {"ev": "done", "seq": 7}]
    stream = b"".join(protocol.encode(m) for m in messages)
    decoder = protocol.Decoder()
    got = []
    for i in range(0, len(stream), 7):
        got += decoder.feed(stream[i:i + 7])
    assert got == messages


def test_blocking_reader_and_eof():
    buf = io.BytesIO(protocol.encode({"op": "run"}))
    assert protocol.read_message(buf.read) == {"op": "run"}
    with pytest.raises(protocol.ChannelClosed):
        protocol.read_message(buf.read)


def test_oversized_message_is_refused():
    with pytest.raises(ValueError, match="exceeds"):
        protocol.Decoder().feed(b"\xff\xff\xff\xff")


def test_what_is_not_json_is_a_protocol_error_with_what_arrived():
    with pytest.raises(protocol.ProtocolError, match=r"not JSON: \{bad"):
        protocol.Decoder().feed(b"\x00\x00\x00\x05{bad}")


@pytest.mark.parametrize("message, said", [
    ([1, 2], "without an event"),
    ({"data": {}}, "without an event"),
    ({"ev": "bogus"}, "unknown event bogus"),
    ({"ev": "done"}, "'done' event without int 'seq'"),
    ({"ev": "report", "data": "x" * 1000}, r"without dict 'data': .*\.\.\. \(1\d\d\d characters\)"),
])
def test_events_are_checked_before_the_host_acts_on_them(message, said):
    with pytest.raises(protocol.ProtocolError, match=said):
        protocol.check_event(message)
    assert protocol.check_event({"ev": "done", "seq": 3}) == {"ev": "done", "seq": 3}
