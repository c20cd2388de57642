"""Property-based fuzzing of everything that reads untrusted bytes.

* The frame decoder, fed random, mutated, truncated, oversized and arbitrarily
  chunked streams: it only ever raises ProtocolError, and a valid stream comes out
  frame for frame however it is cut into reads.
* The payload parsers: ProtocolError or a value, nothing else.
* ``open_sealed``: random, bit-flipped, truncated, extended, re-keyed,
  re-numbered and spliced messages are all refused with DecryptionError.
* A real ChatSession behind a real server, fed by a member who mutates, replays and
  reorders its own sealed messages, and by a relay that injects arbitrary frames:
  every bad message gives a Notice, never a ChatMessage, and the room keeps working.

Each property is a plain ``check_*`` function plus its strategies, listed in
PURE_PROPERTIES and SESSION_PROPERTIES, so ``bench/fuzz_long.py`` runs the very same
properties with far more examples. Example counts: the "securex-ci" profile by
default; set SECUREX_FUZZ_EXAMPLES=N for the "securex-long" profile.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from securex import protocol
from securex.session.runner import ChatMessage, Closed, ConnectionLost, MemberJoined, Notice, display_safe
from crypto_utils import MAX_COUNTER, TAG_BYTES, open_sealed, seal, sender_key
from securex.errors import DecryptionError, ProtocolError
from helpers import CoreClient, RawClient, running_server
from securex.protocol import FrameType, InnerKind

EXAMPLES_ENV = "SECUREX_FUZZ_EXAMPLES"
_LONG_EXAMPLES = int(os.environ.get(EXAMPLES_ENV) or 0)

settings.register_profile("securex-ci", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("securex-long", parent=settings.get_profile("securex-ci"),
                          max_examples=max(_LONG_EXAMPLES, 1), database=None)
PROFILE = settings.get_profile("securex-long" if _LONG_EXAMPLES else "securex-ci")
# Socket properties cost milliseconds per example: fewer of them.
SESSION_PROFILE = settings(PROFILE, max_examples=max(30, _LONG_EXAMPLES // 50))


class ForgeryAccepted(AssertionError):
    """A message that was not sealed as sent was accepted: the worst possible failure."""


# -- strategies ---------------------------------------------------------------

frame_types = st.sampled_from(list(FrameType))
frame_lists = st.lists(st.tuples(frame_types, st.binary(max_size=200)), max_size=10)
cut_points = st.lists(st.integers(min_value=0, max_value=2**16), max_size=12)
decoder_limits = st.sampled_from([1, 2, 5, 64, 1024, protocol.MAX_FRAME_BYTES])
keys = st.binary(min_size=32, max_size=32)
counters = st.integers(min_value=0, max_value=MAX_COUNTER)
any_counters = st.integers(min_value=-(2**70), max_value=2**70)
texts = st.text(max_size=120)
# Frame-shaped garbage: small lengths that rarely match the body, any type byte.
frameish = st.builds(lambda length, type_byte, body: struct.pack(">IB", length, type_byte) + body,
                     st.integers(0, 300), st.integers(0, 255), st.binary(max_size=300))
random_streams = st.one_of(st.binary(max_size=400), st.lists(frameish, max_size=5).map(b"".join))


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` split at the given points (taken modulo its length): TCP reads."""
    edges = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    return [data[a:b] for a, b in pairwise(edges)]


def encoded(frames: list[tuple[FrameType, bytes]]) -> bytes:
    return b"".join(protocol.encode_frame(t, p) for t, p in frames)


def decode_bytewise(stream: bytes, limit: int) -> list[protocol.Frame]:
    """Reference: one byte per read, every frame up to the first error."""
    decoder, frames = protocol.FrameDecoder(limit), []
    for i in range(len(stream)):
        try:
            frames += decoder.feed(stream[i:i + 1])
        except ProtocolError:
            break
    return frames


# -- frame decoder ------------------------------------------------------------

