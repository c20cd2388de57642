"""The Secure X wire protocol: frame layout, frame types, limits. Shared by both ends.

Every frame on the TCP stream::

    +-------------------+-----------+----------------------+
    | length: u32, BE   | type: u8  | payload              |
    +-------------------+-----------+----------------------+

``length`` counts the type byte and the payload; it must be 1..MAX_FRAME_BYTES
and is checked before any of the body is read or buffered.

Handshake (the server speaks first)::

    S->C CHALLENGE  version:u8 | max_members:u8 | room_salt:16
    C->S JOIN       version:u8 | session_id:8 | key_check:32
    S->C ACCEPTED   session_id:8 * n          (the members already in the room)
     or  CLOSE      reason:u8 | detail:utf-8  (then the server closes)

In the room::

    C->S MESSAGE    seq:u64 | ciphertext | tag:16
    S->C RELAYED    sender_session:8 | seq:u64 | ciphertext | tag:16
    S->C JOINED     session_id:8
    S->C LEFT       session_id:8
    C->S LEAVE      (empty)
    both PING       (empty; sent after a few idle seconds so a dead peer is noticed)
    S->C CLOSE      reason:u8 | detail:utf-8

The ciphertext is AES-256-GCM under the sender's session key with nonce
``0^32 || seq`` and associated data ``b"SX" | version | MESSAGE | sender_session | seq``.
Inside it (the server never sees this)::

    kind:u8 | name_len:u8 | name:utf-8 | body:utf-8

where kind is TEXT, HELLO (I just joined) or HERE (I was already here; sent
when someone joins so the newcomer learns names).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from securex.errors import ProtocolError

PROTOCOL_VERSION = 1
DEFAULT_PORT = 5050
DEFAULT_MAX_CLIENTS = 5

# Liveness, shared by both ends: each sends PING after PING_SECONDS with nothing
# else to send; the server drops a member silent for SERVER_IDLE_TIMEOUT, a client
# declares the link lost after CLIENT_IDLE_TIMEOUT.
PING_SECONDS = 5.0
SERVER_IDLE_TIMEOUT = 20.0
CLIENT_IDLE_TIMEOUT = 15.0

# Sizes on the wire (the relay needs them to check frames; crypto_utils uses the same).
SALT_BYTES = 16
SESSION_ID_BYTES = 8
KEY_BYTES = 32
TAG_BYTES = 16
MAX_FRAME_BYTES = 128 * 1024
MAX_TEXT_BYTES = 96 * 1024  # 16,000 four-byte emoji fit with room to spare
MAX_NAME_CHARS = 32
HEADER = struct.Struct(">IB")
_LENGTH = struct.Struct(">I")
_SEQ = struct.Struct(">Q")


class FrameType(enum.IntEnum):
    CHALLENGE = 0x01
    JOIN = 0x02
    ACCEPTED = 0x03
    CLOSE = 0x04
    MESSAGE = 0x10
    RELAYED = 0x11
    JOINED = 0x20
    LEFT = 0x21
    LEAVE = 0x30
    PING = 0x31


class CloseReason(enum.IntEnum):
    """Why the server closes a connection. The detail text is for people."""

    FULL = 1
    WRONG_PASSPHRASE = 2
    PROTOCOL = 3
    HANDSHAKE_TIMEOUT = 4
    TOO_SLOW = 5
    SHUTDOWN = 6
    BUSY = 7
    VERSION = 8
    IDLE = 9
    GOODBYE = 10


class InnerKind(enum.IntEnum):
    TEXT = 1
    HELLO = 2
    HERE = 3


_FRAME_TYPES = {frame_type.value: frame_type for frame_type in FrameType}


@dataclass(frozen=True)
class Frame:
    type: FrameType
    payload: bytes


def encode_frame(frame_type: FrameType, payload: bytes = b"") -> bytes:
    """One frame, ready for ``sendall``."""
    if len(payload) + 1 > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(payload) + 1} bytes is over the {MAX_FRAME_BYTES}-byte limit")
    return HEADER.pack(len(payload) + 1, frame_type) + payload


class FrameDecoder:
    """Feed it bytes as they arrive; it yields whole frames.

    Handles frames split across reads and several frames in one read. Raises
    ProtocolError for a length of zero, a length over the limit (as soon as the
    four length bytes are in, before buffering the body) or an unknown type;
    after that the stream is unusable and the connection must be closed.
    """

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_frame_bytes

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        buffer, offset, frames = self._buffer, 0, []
        try:
            while len(buffer) - offset >= _LENGTH.size:
                (length,) = _LENGTH.unpack_from(buffer, offset)
                if not 1 <= length <= self._max:
                    raise ProtocolError(f"frame length {length} is outside 1..{self._max}")
                end = offset + _LENGTH.size + length
                if len(buffer) < end:
                    break
                type_byte = buffer[offset + _LENGTH.size]
                frame_type = _FRAME_TYPES.get(type_byte)   # a dict lookup, not an Enum call
                if frame_type is None:
                    raise ProtocolError(f"unknown frame type 0x{type_byte:02x}")
                frames.append(Frame(frame_type, bytes(buffer[offset + HEADER.size:end])))
                offset = end
        finally:
            del buffer[:offset]
        return frames

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished frame still buffered."""
        return len(self._buffer)


