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