def feed_until_error(stream: bytes, cuts: list[int], limit: int) -> list[protocol.Frame]:
    """Feed ``stream`` in chunks; only ProtocolError may stop it. Checks on the way
    that every byte is accounted for and no frame breaks the limit."""
    decoder, frames, fed = protocol.FrameDecoder(limit), [], 0
    for chunk in chunked(stream, cuts):
        try:
            got = decoder.feed(chunk)
        except ProtocolError:
            return frames
        fed += len(chunk)
        frames += got
        for frame in got:
            assert isinstance(frame.type, FrameType) and 1 <= 1 + len(frame.payload) <= limit
        assert sum(protocol.HEADER.size + len(f.payload) for f in frames) + decoder.pending_bytes == fed
    return frames


def check_decoder_survives_random_bytes(stream: bytes, cuts: list[int], limit: int) -> None:
    frames = feed_until_error(stream, cuts, limit)
    assert frames == decode_bytewise(stream, limit)[:len(frames)]


def check_decoder_survives_mutated_streams(frames: list[tuple[FrameType, bytes]],
                                           edits: list[tuple[int, int]], cuts: list[int]) -> None:
    stream = bytearray(encoded(frames))
    for position, value in edits:
        if stream:
            stream[position % len(stream)] = value
    stream = bytes(stream)
    got = feed_until_error(stream, cuts, protocol.MAX_FRAME_BYTES)
    assert got == decode_bytewise(stream, protocol.MAX_FRAME_BYTES)[:len(got)]


def check_decoder_reproduces_chunked_streams(frames: list[tuple[FrameType, bytes]], cuts: list[int]) -> None:
    decoder, got = protocol.FrameDecoder(), []
    for chunk in chunked(encoded(frames), cuts):
        got += decoder.feed(chunk)
    assert got == [protocol.Frame(t, p) for t, p in frames]
    assert decoder.pending_bytes == 0


def check_decoder_keeps_truncated_streams_pending(frames: list[tuple[FrameType, bytes]], cut: int,
                                                  cuts: list[int]) -> None:
    stream = encoded(frames)
    cut %= len(stream) + 1
    decoder, got = protocol.FrameDecoder(), []
    for chunk in chunked(stream[:cut], cuts):
        got += decoder.feed(chunk)
    ends, end = [], 0
    for _, payload in frames:
        end += protocol.HEADER.size + len(payload)
        ends.append(end)
    complete = sum(1 for e in ends if e <= cut)
    assert got == [protocol.Frame(t, p) for t, p in frames[:complete]]
    assert decoder.pending_bytes == cut - (ends[complete - 1] if complete else 0)


def check_decoder_refuses_bad_length_before_the_body(frames: list[tuple[FrameType, bytes]], limit: int,
                                                     length: int) -> None:
    assume(not 1 <= length <= limit)
    frames = [(t, p[:limit - 1]) for t, p in frames]
    decoder = protocol.FrameDecoder(limit)
    assert decoder.feed(encoded(frames)) == [protocol.Frame(t, p) for t, p in frames]
    header = struct.pack(">I", length)
    assert decoder.feed(header[:3]) == []
    with pytest.raises(ProtocolError, match="outside"):
        decoder.feed(header[3:])        # refused on the fourth length byte, no body needed


def check_decoder_refuses_unknown_types(type_byte: int, payload: bytes) -> None:
    assume(type_byte not in set(FrameType))
    with pytest.raises(ProtocolError, match="unknown frame type"):
        protocol.FrameDecoder().feed(struct.pack(">IB", len(payload) + 1, type_byte) + payload)


PARSERS: list[Callable[[protocol.Frame], object]] = [
    protocol.parse_challenge, protocol.parse_join, protocol.parse_session_ids, protocol.parse_session_id,
    protocol.parse_close, protocol.parse_relayed, protocol.check_message,
    lambda frame: protocol.decode_inner(frame.payload)]


def check_parsers_raise_only_protocol_errors(frame_type: FrameType, payload: bytes) -> None:
    for parse in PARSERS:
        with suppress(ProtocolError):
            parse(protocol.Frame(frame_type, payload))


