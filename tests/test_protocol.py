"""securex.protocol (the relay's frames): the decoder under merged and split reads,
limits checked before the body, and every encode/parse pair round-tripping or
refusing malformed input with a ProtocolError and nothing else."""

from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securex import protocol
from securex.session import peer_wire
from securex.errors import ProtocolError
from securex.protocol import (ID_BYTES, MAX_CLIENTS_LIMIT, MAX_FRAME_BYTES, PROTOCOL_VERSION, CloseReason, Frame,
                              FrameDecoder, FrameType, RosterEntry, encode_frame)
import contextlib

ALICE, BOB = b"alice-01", b"bob---02"


def decode_one(data: bytes) -> Frame:
    """The single frame ``data`` holds; fails if it holds more, fewer or leftovers."""
    decoder = FrameDecoder()
    frames = decoder.feed(data)
    assert len(frames) == 1 and decoder.pending_bytes == 0
    return frames[0]


# -- framing ------------------------------------------------------------------------

def test_frame_layout_is_length_then_type_then_payload():
    assert encode_frame(FrameType.PING) == b"\x00\x00\x00\x01\x31"
    assert encode_frame(FrameType.ROUTE, ALICE + b"x") == b"\x00\x00\x00\x0a\x10" + ALICE + b"x"


STREAM_FRAMES = [
    Frame(FrameType.WELCOME, bytes([PROTOCOL_VERSION, 5]) + ALICE + BOB),
    Frame(FrameType.PING, b""),
    Frame(FrameType.ROUTED, ALICE + bytes(range(40))),
    Frame(FrameType.LEAVE, b""),
    Frame(FrameType.CLOSE, b"\x06bye \xf0\x9f\x91\x8b"),
]
STREAM = b"".join(encode_frame(f.type, f.payload) for f in STREAM_FRAMES)


def test_merged_frames_in_one_read():
    decoder = FrameDecoder()
    assert decoder.feed(STREAM) == STREAM_FRAMES
    assert decoder.pending_bytes == 0


@pytest.mark.parametrize("cut", range(len(STREAM) + 1))
def test_split_at_every_byte_boundary(cut):
    decoder = FrameDecoder()
    first = decoder.feed(STREAM[:cut])
    assert decoder.pending_bytes == cut - sum(5 + len(f.payload) for f in first)
    assert first + decoder.feed(STREAM[cut:]) == STREAM_FRAMES


@settings(max_examples=100, deadline=None)
@given(frames=st.lists(st.tuples(st.sampled_from(list(FrameType)), st.binary(max_size=300)), max_size=8),
       cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=12))
def test_any_chunking_gives_the_same_frames(frames, cuts):
    stream = b"".join(encode_frame(t, p) for t, p in frames)
    bounds = sorted({0, len(stream), *(c for c in cuts if c <= len(stream))})
    decoder = FrameDecoder()
    got = []
    for start, end in itertools.pairwise(bounds):
        got += decoder.feed(stream[start:end])
    assert got == [Frame(t, p) for t, p in frames]
    assert decoder.pending_bytes == 0


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(st.tuples(st.sampled_from([FrameType.ROUTED, FrameType.ROUTED, FrameType.ROSTER]),
                                 st.binary(max_size=120)), max_size=8),
       reads=st.lists(st.tuples(st.booleans(), st.integers(min_value=1, max_value=200)), max_size=60))
def test_reading_in_place_gives_the_same_frames_as_feeding(frames, reads):
    """The socket writing into the decoder's buffers (a large ROUTED frame straight
    into its own), in reads of any size, mixed with plain feeding."""
    stream = b"".join(encode_frame(t, p) for t, p in frames)
    decoder, got, at = FrameDecoder(large_frame_bytes=20), [], 0
    for in_place, size in [*reads, (False, len(stream))]:
        piece = stream[at:at + size]
        if in_place:
            into = decoder.get_buffer()
            piece = piece[:len(into)]
            into[:len(piece)] = piece
            got += decoder.buffer_updated(len(piece))
        else:
            got += decoder.feed(piece)
        at += len(piece)
    assert got == [Frame(t, p) for t, p in frames]
    assert decoder.pending_bytes == 0