def _expect_length(frame: Frame, size: int) -> None:
    if len(frame.payload) != size:
        raise ProtocolError(f"{frame.type.name} frame has {len(frame.payload)} payload bytes, expected {size}")


# -- handshake -------------------------------------------------------------

@dataclass(frozen=True)
class Challenge:
    version: int
    max_members: int
    room_salt: bytes


def encode_challenge(max_members: int, room_salt: bytes) -> bytes:
    return encode_frame(FrameType.CHALLENGE, bytes([PROTOCOL_VERSION, max_members]) + room_salt)


def parse_challenge(frame: Frame) -> Challenge:
    _expect_length(frame, 2 + SALT_BYTES)
    return Challenge(frame.payload[0], frame.payload[1], frame.payload[2:])


@dataclass(frozen=True)
class Join:
    version: int
    session_id: bytes
    key_check: bytes


def encode_join(session_id: bytes, key_check: bytes) -> bytes:
    return encode_frame(FrameType.JOIN, bytes([PROTOCOL_VERSION]) + session_id + key_check)


def parse_join(frame: Frame) -> Join:
    _expect_length(frame, 1 + SESSION_ID_BYTES + KEY_BYTES)
    p = frame.payload
    return Join(p[0], p[1:1 + SESSION_ID_BYTES], p[1 + SESSION_ID_BYTES:])


def encode_session_ids(frame_type: FrameType, session_ids: list[bytes]) -> bytes:
    """ACCEPTED (a list), JOINED and LEFT (one each)."""
    return encode_frame(frame_type, b"".join(session_ids))


def parse_session_ids(frame: Frame) -> list[bytes]:
    p = frame.payload
    if len(p) % SESSION_ID_BYTES:
        raise ProtocolError(f"{frame.type.name} frame is not a whole number of session ids")
    return [p[i:i + SESSION_ID_BYTES] for i in range(0, len(p), SESSION_ID_BYTES)]


def parse_session_id(frame: Frame) -> bytes:
    _expect_length(frame, SESSION_ID_BYTES)
    return frame.payload


def encode_close(reason: CloseReason, detail: str) -> bytes:
    return encode_frame(FrameType.CLOSE, bytes([reason]) + detail.encode("utf-8")[:1024])


def parse_close(frame: Frame) -> tuple[CloseReason | None, str]:
    """The reason (None if this version does not know it) and the server's words."""
    if not frame.payload:
        raise ProtocolError("CLOSE frame without a reason")
    try:
        reason: CloseReason | None = CloseReason(frame.payload[0])
    except ValueError:
        reason = None
    return reason, frame.payload[1:].decode("utf-8", "replace")


# -- messages --------------------------------------------------------------

def message_aad(sender_session: bytes, seq: int) -> bytes:
    """What the tag binds besides the text: version, frame type, sender and sequence."""
    return b"SX" + bytes([PROTOCOL_VERSION, FrameType.MESSAGE]) + sender_session + _SEQ.pack(seq)


def encode_message(seq: int, sealed: bytes) -> bytes:
    return encode_frame(FrameType.MESSAGE, _SEQ.pack(seq) + sealed)


def relayed_from_message(sender_session: bytes, message_payload: bytes) -> bytes:
    """The server's only transformation: stamp who sent it. It cannot read the rest."""
    return encode_frame(FrameType.RELAYED, sender_session + message_payload)


def check_message(frame: Frame) -> None:
    if len(frame.payload) < _SEQ.size + TAG_BYTES:
        raise ProtocolError("MESSAGE frame too short")


@dataclass(frozen=True)
class Relayed:
    sender_session: bytes
    seq: int
    sealed: bytes


def parse_relayed(frame: Frame) -> Relayed:
    p = frame.payload
    if len(p) < SESSION_ID_BYTES + _SEQ.size + TAG_BYTES:
        raise ProtocolError("RELAYED frame too short")
    (seq,) = _SEQ.unpack_from(p, SESSION_ID_BYTES)
    return Relayed(p[:SESSION_ID_BYTES], seq, p[SESSION_ID_BYTES + _SEQ.size:])


@dataclass(frozen=True)
class InnerMessage:
    kind: InnerKind
    name: str
    body: str


def encode_inner(kind: InnerKind, name: str, body: str = "") -> bytes:
    name_bytes = name.encode("utf-8")
    body_bytes = body.encode("utf-8")
    if len(name_bytes) > 255:
        raise ValueError("display name too long")
    if len(body_bytes) > MAX_TEXT_BYTES:
        raise ValueError(f"message is {len(body_bytes)} bytes; the limit is {MAX_TEXT_BYTES}")
    return bytes([kind, len(name_bytes)]) + name_bytes + body_bytes


def decode_inner(plaintext: bytes) -> InnerMessage:
    """Parse an authenticated plaintext. Raises ProtocolError if a member's client is broken."""
    try:
        kind = InnerKind(plaintext[0])
        name_end = 2 + plaintext[1]
        if len(plaintext) < name_end:
            raise ValueError
        return InnerMessage(kind, plaintext[2:name_end].decode("utf-8"),
                            plaintext[name_end:].decode("utf-8"))
    except (IndexError, ValueError):
        raise ProtocolError("a member sent a malformed message") from None