def check_inner_messages_round_trip(kind: InnerKind, name: str, body: str) -> None:
    assume(len(name.encode("utf-8")) <= 255)
    inner = protocol.decode_inner(protocol.encode_inner(kind, name, body))
    assert (inner.kind, inner.name, inner.body) == (kind, name, body)


# -- decrypt path -------------------------------------------------------------

def check_random_sealed_is_refused(key: bytes, counter: int, aad: bytes, sealed: bytes) -> None:
    try:
        plaintext = open_sealed(key, counter, aad, sealed)
    except DecryptionError:
        return
    raise ForgeryAccepted(f"random bytes opened as {plaintext!r}")


def _flip(data: bytes, index: int, bit: int) -> bytes:
    index %= len(data)
    return data[:index] + bytes([data[index] ^ (1 << bit)]) + data[index + 1:]


sealed_mutations = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 2**16), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 2**16)),
    st.tuples(st.just("extend"), st.binary(min_size=1, max_size=32)),
    st.tuples(st.just("counter"), any_counters),
    st.tuples(st.just("aad flip"), st.integers(0, 2**16), st.integers(0, 7)),
    st.tuples(st.just("aad extend"), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("key"), keys),
    st.tuples(st.just("splice"), st.binary(max_size=64)),   # this ciphertext, another message's tag
)


def check_mutated_sealed_is_refused(key: bytes, counter: int, aad: bytes, plaintext: bytes,
                                    mutation: tuple) -> None:
    sealed = seal(key, counter, aad, plaintext)
    assert open_sealed(key, counter, aad, sealed) == plaintext
    kind, *args = mutation
    open_key, open_counter, open_aad, opened = key, counter, aad, sealed
    if kind == "flip":
        opened = _flip(sealed, *args)
    elif kind == "truncate":
        opened = sealed[:args[0] % len(sealed)]
    elif kind == "extend":
        opened = sealed + args[0]
    elif kind == "counter":
        assume(args[0] != counter)
        open_counter = args[0]
    elif kind == "aad flip":
        assume(aad)
        open_aad = _flip(aad, *args)
    elif kind == "aad extend":
        open_aad = aad + args[0]
    elif kind == "key":
        assume(args[0] != key)
        open_key = args[0]
    elif kind == "splice":
        assume(args[0] != plaintext)
        opened = sealed[:-TAG_BYTES] + seal(key, counter, aad, args[0])[-TAG_BYTES:]
    try:
        result = open_sealed(open_key, open_counter, open_aad, opened)
    except DecryptionError:
        return
    raise ForgeryAccepted(f"{mutation!r} of {plaintext!r} opened as {result!r}")


PURE_PROPERTIES: dict[str, tuple[Callable[..., None], dict[str, st.SearchStrategy]]] = {
    "decoder: random bytes raise only ProtocolError":
        (check_decoder_survives_random_bytes,
         dict(stream=random_streams, cuts=cut_points, limit=decoder_limits)),
    "decoder: mutated valid streams raise only ProtocolError":
        (check_decoder_survives_mutated_streams,
         dict(frames=frame_lists, edits=st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)),
                                                 min_size=1, max_size=4), cuts=cut_points)),
    "decoder: valid streams come out whole however they are chunked":
        (check_decoder_reproduces_chunked_streams, dict(frames=frame_lists, cuts=cut_points)),
    "decoder: truncated streams give whole frames and keep the rest pending":
        (check_decoder_keeps_truncated_streams_pending,
         dict(frames=frame_lists, cut=st.integers(0, 2**16), cuts=cut_points)),
    "decoder: bad lengths are refused before the body":
        (check_decoder_refuses_bad_length_before_the_body,
         dict(frames=frame_lists, limit=decoder_limits,
              length=st.one_of(st.just(0), st.integers(1, 2**32 - 1)))),
    "decoder: unknown frame types are refused":
        (check_decoder_refuses_unknown_types, dict(type_byte=st.integers(0, 255), payload=st.binary(max_size=50))),
    "parsers: arbitrary payloads raise only ProtocolError":
        (check_parsers_raise_only_protocol_errors, dict(frame_type=frame_types, payload=st.binary(max_size=120))),
    "inner messages round-trip any text":
        (check_inner_messages_round_trip,
         dict(kind=st.sampled_from(list(InnerKind)), name=st.text(max_size=80), body=texts)),
    "open_sealed: random input is refused":
        (check_random_sealed_is_refused,
         dict(key=keys, counter=any_counters, aad=st.binary(max_size=40), sealed=st.binary(max_size=120))),
    "open_sealed: every mutation of a sealed message is refused":
        (check_mutated_sealed_is_refused,
         dict(key=keys, counter=counters, aad=st.binary(max_size=40), plaintext=st.binary(max_size=120),
              mutation=sealed_mutations)),
}