def test_a_large_routed_frame_is_received_into_its_own_buffer_which_becomes_its_payload():
    body = os.urandom(100_000)
    stream = protocol.routed_from_route(ALICE, protocol.encode_route(BOB, body)[5:])
    decoder, first = FrameDecoder(), protocol.LARGE_FRAME_BYTES + 1000
    decoder.get_buffer()[:first] = stream[:first]
    assert decoder.buffer_updated(first) == []
    into = decoder.get_buffer()
    assert len(into) == len(stream) - first          # the rest of this frame, and nothing after it
    into[:] = stream[first:]
    [frame] = decoder.buffer_updated(len(into))
    assert frame.payload is into.obj and frame == Frame(FrameType.ROUTED, stream[5:])
    routed = protocol.routed_view(frame)
    assert routed.member_id == ALICE and isinstance(routed.member_id, bytes) and routed.body == body


def _receive_in_place(decoder: FrameDecoder, stream: bytes, read: int) -> list[Frame]:
    frames, at = [], 0
    while at < len(stream):
        into = decoder.get_buffer()
        piece = stream[at:at + min(read, len(into))]
        into[:len(piece)] = piece
        frames += decoder.buffer_updated(len(piece))
        at += len(piece)
    return frames


def test_a_large_frame_given_back_is_received_into_again_and_holds_only_the_new_frame():
    first, second = (protocol.routed_from_route(ALICE, protocol.encode_route(BOB, os.urandom(80_000))[5:])
                     for _ in range(2))
    decoder = FrameDecoder()
    [one] = _receive_in_place(decoder, first, 7000)
    decoder.pool.give_back(protocol.routed_view(one).body)        # a view into it, as a file chunk is
    [two] = _receive_in_place(decoder, second, 7000)
    assert two.payload is one.payload and two == Frame(FrameType.ROUTED, second[5:])


def test_the_frame_pool_keeps_only_what_it_may_and_only_gives_the_size_asked():
    pool = protocol.FramePool(limit_bytes=3 * 1000)
    kept = [bytearray(1000) for _ in range(4)]          # equal contents: told apart only by identity
    for buffer in kept:
        pool.give_back(memoryview(buffer)[10:])
    pool.give_back(b"immutable bytes are never handed out for writing")
    other = pool.take(999)                                     # another size: a fresh buffer
    assert len(other) == 999 and all(other is not k for k in kept)
    taken = [pool.take(1000) for _ in range(4)]
    assert [t is k for t, k in zip(taken, reversed(kept), strict=True)] == [True, True, True, False]
    assert len({id(t) for t in taken}) == 4                     # never the same buffer twice


def test_odd_sized_last_chunks_age_out_of_the_pool_instead_of_clogging_it():
    pool, chunk, last = protocol.FramePool(limit_bytes=8 * 1000), 1000, 700
    for _ in range(20):                                        # twenty files of eight chunks
        sizes = [chunk] * 7 + [last]
        buffers = [pool.take(size) for size in sizes]
        reused = sum(1 for b in buffers if b[:1] == b"x")
        for buffer in buffers:
            buffer[:1] = b"x"                                  # marks it as having been used
            pool.give_back(buffer)
    assert reused >= 7


def test_a_fanout_received_in_place_names_its_recipients_as_bytes_and_keeps_its_body_a_view():
    frame = Frame(FrameType.FANOUT, bytearray(protocol.encode_fanout([ALICE, BOB], b"chunk")[5:]))
    fanout = protocol.parse_fanout(frame)
    assert fanout.recipients == [ALICE, BOB] and all(type(r) is bytes for r in fanout.recipients)
    assert fanout.body == b"chunk" and fanout.body.obj is frame.payload


def test_a_large_frame_only_announced_is_not_given_its_memory_before_its_bytes_come():
    """Six bytes announcing a megabyte must not make the reader set a megabyte aside."""
    decoder = FrameDecoder()
    header = protocol.HEADER.pack(MAX_FRAME_BYTES, FrameType.ROUTED)
    decoder.get_buffer()[:len(header) + 1] = header + b"x"
    assert decoder.buffer_updated(len(header) + 1) == []
    assert len(decoder.get_buffer()) == protocol.READ_BYTES          # still the shared read buffer
    assert decoder.feed(bytes(protocol.LARGE_FRAME_BYTES)) == []
    assert len(decoder.get_buffer()) == MAX_FRAME_BYTES - 1 - 1 - protocol.LARGE_FRAME_BYTES   # now in place


