"""What a receiver does with tampered, replayed, reordered, injected and missing messages:
drop them with a clear notice, never show them, never crash."""

from __future__ import annotations

import pytest

from securex import protocol
from securex.session.runner import ChatMessage, MemberJoined, Notice
from crypto_utils import seal, sender_key
from helpers import RawClient, core_clients, running_server
from securex.protocol import FrameType, InnerKind


class Mallory:
    """A member that seals its own messages by hand, so tests can bend them."""

    def __init__(self, port: int) -> None:
        self.raw = RawClient(port)
        keys, self.session_id, accepted = self.raw.handshake()
        assert accepted.type == FrameType.ACCEPTED
        self.key = sender_key(keys.message_key, self.session_id)

    def sealed(self, seq: int, text: str, kind: InnerKind = InnerKind.TEXT, key: bytes | None = None) -> bytes:
        plaintext = protocol.encode_inner(kind, "Mallory", text)
        return seal(key or self.key, seq, protocol.message_aad(self.session_id, seq), plaintext)

    def send(self, seq: int, sealed: bytes) -> None:
        self.raw.sock.sendall(protocol.encode_message(seq, sealed))


@pytest.fixture
def room():
    """Alice (a real client) and Mallory, who has said hello with message 0."""
    with running_server() as server, core_clients(server.port, "Alice") as (alice,):
        mallory = Mallory(server.port)
        mallory.send(0, mallory.sealed(0, "", InnerKind.HELLO))
        alice.wait_for(MemberJoined, lambda e: e.name == "Mallory")
        yield alice, mallory
        mallory.raw.close()


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


def assert_dropped(alice, notice_pattern: str) -> None:
    """The bad message produced a notice, and only the later good one is shown."""
    notice = alice.wait_for(Notice)
    assert notice_pattern in notice.text
    shown = alice.wait_for(ChatMessage)
    assert shown.text == "after"


@pytest.mark.parametrize("where", ["first ciphertext byte", "last tag byte"])
def test_tampered_message_is_dropped_with_a_notice(room, where):
    alice, mallory = room
    sealed = mallory.sealed(1, "pay Mallory 100")
    mallory.send(1, _flip(sealed, 0 if where == "first ciphertext byte" else len(sealed) - 1))
    mallory.send(2, mallory.sealed(2, "after"))
    assert_dropped(alice, "failed authentication")


def test_message_under_another_key_is_dropped(room):
    alice, mallory = room
    mallory.send(1, mallory.sealed(1, "forged", key=bytes(32)))
    mallory.send(2, mallory.sealed(2, "after"))
    assert_dropped(alice, "failed authentication")


def test_sequence_number_is_bound_to_the_message(room):
    alice, mallory = room
    mallory.send(5, mallory.sealed(1, "moved"))   # sealed as number 1, claimed as 5
    mallory.send(2, mallory.sealed(2, "after"))
    assert_dropped(alice, "failed authentication")


def test_replayed_message_is_dropped(room):
    alice, mallory = room
    first = mallory.sealed(1, "once")
    mallory.send(1, first)
    assert alice.wait_for(ChatMessage).text == "once"
    mallory.send(1, first)
    mallory.send(2, mallory.sealed(2, "after"))
    assert_dropped(alice, "replayed or out-of-order")


def test_reordered_message_is_dropped(room):
    alice, mallory = room
    mallory.send(2, mallory.sealed(2, "second"))
    mallory.send(1, mallory.sealed(1, "first"))
    assert alice.wait_for(ChatMessage).text == "second"
    mallory.send(3, mallory.sealed(3, "after"))
    assert_dropped(alice, "replayed or out-of-order")


def test_withheld_messages_are_reported_as_a_gap(room):
    alice, mallory = room
    mallory.send(3, mallory.sealed(3, "three"))
    gap = alice.wait_for(Notice)
    assert gap.text == "2 messages from Mallory were not received."
    assert alice.wait_for(ChatMessage).text == "three"


def test_one_withheld_message_is_singular(room):
    alice, mallory = room
    mallory.send(2, mallory.sealed(2, "two"))
    assert alice.wait_for(Notice).text == "1 message from Mallory was not received."


def test_message_stamped_with_an_unknown_session_is_dropped():
    """The relay itself could inject frames; a receiver only accepts announced senders."""
    with running_server() as server, core_clients(server.port, "Alice", "Bob") as (alice, bob):
        forged = protocol.relayed_from_message(b"\x99" * 8, (0).to_bytes(8, "big") + bytes(40))
        # Deliver it as a malicious relay would: straight into Alice's connection
        # (she joined first, so she is the first member).
        server.registry._members[0].send(forged)
        notice = alice.wait_for(Notice)
        assert "not in the room" in notice.text
        bob.session.send_text("after")
        assert alice.wait_message("after")


def test_control_characters_are_neutralised(room):
    alice, mallory = room
    mallory.send(1, mallory.sealed(1, "\x1b[2J\x1b[31mred\u202eevil"))
    shown = alice.wait_for(ChatMessage)
    assert "\x1b" not in shown.text and "\u202e" not in shown.text
    assert shown.text == "\ufffd[2J\ufffd[31mred\ufffdevil"