# -- a real session behind a real server ----------------------------------------

@dataclass
class FuzzRoom:
    """Alice (a real ChatSession) and Mallory, a member who seals by hand and sends
    MESSAGE frames the server stamps with her session id, as it would any member's."""

    server: object
    alice: CoreClient
    mallory: RawClient
    message_key: bytes
    mallory_id: bytes
    alice_id: bytes
    next_seq: int = 0
    accepted: list[tuple[int, bytes]] = field(default_factory=list)   # what Alice has shown
    rounds: int = 0

    @property
    def mallory_key(self) -> bytes:
        return sender_key(self.message_key, self.mallory_id)

    def take_seq(self) -> int:
        self.next_seq += 1
        return self.next_seq - 1

    def sealed(self, seq: int, text: str, key: bytes | None = None, kind: InnerKind = InnerKind.TEXT) -> bytes:
        plaintext = protocol.encode_inner(kind, "Mallory", text)
        return seal(key or self.mallory_key, seq, protocol.message_aad(self.mallory_id, seq), plaintext)

    def send(self, seq: int, sealed: bytes) -> None:
        self.mallory.sock.sendall(protocol.encode_message(seq, sealed))

    def inject(self, frame: bytes) -> None:
        """Put a frame straight into Alice's connection, as a malicious relay would."""
        alice_conn = next(m for m in self.server.registry._members if m.session_id == self.alice_id)
        assert alice_conn.send(frame)

    def settle(self) -> list:
        """Send a good message and wait until Alice shows it: every event in between."""
        self.rounds += 1
        seq, text = self.take_seq(), f"sentinel {self.rounds}"
        sealed = self.sealed(seq, text)
        self.send(seq, sealed)
        self.accepted.append((seq, sealed))
        start = len(self.alice.seen)
        self.alice.wait_for(ChatMessage, lambda e: e.text == text)
        return self.alice.seen[start:-1]


@contextmanager
def fuzz_room() -> Iterator[FuzzRoom]:
    with running_server(idle_timeout=3600) as server:
        alice = CoreClient(server.port, "Alice")
        try:
            alice.join()
            mallory = RawClient(server.port)
            keys, mallory_id, accepted = mallory.handshake()
            assert accepted.type == FrameType.ACCEPTED
            (alice_id,) = protocol.parse_session_ids(accepted)
            room = FuzzRoom(server, alice, mallory, keys.message_key, mallory_id, alice_id)
            seq = room.take_seq()
            hello = room.sealed(seq, "", kind=InnerKind.HELLO)
            room.send(seq, hello)
            room.accepted.append((seq, hello))
            alice.wait_for(MemberJoined, lambda e: e.name == "Mallory")
            yield room
            mallory.close()
        finally:
            alice.close()


def assert_only_notices(events: list, bad_frames: int, authentic: list[str]) -> None:
    """Each bad frame gave a "Dropped" notice; the only messages shown are authentic
    ones; the link never dropped."""
    shown = [e.text for e in events if isinstance(e, ChatMessage)]
    if shown != [display_safe(t) for t in authentic]:
        raise ForgeryAccepted(f"Alice showed {shown!r}; only {authentic!r} were genuine")
    dropped = [e for e in events if isinstance(e, Notice) and e.text.startswith(("Dropped", "Ignored"))]
    assert len(dropped) == bad_frames, f"{bad_frames} bad frames, notices: {dropped}"
    assert not any(isinstance(e, (Closed, ConnectionLost)) for e in events)


