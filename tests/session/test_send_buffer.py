"""SendBuffer: pieces go out whole and in order over a real socket, however the
socket takes them (a small send buffer makes it take a little at a time)."""

from __future__ import annotations

import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from securex.session.send_buffer import MAX_PIECES_PER_SEND, SendBuffer

WAIT = 10.0


def _drain(reader: socket.socket, wanted: int) -> bytes:
    got = bytearray()
    while len(got) < wanted:
        data = reader.recv(1 << 20)
        assert data, "the writer closed early"
        got += data
    return bytes(got)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=70_000), max_size=2 * MAX_PIECES_PER_SEND))
def test_every_byte_goes_out_once_and_in_order(pieces):
    writer, reader = socket.socketpair()
    with writer, reader:
        writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)   # partial sends, often
        writer.setblocking(False)
        reader.settimeout(WAIT)
        buffer = SendBuffer()
        buffer.extend([memoryview(p) if i % 2 else bytearray(p) for i, p in enumerate(pieces)])
        expected = b"".join(pieces)
        assert len(buffer) == len(expected)
        received = bytearray()
        while buffer:
            sent = buffer.send_some(writer)
            assert sent is not None
            if not sent:             # the socket is full: read some, as the relay would
                received += reader.recv(1 << 20)
        received += _drain(reader, len(expected) - len(received))
        assert bytes(received) == expected
        assert len(buffer) == 0 and buffer.send_some(writer) == 0


def test_a_broken_connection_is_reported_not_raised():
    writer, reader = socket.socketpair()
    with writer:
        reader.close()
        buffer = SendBuffer()
        buffer.extend([b"x" * 100_000])
        writer.setblocking(False)
        outcomes = {buffer.send_some(writer) for _ in range(3)}
    assert None in outcomes