def test_zero_length_is_refused():
    with pytest.raises(ProtocolError, match="length 0"):
        FrameDecoder().feed(b"\x00\x00\x00\x00")


def test_oversize_length_is_refused_before_the_body_arrives():
    decoder = FrameDecoder()
    header = (MAX_FRAME_BYTES + 1).to_bytes(4, "big")
    assert decoder.feed(header[:3]) == []
    with pytest.raises(ProtocolError, match="outside"):
        decoder.feed(header[3:])  # only the 4 length bytes: no type byte, no body


def test_body_exactly_at_the_limit_is_accepted():
    payload = bytes(MAX_FRAME_BYTES - 1)
    assert decode_one(encode_frame(FrameType.ROUTE, payload)) == Frame(FrameType.ROUTE, payload)


def test_encode_frame_refuses_oversize():
    with pytest.raises(ProtocolError, match="limit"):
        encode_frame(FrameType.ROUTE, bytes(MAX_FRAME_BYTES))


def test_unknown_frame_type_is_refused():
    with pytest.raises(ProtocolError, match="unknown frame type 0x7f"):
        FrameDecoder().feed(b"\x00\x00\x00\x01\x7f")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_never_raises_anything_but_a_protocol_error(garbage):
    with contextlib.suppress(ProtocolError):
        FrameDecoder().feed(garbage)


# -- joining --------------------------------------------------------------------------

def test_welcome_round_trip():
    welcome = protocol.parse_welcome(decode_one(protocol.encode_welcome(5, ALICE, BOB)))
    assert welcome == protocol.Welcome(PROTOCOL_VERSION, 5, ALICE, BOB)


def test_welcome_has_version_1s_challenge_layout_so_old_clients_read_update():
    # Version 1 read "version:u8 | max:u8 | salt:16" from type 0x01: the same 18 bytes.
    frame = decode_one(protocol.encode_welcome(5, ALICE, BOB))
    assert frame.type == 0x01 and len(frame.payload) == 18 and frame.payload[0] == 2


def test_a_version_1_challenge_parses_as_version_1_not_as_an_error():
    challenge = encode_frame(FrameType.WELCOME, bytes([1, 5]) + bytes(16))
    assert protocol.parse_welcome(decode_one(challenge)).version == 1
    assert protocol.parse_welcome(Frame(FrameType.WELCOME, b"\x09")).version == 9


def test_welcome_of_this_version_with_the_wrong_length_is_refused():
    with pytest.raises(ProtocolError):
        protocol.parse_welcome(Frame(FrameType.WELCOME, bytes([PROTOCOL_VERSION, 5]) + ALICE))


def test_roster_round_trip_keeps_order_and_flags():
    entries = [RosterEntry(ALICE, True, True), RosterEntry(BOB, False, False)]
    assert protocol.parse_roster(decode_one(protocol.encode_roster(entries)), capacity=5) == entries


def test_roster_larger_than_the_room_is_refused():
    entries = [RosterEntry(bytes([i]) * ID_BYTES, True, False) for i in range(6)]
    with pytest.raises(ProtocolError, match="6 members in a room for 5"):
        protocol.parse_roster(decode_one(protocol.encode_roster(entries)), capacity=5)


def test_roster_listing_a_member_twice_is_refused():
    entries = [RosterEntry(ALICE, True, False), RosterEntry(ALICE, True, False)]
    with pytest.raises(ProtocolError, match="twice"):
        protocol.parse_roster(decode_one(protocol.encode_roster(entries)), capacity=5)


def test_roster_with_a_count_that_does_not_match_its_length_is_refused():
    with pytest.raises(ProtocolError):
        protocol.parse_roster(Frame(FrameType.ROSTER, b"\x02" + ALICE + b"\x01"), capacity=5)


