"""What members send each other inside the relay's ROUTE bodies. Pure code over bytes.

The relay forwards these bodies unread. Every body starts with a kind byte::

    PAKE_A     0x01  nonce_a:16 | share_a:65                       newcomer -> member
    PAKE_B     0x02  nonce_b:16 | share_b:65 | confirm_b:32        member -> newcomer
    CONFIRM_A  0x03  confirm_a:32 | sealed identity (A->B key, counter 0)
    IDENTITY_B 0x04  sealed identity (B->A key, counter 0)
    REFUSE     0x05  reason:u8 | retry_after_ms:u32                 either way, unauthenticated
    RECORD     0x10  counter:u64 | sealed app message               a verified pair's channel
    BULK       0x11  file_id:16 | index:u64 | final:u8 | seal_no:u64 | sealed chunk   (files, fanned out)

The associated data of every sealed identity and record binds the protocol
version, the kind byte, both PAKE nonces and the counter::

    aad = "SX" | version:u8 | kind:u8 | nonce_a:16 | nonce_b:16 | counter:u64

An identity (sealed, so no observer learns who joined; the name is padded to a
fixed size so not even its length shows)::

    name_len:u8 | name:utf-8, zero-padded to 128 bytes | public_key:32 | signature:64 | run_id:16 | next_msg_no:u64

``signature`` is Ed25519 over ``crypto_utils.identity_proof_message`` (role and
transcript). ``run_id`` names this run of the sender's program; its messages
are numbered from 0 per run, and ``next_msg_no`` says where the new ones start.

App messages (the plaintext of a RECORD), by type byte::

    TEXT        0x01  msg_no:u64 | sent_at_ms:u64 | view_age_ms:u32 | view_n:u8 | tag:8 * view_n | text:utf-8
    ACK         0x02  run_id:16 | count:u8 | (first:u64 | last:u64) * count
    GOODBYE     0x03  next_msg_no:u64          "I am leaving; I sent you everything below this"
    KEEPALIVE   0x04  next_msg_no:u64 | view_age_ms:u32 | view_n:u8 | tag:8 * view_n
                                           every few idle seconds: withheld messages show up,
                                           and a room nobody talks in still has its views compared
    FAILED_JOIN 0x05  attempt:16 | run:16    a member saw a wrong guess (newcomer's nonce, its own)
    CAUGHT_UP   0x06  resent:u32               the backlog for you is all sent again
    FILE_OFFER  0x10  file_id:16 | size:u64 | chunk_size:u32 | digest:32 | key:32 | name_len:u8 | name:utf-8
    FILE_ACCEPT 0x11  file_id:16 | next_chunk:u64     accept, or resume from that chunk
    FILE_DECLINE 0x12 file_id:16
    FILE_CANCEL 0x13  file_id:16 | reason:u8          either side stops the transfer
    FILE_PROGRESS 0x14 file_id:16 | next_chunk:u64    the receiver has written and checked the chunks below
    FILE_DONE   0x15  file_id:16                      the receiver verified the whole file and saved it

A file travels once, sealed with its own key (``crypto_utils.seal_chunk``), in BULK
bodies the relay fans out to every member that accepted it; the key, the size, the
chunk size and the file's digest (RFC 6962 Merkle tree hash, SHA-256, a leaf per
chunk) travel only inside the offer, sealed for each member over its channel.

``view`` is the sender's room as it verified it (each member's tag, itself
included); ``view_age_ms`` how long that view has been unchanged.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from crypto_utils import (CONFIRM_BYTES, Bytes, IDENTITY_KEY_BYTES, MEMBER_TAG_BYTES, POINT_BYTES, SESSION_NONCE_BYTES,
                          SIGNATURE_BYTES, TAG_BYTES)
from securex.errors import ProtocolError
from securex.protocol import MAX_CLIENTS_LIMIT, PROTOCOL_VERSION
from securex.text import validate_name

MAX_TEXT_BYTES = 96 * 1024      # 16,000 four-byte emoji fit with room to spare
RUN_ID_BYTES = 16
MAX_ACK_RANGES = 32
NAME_FIELD_BYTES = 128          # 32 characters of up to 4 UTF-8 bytes each

_U64 = struct.Struct(">Q")
_REFUSE = struct.Struct(">BI")
_TEXT_HEADER = struct.Struct(">QQIB")
_KEEPALIVE_HEADER = struct.Struct(">QIB")
_RANGE = struct.Struct(">QQ")


class BodyKind(enum.IntEnum):
    PAKE_A = 0x01
    PAKE_B = 0x02
    CONFIRM_A = 0x03
    IDENTITY_B = 0x04
    REFUSE = 0x05
    RECORD = 0x10
    BULK = 0x11


class RefuseReason(enum.IntEnum):
    MISMATCH = 1      # the confirmation did not match: different passphrases
    BACKOFF = 2       # the room is refusing joins for a while after failed attempts
    DUPLICATE = 3     # we already have a run with you


class AppType(enum.IntEnum):
    TEXT = 0x01
    ACK = 0x02
    GOODBYE = 0x03
    KEEPALIVE = 0x04
    FAILED_JOIN = 0x05
    CAUGHT_UP = 0x06
    FILE_OFFER = 0x10
    FILE_ACCEPT = 0x11
    FILE_DECLINE = 0x12
    FILE_CANCEL = 0x13
    FILE_PROGRESS = 0x14
    FILE_DONE = 0x15


class CancelReason(enum.IntEnum):
    BY_USER = 1           # the sender or the receiver cancelled
    VERIFICATION = 2      # a chunk or the whole file failed its check
    WRITE_FAILED = 3      # the receiver could not write it (disk full...)
    READ_FAILED = 4       # the sender could not read it any more
    TOO_LARGE = 5         # over the receiver's limit
    TOO_MANY = 6          # the receiver has too many offers from this member open (or a clashing id)
    STALLED = 7           # nothing reached the receiver for STALLED_SECONDS
    NO_ROOM = 8           # the receiver's disk has less free space than the file's size


_BODY_KINDS = {kind.value: kind for kind in BodyKind}
_APP_TYPES = {kind.value: kind for kind in AppType}


def split_body(body: Bytes) -> tuple[BodyKind, Bytes]:
    """The kind byte and the rest. Given a view (``protocol.routed_view``), a file
    chunk stays a view, not a half-megabyte copy; everything else becomes bytes."""
    kind = _BODY_KINDS.get(body[0]) if body else None
    if kind is None:
        raise ProtocolError("unknown kind of peer message")
    return kind, body[1:] if kind == BodyKind.BULK else bytes(body[1:])


def channel_aad(kind: BodyKind, nonce_a: bytes, nonce_b: bytes, counter: int) -> bytes:
    return b"SX" + bytes([PROTOCOL_VERSION, kind]) + nonce_a + nonce_b + _U64.pack(counter)


# -- the handshake ---------------------------------------------------------------

def encode_pake_a(nonce_a: bytes, share_a: bytes) -> bytes:
    return bytes([BodyKind.PAKE_A]) + nonce_a + share_a


def parse_pake_a(payload: bytes) -> tuple[bytes, bytes]:
    if len(payload) != SESSION_NONCE_BYTES + POINT_BYTES:
        raise ProtocolError("PAKE_A of the wrong length")
    return payload[:SESSION_NONCE_BYTES], payload[SESSION_NONCE_BYTES:]


def encode_pake_b(nonce_b: bytes, share_b: bytes, confirm_b: bytes) -> bytes:
    return bytes([BodyKind.PAKE_B]) + nonce_b + share_b + confirm_b


def parse_pake_b(payload: bytes) -> tuple[bytes, bytes, bytes]:
    if len(payload) != SESSION_NONCE_BYTES + POINT_BYTES + CONFIRM_BYTES:
        raise ProtocolError("PAKE_B of the wrong length")
    share_end = SESSION_NONCE_BYTES + POINT_BYTES
    return payload[:SESSION_NONCE_BYTES], payload[SESSION_NONCE_BYTES:share_end], payload[share_end:]


def encode_confirm_a(confirm_a: bytes, sealed_identity: bytes) -> bytes:
    return bytes([BodyKind.CONFIRM_A]) + confirm_a + sealed_identity


def parse_confirm_a(payload: bytes) -> tuple[bytes, bytes]:
    if len(payload) < CONFIRM_BYTES + TAG_BYTES:
        raise ProtocolError("CONFIRM_A too short")
    return payload[:CONFIRM_BYTES], payload[CONFIRM_BYTES:]


def encode_identity_b(sealed_identity: bytes) -> bytes:
    return bytes([BodyKind.IDENTITY_B]) + sealed_identity


def encode_refuse(reason: RefuseReason, retry_after_ms: int = 0) -> bytes:
    return bytes([BodyKind.REFUSE]) + _REFUSE.pack(reason, min(retry_after_ms, 2**32 - 1))


def parse_refuse(payload: bytes) -> tuple[RefuseReason | None, int]:
    if len(payload) != _REFUSE.size:
        raise ProtocolError("REFUSE of the wrong length")
    reason, retry_after_ms = _REFUSE.unpack(payload)
    try:
        return RefuseReason(reason), retry_after_ms
    except ValueError:
        return None, retry_after_ms


@dataclass(frozen=True)
class Identity:
    """Who a peer says it is (believed only once the signature checks out)."""
    name: str
    public_key: bytes
    signature: bytes
    run_id: bytes
    next_msg_no: int


def encode_identity(identity: Identity) -> bytes:
    name = identity.name.encode("utf-8")
    if len(name) > NAME_FIELD_BYTES:
        raise ValueError("name too long")
    return (bytes([len(name)]) + name.ljust(NAME_FIELD_BYTES, b"\0") + identity.public_key + identity.signature
            + identity.run_id + _U64.pack(identity.next_msg_no))


def parse_identity(plaintext: bytes) -> Identity:
    """Raises ProtocolError for a malformed identity, or a name that breaks the rules
    a name must follow (the same rules as when typing one)."""
    expected = 1 + NAME_FIELD_BYTES + IDENTITY_KEY_BYTES + SIGNATURE_BYTES + RUN_ID_BYTES + _U64.size
    if len(plaintext) != expected or plaintext[0] > NAME_FIELD_BYTES:
        raise ProtocolError("identity of the wrong length")
    try:
        name = validate_name(plaintext[1:1 + plaintext[0]].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("identity with an unacceptable name") from None
    name_end = 1 + NAME_FIELD_BYTES
    key_end = name_end + IDENTITY_KEY_BYTES
    signature_end = key_end + SIGNATURE_BYTES
    run_end = signature_end + RUN_ID_BYTES
    return Identity(name, plaintext[name_end:key_end], plaintext[key_end:signature_end],
                    plaintext[signature_end:run_end], _U64.unpack_from(plaintext, run_end)[0])


# -- the channel ---------------------------------------------------------------------

_BULK = struct.Struct(">16sQBQ")


@dataclass(frozen=True)
class Bulk:
    """One sealed chunk of a file, as fanned out by the relay."""
    file_id: bytes
    index: int
    final: bool
    seal_no: int          # the chunk's GCM nonce counter: fresh for every sealing
    sealed: Bytes


BULK_HEADER_BYTES = 1 + _BULK.size


def bulk_header(file_id: bytes, index: int, final: bool, seal_no: int) -> bytes:
    """What comes before the sealed chunk in a BULK body (the sealing is written after it)."""
    return bytes([BodyKind.BULK]) + _BULK.pack(file_id, index, final, seal_no)


def encode_bulk(chunk: Bulk) -> bytes:
    return bulk_header(chunk.file_id, chunk.index, chunk.final, chunk.seal_no) + chunk.sealed


def parse_bulk(payload: Bytes) -> Bulk:
    if len(payload) < _BULK.size + TAG_BYTES:
        raise ProtocolError("BULK too short")
    file_id, index, final, seal_no = _BULK.unpack_from(payload)
    if final > 1:
        raise ProtocolError("BULK with a bad final flag")
    return Bulk(file_id, index, bool(final), seal_no, payload[_BULK.size:])


def encode_record(counter: int, sealed: bytes) -> bytes:
    return bytes([BodyKind.RECORD]) + _U64.pack(counter) + sealed


def parse_record(payload: bytes) -> tuple[int, bytes]:
    if len(payload) < _U64.size + TAG_BYTES:
        raise ProtocolError("RECORD too short")
    return _U64.unpack_from(payload)[0], payload[_U64.size:]


# -- app messages ----------------------------------------------------------------------

@dataclass(frozen=True)
class Text:
    msg_no: int
    sent_at_ms: int
    view_age_ms: int
    view: tuple[bytes, ...]
    text: str


@dataclass(frozen=True)
class Ack:
    run_id: bytes
    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Goodbye:
    next_msg_no: int


@dataclass(frozen=True)
class KeepAlive:
    next_msg_no: int
    view_age_ms: int = 0
    view: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class FailedJoin:
    attempt: bytes    # the newcomer's nonce (one per attempt to join)
    run: bytes        # the reporting member's nonce for that run (one per guess)


@dataclass(frozen=True)
class CaughtUp:
    resent: int


FILE_ID_BYTES = 16
_FILE_OFFER = struct.Struct(">16sQI32s32sB")
_FILE_POSITION = struct.Struct(">16sQ")
_FILE_CANCEL = struct.Struct(">16sB")


@dataclass(frozen=True)
class FileOffer:
    file_id: bytes
    size: int
    chunk_size: int
    digest: bytes = field(repr=False)
    key: bytes = field(repr=False)
    name: str


@dataclass(frozen=True)
class FileAccept:
    file_id: bytes
    next_chunk: int


@dataclass(frozen=True)
class FileDecline:
    file_id: bytes


@dataclass(frozen=True)
class FileCancel:
    file_id: bytes
    reason: int


@dataclass(frozen=True)
class FileProgress:
    file_id: bytes
    next_chunk: int


@dataclass(frozen=True)
class FileDone:
    file_id: bytes


FileMessage = FileOffer | FileAccept | FileDecline | FileCancel | FileProgress | FileDone
AppMessage = Text | Ack | Goodbye | KeepAlive | FailedJoin | CaughtUp | FileMessage


def encode_text(message: Text) -> bytes:
    body = message.text.encode("utf-8")
    if len(body) > MAX_TEXT_BYTES:
        raise ValueError(f"message is {len(body):,} bytes; the limit is {MAX_TEXT_BYTES:,}")
    return (bytes([AppType.TEXT]) + _TEXT_HEADER.pack(message.msg_no, message.sent_at_ms,
                                                      min(message.view_age_ms, 2**32 - 1), len(message.view))
            + b"".join(message.view) + body)


def encode_app(message: AppMessage) -> bytes:
    if isinstance(message, Text):
        return encode_text(message)
    if isinstance(message, Ack):
        ranges = message.ranges[:MAX_ACK_RANGES]
        return (bytes([AppType.ACK]) + message.run_id + bytes([len(ranges)])
                + b"".join(_RANGE.pack(first, last) for first, last in ranges))
    if isinstance(message, Goodbye):
        return bytes([AppType.GOODBYE]) + _U64.pack(message.next_msg_no)
    if isinstance(message, KeepAlive):
        return (bytes([AppType.KEEPALIVE]) + _KEEPALIVE_HEADER.pack(
            message.next_msg_no, min(message.view_age_ms, 2**32 - 1), len(message.view)) + b"".join(message.view))
    if isinstance(message, FailedJoin):
        return bytes([AppType.FAILED_JOIN]) + message.attempt + message.run
    if isinstance(message, CaughtUp):
        return bytes([AppType.CAUGHT_UP]) + struct.pack(">I", message.resent)
    if isinstance(message, FileOffer):
        name = message.name.encode("utf-8")[:255]
        return (bytes([AppType.FILE_OFFER]) + _FILE_OFFER.pack(message.file_id, message.size, message.chunk_size,
                                                                message.digest, message.key, len(name)) + name)
    if isinstance(message, (FileAccept, FileProgress)):
        kind = AppType.FILE_ACCEPT if isinstance(message, FileAccept) else AppType.FILE_PROGRESS
        return bytes([kind]) + _FILE_POSITION.pack(message.file_id, message.next_chunk)
    if isinstance(message, FileCancel):
        return bytes([AppType.FILE_CANCEL]) + _FILE_CANCEL.pack(message.file_id, message.reason)
    if isinstance(message, (FileDecline, FileDone)):
        kind = AppType.FILE_DECLINE if isinstance(message, FileDecline) else AppType.FILE_DONE
        return bytes([kind]) + message.file_id
    raise TypeError(f"not an app message: {message!r}")


def parse_app(plaintext: bytes) -> AppMessage:
    """Parse an authenticated plaintext. Raises ProtocolError if the member's client
    sent something malformed (authentic, but broken or hostile)."""
    kind = _APP_TYPES.get(plaintext[0]) if plaintext else None
    rest = plaintext[1:]
    try:
        if kind == AppType.TEXT:
            msg_no, sent_at_ms, view_age_ms, view_n = _TEXT_HEADER.unpack_from(rest)
            if view_n > MAX_CLIENTS_LIMIT:
                raise ValueError
            start = _TEXT_HEADER.size
            end = start + view_n * MEMBER_TAG_BYTES
            if len(rest) < end or len(rest) - end > MAX_TEXT_BYTES:
                raise ValueError
            view = tuple(rest[i:i + MEMBER_TAG_BYTES] for i in range(start, end, MEMBER_TAG_BYTES))
            return Text(msg_no, sent_at_ms, view_age_ms, view, rest[end:].decode("utf-8"))
        if kind == AppType.ACK:
            run_id, count = rest[:RUN_ID_BYTES], rest[RUN_ID_BYTES]
            if count > MAX_ACK_RANGES or len(rest) != RUN_ID_BYTES + 1 + count * _RANGE.size:
                raise ValueError
            ranges = tuple(_RANGE.unpack_from(rest, RUN_ID_BYTES + 1 + i * _RANGE.size) for i in range(count))
            if any(first > last for first, last in ranges):
                raise ValueError
            return Ack(run_id, ranges)
        if kind == AppType.GOODBYE:
            if len(rest) != _U64.size:
                raise ValueError
            return Goodbye(_U64.unpack(rest)[0])
        if kind == AppType.KEEPALIVE:
            next_msg_no, view_age_ms, view_n = _KEEPALIVE_HEADER.unpack_from(rest)
            if view_n > MAX_CLIENTS_LIMIT or len(rest) != _KEEPALIVE_HEADER.size + view_n * MEMBER_TAG_BYTES:
                raise ValueError
            start = _KEEPALIVE_HEADER.size
            return KeepAlive(next_msg_no, view_age_ms, tuple(rest[i:i + MEMBER_TAG_BYTES] for i in range(
                start, len(rest), MEMBER_TAG_BYTES)))
        if kind == AppType.FAILED_JOIN:
            if len(rest) != 2 * SESSION_NONCE_BYTES:
                raise ValueError
            return FailedJoin(rest[:SESSION_NONCE_BYTES], rest[SESSION_NONCE_BYTES:])
        if kind == AppType.CAUGHT_UP:
            if len(rest) != 4:
                raise ValueError
            return CaughtUp(struct.unpack(">I", rest)[0])
        if kind == AppType.FILE_OFFER:
            file_id, size, chunk_size, digest, key, name_len = _FILE_OFFER.unpack_from(rest)
            if len(rest) != _FILE_OFFER.size + name_len:
                raise ValueError
            return FileOffer(file_id, size, chunk_size, digest, key,
                             rest[_FILE_OFFER.size:].decode("utf-8", "replace"))
        if kind in (AppType.FILE_ACCEPT, AppType.FILE_PROGRESS):
            if len(rest) != _FILE_POSITION.size:
                raise ValueError
            file_id, next_chunk = _FILE_POSITION.unpack(rest)
            return (FileAccept if kind == AppType.FILE_ACCEPT else FileProgress)(file_id, next_chunk)
        if kind == AppType.FILE_CANCEL:
            if len(rest) != _FILE_CANCEL.size:
                raise ValueError
            return FileCancel(*_FILE_CANCEL.unpack(rest))
        if kind in (AppType.FILE_DECLINE, AppType.FILE_DONE):
            if len(rest) != FILE_ID_BYTES:
                raise ValueError
            return (FileDecline if kind == AppType.FILE_DECLINE else FileDone)(rest)
    except (struct.error, IndexError, ValueError):   # UnicodeDecodeError is a ValueError
        pass
    raise ProtocolError("a member sent a malformed message")