member_mutations = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 2**16), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 2**16)),
    st.tuples(st.just("extend"), st.binary(min_size=1, max_size=32)),
    st.tuples(st.just("claim"), counters),              # sealed as one number, sent as another
    st.tuples(st.just("key"), keys),
    st.just(("impersonate",)),                           # sealed with Alice's key, sent by Mallory
    st.tuples(st.just("random"), st.binary(min_size=TAG_BYTES, max_size=120)),
    st.tuples(st.just("replay"), st.integers(0, 2**16)),
    st.just(("reorder",)),
)


def check_session_drops_bad_member_messages(room: FuzzRoom, mutation: tuple, text: str) -> None:
    kind, *args = mutation
    seq = room.take_seq()
    sealed = room.sealed(seq, text)
    frames, authentic = [(seq, sealed)], []
    if kind == "flip":
        frames = [(seq, _flip(sealed, *args))]
    elif kind == "truncate":
        frames = [(seq, sealed[:TAG_BYTES + args[0] % (len(sealed) - TAG_BYTES)])]
    elif kind == "extend":
        frames = [(seq, sealed + args[0])]
    elif kind == "claim":
        assume(args[0] != seq)
        frames = [(args[0], sealed)]
    elif kind == "key":
        frames = [(seq, room.sealed(seq, text, key=args[0]))]
    elif kind == "impersonate":
        frames = [(seq, room.sealed(seq, text, key=sender_key(room.message_key, room.alice_id)))]
    elif kind == "random":
        frames = [(seq, args[0])]
    elif kind == "replay":
        frames = [room.accepted[args[0] % len(room.accepted)]]
    elif kind == "reorder":
        later = room.take_seq()
        later_sealed = room.sealed(later, text)
        room.send(later, later_sealed)             # the later one first: genuine, shown
        room.accepted.append((later, later_sealed))
        authentic = [text]
    for claimed, body in frames:
        room.send(claimed, body)
    assert_only_notices(room.settle(), len(frames), authentic)


relay_injections = st.tuples(
    st.one_of(st.just("mallory"), st.just("alice"), st.binary(min_size=8, max_size=8)),
    st.one_of(counters, st.just(0)),
    st.binary(max_size=150))


def check_session_drops_injected_relayed_frames(room: FuzzRoom, injection: tuple) -> None:
    """The relay itself stamps and forges: arbitrary RELAYED frames into Alice's link."""
    sender, seq, sealed = injection
    sender = {"mallory": room.mallory_id, "alice": room.alice_id}.get(sender, sender)
    room.inject(protocol.encode_frame(FrameType.RELAYED, sender + seq.to_bytes(8, "big") + sealed))
    assert_only_notices(room.settle(), 1, [])


SESSION_PROPERTIES: dict[str, tuple[Callable[..., None], dict[str, st.SearchStrategy]]] = {
    "session: a member's tampered, replayed and reordered messages are dropped with a notice":
        (check_session_drops_bad_member_messages, dict(mutation=member_mutations, text=texts)),
    "session: frames a malicious relay injects are dropped with a notice":
        (check_session_drops_injected_relayed_frames, dict(injection=relay_injections)),
}


def run_property(check: Callable[..., None], strategies: dict[str, st.SearchStrategy],
                 config: settings, **fixed) -> None:
    """Run ``check`` under hypothesis with ``config``; ``fixed`` arguments are passed as is."""
    bound = {name: st.just(value) for name, value in fixed.items()}
    config(given(**strategies, **bound)(check))()


@pytest.mark.parametrize("name", list(PURE_PROPERTIES))
def test_pure_property(name):
    check, strategies = PURE_PROPERTIES[name]
    run_property(check, strategies, PROFILE)


@pytest.fixture(scope="module")
def room():
    with fuzz_room() as fuzz:
        yield fuzz


@pytest.mark.parametrize("name", list(SESSION_PROPERTIES))
def test_session_property(room, name):
    check, strategies = SESSION_PROPERTIES[name]
    run_property(check, strategies, SESSION_PROFILE, room=room)
    # The room survived every example: a fresh message still gets through.
    assert_only_notices(room.settle(), 0, [])