def test_status_round_trip():
    status = protocol.parse_status(decode_one(protocol.encode_status(True, [ALICE, BOB])))
    assert status == protocol.Status(True, [ALICE, BOB])


def test_status_listing_too_many_is_refused():
    with pytest.raises(ProtocolError):
        protocol.parse_status(Frame(FrameType.STATUS, bytes([1, MAX_CLIENTS_LIMIT + 1])
                                    + ALICE * (MAX_CLIENTS_LIMIT + 1)))


def test_close_gives_the_reason_and_never_the_relays_words():
    assert protocol.parse_close(decode_one(protocol.encode_close(CloseReason.FULL, "anything"))) == CloseReason.FULL
    assert protocol.parse_close(Frame(FrameType.CLOSE, b"\xee...")) is None
    with pytest.raises(ProtocolError):
        protocol.parse_close(Frame(FrameType.CLOSE, b""))


def test_close_detail_is_capped():
    assert len(protocol.encode_close(CloseReason.PROTOCOL, "x" * 100_000)) < 1100


# -- routing ----------------------------------------------------------------------------

def test_the_relay_swaps_the_recipient_for_the_sender_and_nothing_else():
    route = decode_one(protocol.encode_route(BOB, b"sealed body"))
    routed = decode_one(protocol.routed_from_route(ALICE, route.payload))
    assert routed.type == FrameType.ROUTED
    assert protocol.parse_routed(routed) == protocol.Routed(ALICE, b"sealed body")


def test_route_without_a_body_is_refused():
    for parse in (protocol.parse_routed, protocol.routed_view):
        with pytest.raises(ProtocolError):
            parse(Frame(FrameType.ROUTED, ALICE))


def test_a_routed_view_is_the_routed_body_without_a_copy():
    routed = decode_one(protocol.routed_from_route(ALICE, protocol.encode_route(BOB, b"sealed body")[5:]))
    view = protocol.routed_view(routed)
    assert view == protocol.parse_routed(routed) and isinstance(view.body, memoryview)
    assert view.body.obj is routed.payload        # the frame's own bytes


def test_a_fanout_sent_as_header_then_body_is_the_same_frame():
    body = b"c" * 1000
    assert protocol.fanout_header([ALICE, BOB], len(body)) + body == protocol.encode_fanout([ALICE, BOB], body)
    with pytest.raises(ProtocolError):
        protocol.fanout_header([ALICE], protocol.MAX_FRAME_BYTES)


def test_fanout_round_trip():
    fanout = protocol.parse_fanout(decode_one(protocol.encode_fanout([ALICE, BOB], b"chunk")))
    assert fanout == protocol.Fanout([ALICE, BOB], b"chunk")


@pytest.mark.parametrize("payload", [
    b"", b"\x00" + b"chunk", b"\x02" + ALICE + ALICE + b"chunk", b"\x01" + ALICE,
    bytes([MAX_CLIENTS_LIMIT + 1]) + ALICE * (MAX_CLIENTS_LIMIT + 1) + b"x"],
    ids=["empty", "no-recipients", "recipient-twice", "no-body", "too-many"])
def test_malformed_fanout_is_refused(payload):
    with pytest.raises(ProtocolError):
        protocol.parse_fanout(Frame(FrameType.FANOUT, payload))



def test_only_a_file_chunk_stays_a_view_of_the_frame():
    """Everything but a chunk becomes bytes, so no handler meets a memoryview; a chunk
    (half a megabyte) is parsed and opened where it arrived."""
    chunk = peer_wire.Bulk(b"f" * 16, 3, True, 9, b"s" * 40)
    kind, payload = peer_wire.split_body(memoryview(peer_wire.encode_bulk(chunk)))
    assert kind == peer_wire.BodyKind.BULK and isinstance(payload, memoryview)
    assert peer_wire.parse_bulk(payload) == chunk
    assert len(peer_wire.bulk_header(b"f" * 16, 3, True, 9)) == peer_wire.BULK_HEADER_BYTES
    kind, payload = peer_wire.split_body(memoryview(peer_wire.encode_record(5, b"t" * 40)))
    assert kind == peer_wire.BodyKind.RECORD and type(payload) is bytes
