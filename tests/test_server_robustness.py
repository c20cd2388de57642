"""One bad or slow connection is disconnected with a reason; the room carries on."""

from __future__ import annotations

import signal
import socket
import struct

import pytest

from securex import protocol
from securex.session.runner import MemberJoined, MemberLeft, Notice
from helpers import RawClient, cli_client, core_clients, running_server
from securex.protocol import CloseReason, FrameType


def close_reason(frames: list[protocol.Frame]) -> CloseReason | None:
    closes = [f for f in frames if f.type == FrameType.CLOSE]
    return protocol.parse_close(closes[-1])[0] if closes else None


def assert_room_still_chats(alice, bob, text: str = "still fine") -> None:
    alice.session.send_text(text)
    bob.wait_message(text)


@pytest.fixture
def room():
    with running_server(handshake_timeout=1.0, max_queue_bytes=256 * 1024) as server, \
            core_clients(server.port, "Alice", "Bob") as (alice, bob):
        yield server, alice, bob


@pytest.mark.parametrize("junk", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                                  b"\x00\x00\x00\x05\xee1234",        # unknown frame type
                                  b"\x00\x00\x00\x00"],               # zero length
                         ids=["http request", "unknown type", "zero length"])
def test_garbage_is_answered_with_a_protocol_error(room, junk):
    server, alice, bob = room
    raw = RawClient(server.port)
    raw.read_until(FrameType.CHALLENGE)
    raw.sock.sendall(junk)
    assert close_reason(raw.read_until_closed()) == CloseReason.PROTOCOL
    assert_room_still_chats(alice, bob)


def test_oversized_frame_is_refused_before_its_body_arrives(room):
    server, alice, bob = room
    raw = RawClient(server.port)
    raw.read_until(FrameType.CHALLENGE)
    raw.sock.sendall(struct.pack(">I", protocol.MAX_FRAME_BYTES + 1))   # only the length
    frames = raw.read_until_closed()
    assert close_reason(frames) == CloseReason.PROTOCOL
    assert "outside" in protocol.parse_close(frames[-1])[1]
    assert_room_still_chats(alice, bob)


def test_member_sending_garbage_is_dropped_and_others_see_it_leave(room):
    server, alice, bob = room
    raw = RawClient(server.port)
    raw.handshake()
    raw.sock.sendall(b"\xff" * 64)
    assert close_reason(raw.read_until_closed()) == CloseReason.PROTOCOL
    alice.wait_for(MemberLeft)
    assert_room_still_chats(alice, bob)


def test_handshake_that_never_finishes_times_out(room):
    server, alice, bob = room
    raw = RawClient(server.port)
    assert close_reason(raw.read_until_closed()) == CloseReason.HANDSHAKE_TIMEOUT
    assert_room_still_chats(alice, bob)


def test_pending_connections_are_capped_and_take_no_member_place():
    with running_server(max_clients=2, max_pending=2, handshake_timeout=30) as server:
        pending = [RawClient(server.port) for _ in range(2)]
        for raw in pending:
            raw.read_until(FrameType.CHALLENGE)
        assert close_reason(RawClient(server.port).read_until_closed()) == CloseReason.BUSY
        for raw in pending:
            raw.close()
        # Once they hang up, both member places are still free.
        with core_clients(server.port, "Alice", "Bob") as (alice, bob):
            assert_room_still_chats(alice, bob)


def test_duplicate_session_id_is_refused(room):
    server, _, _ = room
    first = RawClient(server.port)
    _, session_id, accepted = first.handshake()
    assert accepted.type == FrameType.ACCEPTED
    second = RawClient(server.port)
    _, _, refused = second.handshake(session_id=session_id)
    assert refused.type == FrameType.CLOSE


def test_member_that_never_reads_is_dropped_and_nobody_waits(room):
    server, alice, bob = room
    sloth = RawClient(server.port)
    sloth.handshake()
    sloth.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    big = "x" * 60_000
    for i in range(100):      # ~6 MB towards a reader with a 256 KiB allowance
        alice.session.send_text(f"{i} {big}")
    alice.wait_for(MemberLeft)
    bob.wait_message(f"99 {big}", timeout=30)
    assert server.registry.member_count == 2


def test_killed_client_leaves_within_seconds(room):
    server, alice, bob = room
    with cli_client(server.port, "Carol") as carol:
        alice.wait_for(MemberJoined, lambda e: e.name == "Carol")
        carol.proc.send_signal(signal.SIGKILL)
        alice.wait_for(MemberLeft, lambda e: e.name == "Carol", timeout=5)
    assert_room_still_chats(alice, bob)


def test_connection_dropped_mid_frame_leaves_the_room_intact(room):
    server, alice, bob = room
    raw = RawClient(server.port)
    raw.handshake()
    raw.sock.sendall(protocol.encode_message(0, bytes(40))[:10])   # half a frame, then gone
    raw.close()
    alice.wait_for(MemberLeft)
    assert_room_still_chats(alice, bob)


@pytest.mark.parametrize("text", [
    "😀" * 16_000,
    "Ελληνικά 中文 العربية עברית हिन्दी 🇫🇷 e\u0301 " * 400,
    "line one\nline two\n\ttabbed",
], ids=["16000 emoji", "mixed scripts", "newlines"])
def test_long_and_unicode_messages_arrive_intact(room, text):
    _, alice, bob = room
    alice.session.send_text(text)
    assert bob.wait_message(text).text == text


def test_message_over_the_limit_is_refused_locally(room):
    _, alice, bob = room
    alice.session.send_text("x" * (protocol.MAX_TEXT_BYTES + 1))
    assert "Message not sent" in alice.wait_for(Notice).text
    assert_room_still_chats(alice, bob)
