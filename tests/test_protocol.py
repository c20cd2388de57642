"""protocol: the frame decoder under merged and split reads, limits checked before the
body, and every encode/parse pair round-tripping or refusing malformed input."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securex import protocol
from crypto_utils import KEY_BYTES, SALT_BYTES, SESSION_ID_BYTES, TAG_BYTES, open_sealed, seal
from securex.errors import ProtocolError
from securex.protocol import (
    MAX_FRAME_BYTES,
    MAX_TEXT_BYTES,
    PROTOCOL_VERSION,
    CloseReason,
    Frame,
    FrameDecoder,
    FrameType,
    InnerKind,
    encode_frame,
)

ALICE = b"alice-01"
BOB = b"bob---02"
KEY = bytes(range(KEY_BYTES))


def decode_one(data: bytes) -> Frame:
    """The single frame ``data`` holds; fails if it holds more, fewer or leftovers."""
    decoder = FrameDecoder()
    frames = decoder.feed(data)
    assert len(frames) == 1 and decoder.pending_bytes == 0
    return frames[0]


# -- framing ---------------------------------------------------------------

def test_frame_layout_is_length_then_type_then_payload():
    assert encode_frame(FrameType.PING) == b"\x00\x00\x00\x01\x31"
    assert encode_frame(FrameType.JOINED, ALICE) == b"\x00\x00\x00\x09\x20" + ALICE


STREAM_FRAMES = [
    Frame(FrameType.CHALLENGE, bytes([PROTOCOL_VERSION, 5]) + bytes(SALT_BYTES)),
    Frame(FrameType.PING, b""),
    Frame(FrameType.MESSAGE, bytes(range(40))),
    Frame(FrameType.LEAVE, b""),
    Frame(FrameType.CLOSE, b"\x06bye \xf0\x9f\x91\x8b"),
]
STREAM = b"".join(encode_frame(f.type, f.payload) for f in STREAM_FRAMES)


def test_merged_frames_in_one_read():
    decoder = FrameDecoder()
    assert decoder.feed(STREAM) == STREAM_FRAMES
    assert decoder.pending_bytes == 0


def test_one_byte_at_a_time():
    decoder = FrameDecoder()
    frames = []
    for i in range(len(STREAM)):
        frames += decoder.feed(STREAM[i:i + 1])
    assert frames == STREAM_FRAMES
    assert decoder.pending_bytes == 0


@pytest.mark.parametrize("cut", range(len(STREAM) + 1))
def test_split_at_every_byte_boundary(cut):
    decoder = FrameDecoder()
    first = decoder.feed(STREAM[:cut])
    assert decoder.pending_bytes == len(STREAM[:cut]) - sum(5 + len(f.payload) for f in first)
    assert first + decoder.feed(STREAM[cut:]) == STREAM_FRAMES


def test_empty_read_yields_nothing():
    decoder = FrameDecoder()
    assert decoder.feed(b"") == []
    assert decoder.feed(STREAM[:3]) == [] and decoder.feed(b"") == []
    assert decoder.pending_bytes == 3


_frame_types = st.sampled_from(list(FrameType))


@settings(max_examples=60, deadline=None)
@given(frames=st.lists(st.tuples(_frame_types, st.binary(max_size=300)), max_size=8),
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


def test_zero_length_is_refused():
    with pytest.raises(ProtocolError, match="length 0"):
        FrameDecoder().feed(b"\x00\x00\x00\x00")


def test_oversize_length_is_refused_before_the_body_arrives():
    decoder = FrameDecoder()
    header = (MAX_FRAME_BYTES + 1).to_bytes(4, "big")
    assert decoder.feed(header[:3]) == []
    with pytest.raises(ProtocolError, match="outside"):
        decoder.feed(header[3:])  # only the 4 length bytes: no type byte, no body


def test_oversize_length_after_a_good_frame_in_the_same_read():
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(encode_frame(FrameType.PING) + b"\xff\xff\xff\xff")


def test_custom_limit_is_enforced():
    decoder = FrameDecoder(max_frame_bytes=16)
    assert decoder.feed(encode_frame(FrameType.MESSAGE, bytes(15))) == [Frame(FrameType.MESSAGE, bytes(15))]
    with pytest.raises(ProtocolError):
        decoder.feed((17).to_bytes(4, "big"))


def test_body_exactly_at_the_limit_is_accepted():
    payload = bytes(MAX_FRAME_BYTES - 1)  # + the type byte = MAX_FRAME_BYTES
    encoded = encode_frame(FrameType.MESSAGE, payload)
    assert encoded[:4] == MAX_FRAME_BYTES.to_bytes(4, "big")
    assert decode_one(encoded) == Frame(FrameType.MESSAGE, payload)


def test_encode_frame_refuses_oversize():
    with pytest.raises(ProtocolError, match="limit"):
        encode_frame(FrameType.MESSAGE, bytes(MAX_FRAME_BYTES))


@pytest.mark.parametrize("type_byte", [0x00, 0x05, 0x12, 0xff])
def test_unknown_frame_type_is_refused(type_byte):
    with pytest.raises(ProtocolError, match=f"0x{type_byte:02x}"):
        FrameDecoder().feed(b"\x00\x00\x00\x01" + bytes([type_byte]))


def test_garbage_is_refused():
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


# -- handshake -------------------------------------------------------------

def test_challenge_round_trip():
    salt = bytes(range(SALT_BYTES))
    challenge = protocol.parse_challenge(decode_one(protocol.encode_challenge(5, salt)))
    assert challenge == protocol.Challenge(PROTOCOL_VERSION, 5, salt)


@pytest.mark.parametrize("size", [0, 2 + SALT_BYTES - 1, 2 + SALT_BYTES + 1])
def test_challenge_of_the_wrong_length_is_refused(size):
    with pytest.raises(ProtocolError, match="CHALLENGE"):
        protocol.parse_challenge(Frame(FrameType.CHALLENGE, bytes(size)))


def test_join_round_trip():
    key_check = bytes(range(KEY_BYTES))
    join = protocol.parse_join(decode_one(protocol.encode_join(ALICE, key_check)))
    assert join == protocol.Join(PROTOCOL_VERSION, ALICE, key_check)


@pytest.mark.parametrize("size", [0, 1 + SESSION_ID_BYTES + KEY_BYTES - 1, 1 + SESSION_ID_BYTES + KEY_BYTES + 1])
def test_join_of_the_wrong_length_is_refused(size):
    with pytest.raises(ProtocolError, match="JOIN"):
        protocol.parse_join(Frame(FrameType.JOIN, bytes(size)))


@pytest.mark.parametrize("ids", [[], [ALICE], [ALICE, BOB, bytes(8), b"\xff" * 8]], ids=["none", "one", "four"])
def test_session_ids_round_trip(ids):
    frame = decode_one(protocol.encode_session_ids(FrameType.ACCEPTED, ids))
    assert frame.type == FrameType.ACCEPTED
    assert protocol.parse_session_ids(frame) == ids


@pytest.mark.parametrize("size", [1, SESSION_ID_BYTES - 1, SESSION_ID_BYTES + 1, 2 * SESSION_ID_BYTES + 3])
def test_session_id_list_of_a_partial_id_is_refused(size):
    with pytest.raises(ProtocolError, match="ACCEPTED"):
        protocol.parse_session_ids(Frame(FrameType.ACCEPTED, bytes(size)))


@pytest.mark.parametrize("frame_type", [FrameType.JOINED, FrameType.LEFT])
def test_single_session_id_round_trip(frame_type):
    frame = decode_one(protocol.encode_session_ids(frame_type, [BOB]))
    assert frame.type == frame_type and protocol.parse_session_id(frame) == BOB


@pytest.mark.parametrize("size", [0, SESSION_ID_BYTES - 1, SESSION_ID_BYTES + 1, 2 * SESSION_ID_BYTES])
def test_single_session_id_of_the_wrong_length_is_refused(size):
    with pytest.raises(ProtocolError, match="LEFT"):
        protocol.parse_session_id(Frame(FrameType.LEFT, bytes(size)))


@pytest.mark.parametrize("reason", list(CloseReason))
def test_close_round_trip(reason):
    frame = decode_one(protocol.encode_close(reason, "The room is full \u2014 d\u00e9sol\u00e9 \U0001F6AA"))
    assert protocol.parse_close(frame) == (reason, "The room is full \u2014 d\u00e9sol\u00e9 \U0001F6AA")


def test_close_with_an_unknown_reason_gives_none():
    assert protocol.parse_close(Frame(FrameType.CLOSE, b"\xc8from the future")) == (None, "from the future")


def test_close_with_undecodable_detail_does_not_raise():
    reason, detail = protocol.parse_close(Frame(FrameType.CLOSE, b"\x01\xff\xfe full"))
    assert reason == CloseReason.FULL and detail.endswith(" full") and "\ufffd" in detail


def test_close_without_a_reason_is_refused():
    with pytest.raises(ProtocolError, match="reason"):
        protocol.parse_close(Frame(FrameType.CLOSE, b""))


def test_close_detail_is_capped():
    frame = decode_one(protocol.encode_close(CloseReason.PROTOCOL, "x" * 5000))
    assert protocol.parse_close(frame) == (CloseReason.PROTOCOL, "x" * 1024)


# -- messages --------------------------------------------------------------

def test_message_aad_layout():
    assert protocol.message_aad(ALICE, 0x0102030405060708) == (
        b"SX" + bytes([PROTOCOL_VERSION, FrameType.MESSAGE]) + ALICE + bytes.fromhex("0102030405060708"))


@pytest.mark.parametrize("session, seq", [
    (ALICE, 1),                   # another sequence number
    (ALICE, 256),                 # the same low byte, another high byte
    (ALICE, 2**63),               # only the top bit differs
    (b"alice-02", 0),             # another sender, differing in the last byte
    (b"blice-01", 0),             # another sender, differing in the first byte
])
def test_message_aad_binds_every_field(session, seq):
    assert protocol.message_aad(session, seq) != protocol.message_aad(ALICE, 0)


def test_message_aad_cannot_be_confused_across_fields():
    # Fixed-width fields: no (session, seq) pair can shift bytes into the other.
    seen = {protocol.message_aad(s, q) for s in (ALICE, BOB, bytes(8)) for q in (0, 1, 2**64 - 1)}
    assert len(seen) == 9
    assert {len(a) for a in seen} == {2 + 1 + 1 + SESSION_ID_BYTES + 8}


def test_relayed_round_trip_opens_under_the_senders_aad():
    sealed = seal(KEY, 42, protocol.message_aad(ALICE, 42), b"hello")
    message = decode_one(protocol.encode_message(42, sealed))
    assert message.type == FrameType.MESSAGE
    protocol.check_message(message)
    relayed = protocol.parse_relayed(decode_one(protocol.relayed_from_message(ALICE, message.payload)))
    assert relayed == protocol.Relayed(ALICE, 42, sealed)
    assert open_sealed(KEY, relayed.seq, protocol.message_aad(relayed.sender_session, relayed.seq),
                       relayed.sealed) == b"hello"


@pytest.mark.parametrize("size", [0, 8, 8 + TAG_BYTES - 1])
def test_message_too_short_is_refused(size):
    with pytest.raises(ProtocolError, match="MESSAGE"):
        protocol.check_message(Frame(FrameType.MESSAGE, bytes(size)))


def test_message_of_an_empty_plaintext_is_long_enough():
    protocol.check_message(Frame(FrameType.MESSAGE, bytes(8 + TAG_BYTES)))


@pytest.mark.parametrize("size", [0, SESSION_ID_BYTES + 8, SESSION_ID_BYTES + 8 + TAG_BYTES - 1])
def test_relayed_too_short_is_refused(size):
    with pytest.raises(ProtocolError, match="RELAYED"):
        protocol.parse_relayed(Frame(FrameType.RELAYED, bytes(size)))


# -- what travels inside the encryption ------------------------------------

@pytest.mark.parametrize("kind, name, body", [
    (InnerKind.TEXT, "Alice", "hello"),
    (InnerKind.TEXT, "Alice", ""),
    (InnerKind.HELLO, "Zo\u00eb \U0001F98A", ""),
    (InnerKind.HERE, "Bob", ""),
    (InnerKind.TEXT, "\u674e\u96f7",
     "\U0001F600 caf\u00e9 \u0645\u0631\u062d\u0628\u0627 \U0001F468\u200d\U0001F469\u200d\U0001F467"),
    (InnerKind.TEXT, "", "no name"),
    (InnerKind.TEXT, "Alice", "line one\nline two\x00after a nul"),
], ids=["ascii", "empty-body", "hello-emoji-name", "here", "mixed-scripts", "empty-name", "control-chars"])
def test_inner_round_trip(kind, name, body):
    assert protocol.decode_inner(protocol.encode_inner(kind, name, body)) == protocol.InnerMessage(kind, name, body)


def test_sixteen_thousand_emoji_fit_and_survive_the_whole_path():
    body = "\U0001F600" * 16_000  # 64,000 bytes of four-byte characters
    plaintext = protocol.encode_inner(InnerKind.TEXT, "Alice", body)
    assert len(body.encode("utf-8")) == 64_000 <= MAX_TEXT_BYTES
    sealed = seal(KEY, 1, protocol.message_aad(ALICE, 1), plaintext)
    message = decode_one(protocol.encode_message(1, sealed))
    relayed = protocol.parse_relayed(decode_one(protocol.relayed_from_message(ALICE, message.payload)))
    inner = protocol.decode_inner(open_sealed(KEY, 1, protocol.message_aad(ALICE, 1), relayed.sealed))
    assert inner.body == body and inner.name == "Alice"


def test_largest_allowed_message_still_fits_in_a_relayed_frame():
    plaintext = protocol.encode_inner(InnerKind.TEXT, "n" * 255, "x" * MAX_TEXT_BYTES)
    sealed = seal(KEY, 1, protocol.message_aad(ALICE, 1), plaintext)
    message = decode_one(protocol.encode_message(1, sealed))
    relayed = decode_one(protocol.relayed_from_message(ALICE, message.payload))
    assert protocol.parse_relayed(relayed).sealed == sealed


def test_body_over_the_text_limit_is_refused():
    protocol.encode_inner(InnerKind.TEXT, "Alice", "x" * MAX_TEXT_BYTES)
    with pytest.raises(ValueError, match="limit"):
        protocol.encode_inner(InnerKind.TEXT, "Alice", "x" * (MAX_TEXT_BYTES + 1))


def test_name_over_255_bytes_is_refused():
    protocol.encode_inner(InnerKind.TEXT, "n" * 255, "hi")
    with pytest.raises(ValueError, match="name"):
        protocol.encode_inner(InnerKind.TEXT, "n" * 256, "hi")
    with pytest.raises(ValueError, match="name"):
        protocol.encode_inner(InnerKind.TEXT, "\U0001F98A" * 64, "hi")  # 64 chars, 256 bytes


@pytest.mark.parametrize("plaintext", [
    b"",                                  # nothing at all
    b"\x01",                              # kind without a name length
    b"\x09\x00hi",                        # unknown kind
    b"\x00\x00hi",                        # kind zero
    b"\x01\x05abc",                       # name length past the end
    b"\x01\x02\xff\xfehi",                # name not UTF-8
    b"\x01\x01a\xc3",                     # body cut inside a character
    b"\x01\x01a\xed\xa0\x80",             # a UTF-16 surrogate encoded in UTF-8
], ids=["empty", "no-name-length", "unknown-kind", "kind-zero", "name-past-end",
        "name-not-utf8", "body-truncated-char", "body-surrogate"])
def test_malformed_plaintext_is_a_protocol_error(plaintext):
    with pytest.raises(ProtocolError, match="malformed"):
        protocol.decode_inner(plaintext)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_decode_inner_never_raises_anything_but_protocol_error(plaintext):
    try:
        inner = protocol.decode_inner(plaintext)
    except ProtocolError:
        return
    assert protocol.encode_inner(inner.kind, inner.name, inner.body) == plaintext


@settings(max_examples=100, deadline=None)
@given(kind=st.sampled_from(list(InnerKind)), name=st.text(max_size=40), body=st.text(max_size=300))
def test_inner_round_trip_for_any_text(kind, name, body):
    try:
        plaintext = protocol.encode_inner(kind, name, body)
    except (UnicodeEncodeError, ValueError):
        # Lone surrogates cannot be UTF-8; over-long names are refused. Neither may slip through.
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in name + body) or len(name.encode("utf-8")) > 255
        return
    assert protocol.decode_inner(plaintext) == protocol.InnerMessage(kind, name, body)
