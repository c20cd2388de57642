"""The relay's wire protocol (version 2): frames, frame types, limits, timings.

Shared by the relay and the client. It imports no cryptography: the relay
routes these frames and never sees inside the bodies members send each other
(``securex/session/peer_wire.py`` defines those).

Every frame on the TCP stream::

    +-------------------+-----------+----------------------+
    | length: u32, BE   | type: u8  | payload              |
    +-------------------+-----------+----------------------+

``length`` counts the type byte and the payload; it must be 1..MAX_FRAME_BYTES
and is checked as soon as the four length bytes arrive, before the body is read.

Frames (``id`` is a relay-chosen random 8-byte connection id; it means nothing
outside one connection)::

    S->C WELCOME   version:u8 | capacity:u8 | your_id:8 | relay_run:8
                   (the same length and first byte as version 1's CHALLENGE, so a
                   version-1 client reads "this server speaks version 2; update")
    C->S HELLO     version:u8                        (then the relay lists the newcomer)
    S->C ROSTER    count:u8 | (id:8 | flags:u8) * count   (everyone present, newest last)
                   flags: 1 = ready (finished joining), 2 = confirmed (verified by a member)
    C->S STATUS    flags:u8 | count:u8 | id:8 * count  (ready; whom I have verified)
    C->S ROUTE     to:8 | body                        the relay forwards the body unread
    S->C ROUTED    from:8 | body
    C->S FANOUT    count:u8 | to:8 * count | body     one body to several members (files)
    C->S LEAVE     (empty)                            the relay answers CLOSE goodbye
    both PING      (empty; after PING_SECONDS with nothing else to send)
    S->C CLOSE     reason:u8 | detail:utf-8           (then the relay closes)

The relay derives "confirmed" from STATUS claims that match in both directions
(A says it verified B and B says it verified A). It is a hint for the joining
client's passphrase verdict and nothing else: no security decision rests on it.
"""

from __future__ import annotations

import enum
import struct
import threading
from collections import deque
from dataclasses import dataclass

from securex.errors import ProtocolError

PROTOCOL_VERSION = 2
DEFAULT_PORT = 5050
DEFAULT_MAX_CLIENTS = 5
MAX_CLIENTS_LIMIT = 16           # a room is for a handful of people; bounds every roster
MAX_FRAME_BYTES = 1024 * 1024     # a file chunk (512 KiB) and its headers, with room to spare
ID_BYTES = 8
MAX_BODY_BYTES = MAX_FRAME_BYTES - 1 - 1 - ID_BYTES * MAX_CLIENTS_LIMIT   # fits a FANOUT to everyone

# Liveness, shared by both ends: each sends PING after PING_SECONDS with nothing
# else to send; the relay drops a member silent for SERVER_IDLE_TIMEOUT, a client
# declares the link lost after CLIENT_IDLE_TIMEOUT.
PING_SECONDS = 5.0
SERVER_IDLE_TIMEOUT = 20.0
CLIENT_IDLE_TIMEOUT = 15.0
HANDSHAKE_TIMEOUT = 20.0         # from connecting to STATUS ready

HEADER = struct.Struct(">IB")
READ_BYTES = 256 * 1024          # read from the socket at once, at most
LARGE_FRAME_BYTES = 64 * 1024    # a file chunk's frame this large is received in place (see FrameDecoder)
POOLED_BYTES = 8 * 1024 * 1024   # large frame buffers kept for reuse, at most
_LENGTH = struct.Struct(">I")


class FrameType(enum.IntEnum):
    WELCOME = 0x01
    HELLO = 0x02
    CLOSE = 0x04
    ROUTE = 0x10
    ROUTED = 0x11
    FANOUT = 0x12
    ROSTER = 0x20
    STATUS = 0x21
    LEAVE = 0x30
    PING = 0x31


class CloseReason(enum.IntEnum):
    """Why the relay closes a connection. Clients show their own words for each."""

    FULL = 1
    PROTOCOL = 3
    HANDSHAKE_TIMEOUT = 4
    TOO_SLOW = 5
    SHUTDOWN = 6
    BUSY = 7
    VERSION = 8
    IDLE = 9
    GOODBYE = 10


ROSTER_READY = 0x01
ROSTER_CONFIRMED = 0x02
STATUS_READY = 0x01

_FRAME_TYPES = {frame_type.value: frame_type for frame_type in FrameType}


# What a relay queues for a member: encoded frames, whole or as pieces sent in turn.
OutFrame = bytes | tuple[bytes | memoryview, ...]


def out_frame_bytes(frame: OutFrame) -> int:
    return len(frame) if isinstance(frame, bytes) else sum(len(piece) for piece in frame)


@dataclass(frozen=True)
class Frame:
    type: FrameType
    payload: bytes        # a bytearray for a large frame received in place (FrameDecoder)


def encode_frame(frame_type: FrameType, payload: bytes = b"") -> bytes:
    """One frame, ready for ``sendall``."""
    if len(payload) + 1 > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(payload) + 1} bytes is over the {MAX_FRAME_BYTES}-byte limit")
    return HEADER.pack(len(payload) + 1, frame_type) + payload


class FramePool:
    """Buffers of large frames handed back once their payload is used up (a file
    chunk, once opened), so the next large frame is received into memory already
    in use: a fresh half megabyte costs more in page faults than the AES on it.
    Thread-safe: the network thread takes, the file worker gives back. Holds at
    most ``limit_bytes``, the oldest given back going first (a file's odd-sized
    last chunk ages out instead of blocking the others)."""

    def __init__(self, limit_bytes: int = POOLED_BYTES) -> None:
        self._free: deque[bytearray] = deque()     # oldest first
        self._held = 0
        self._limit = limit_bytes
        self._lock = threading.Lock()

    def take(self, size: int) -> bytearray:
        """A buffer of ``size`` bytes, its contents whatever they were."""
        with self._lock:
            for at in range(len(self._free) - 1, -1, -1):     # a handful at most, newest first
                if len(self._free[at]) == size:
                    found = self._free[at]
                    del self._free[at]        # by place: remove() would take any equal bytearray
                    self._held -= size
                    return found
        return bytearray(size)

    def give_back(self, payload: bytes | bytearray | memoryview) -> None:
        """``payload`` (or a view into it) will not be read again by anyone."""
        buffer = payload.obj if isinstance(payload, memoryview) else payload
        if not isinstance(buffer, bytearray) or len(buffer) > self._limit:
            return
        with self._lock:
            self._free.append(buffer)
            self._held += len(buffer)
            while self._held > self._limit:
                self._held -= len(self._free.popleft())


class FrameDecoder:
    """Feed it bytes as they arrive; it returns whole frames.

    Handles frames split across reads and several frames in one read. Raises
    ProtocolError for a length of zero, a length over the limit (as soon as the
    four length bytes are in, before buffering the body) or an unknown type;
    after that the stream is unusable and the connection must be closed.

    Or let the socket write straight into it (asyncio's ``BufferedProtocol`` way):
    ``recv_into(get_buffer())``, then ``buffer_updated(count)``. A large frame of
    the ``in_place`` type (a file chunk: ROUTED to a client, FANOUT to the relay)
    is then received in place, into a buffer of its own that becomes its payload:
    no half-megabyte copies, no fresh memory per read. Its payload is a bytearray;
    ``routed_view`` and ``parse_fanout`` hand out member ids as bytes.
    """

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES, large_frame_bytes: int = LARGE_FRAME_BYTES,
                 pool: FramePool | None = None, in_place: FrameType = FrameType.ROUTED) -> None:
        self._buffer = bytearray()
        self._max = max_frame_bytes
        self._large_from = large_frame_bytes
        self._in_place = in_place      # the type received in place: ROUTED at a client, FANOUT at the relay
        self.pool = pool or FramePool()
        self._read_into = bytearray(READ_BYTES)
        self._large: bytearray | None = None    # the payload of the large frame being received in place
        self._large_filled = 0

    def get_buffer(self) -> memoryview:
        """Where the next bytes from the socket should go."""
        if self._large is not None:
            return memoryview(self._large)[self._large_filled:]
        return memoryview(self._read_into)

    def buffer_updated(self, count: int) -> list[Frame]:
        """``count`` bytes were written at the start of the last ``get_buffer()``."""
        if self._large is not None:
            self._large_filled += count
            return self._take_large()
        return self.feed(memoryview(self._read_into)[:count])

    def _take_large(self) -> list[Frame]:
        if self._large is None or self._large_filled < len(self._large):
            return []
        frame, self._large = Frame(self._in_place, self._large), None
        return [frame]

    def feed(self, data: bytes | memoryview) -> list[Frame]:
        data = memoryview(data)
        frames: list[Frame] = []
        if self._large is not None:
            taken = min(len(data), len(self._large) - self._large_filled)
            self._large[self._large_filled:self._large_filled + taken] = data[:taken]
            self._large_filled += taken
            data = data[taken:]
            frames += self._take_large()
            if self._large is not None:
                return frames
        self._buffer += data
        buffer, offset = self._buffer, 0
        view = memoryview(buffer)      # payloads copied once, not sliced then copied
        try:
            while len(buffer) - offset >= _LENGTH.size:
                (length,) = _LENGTH.unpack_from(buffer, offset)
                if not 1 <= length <= self._max:
                    raise ProtocolError(f"frame length {length} is outside 1..{self._max}")
                end = offset + _LENGTH.size + length
                if len(buffer) < end:
                    offset = self._start_large(view, offset, length)
                    break
                type_byte = buffer[offset + _LENGTH.size]
                frame_type = _FRAME_TYPES.get(type_byte)   # a dict lookup, not an Enum call
                if frame_type is None:
                    raise ProtocolError(f"unknown frame type 0x{type_byte:02x}")
                frames.append(Frame(frame_type, bytes(view[offset + HEADER.size:end])))
                offset = end
        finally:
            view.release()
            del buffer[:offset]
        return frames

    def _start_large(self, view: memoryview, offset: int, length: int) -> int:
        """A large frame of the in-place type only begun: move what came of it into a buffer of its own,
        to be received into from now on. Returns how much of the buffer was used."""
        # Only once that much of it has come: a peer announcing a large frame costs it
        # at least a sixteenth of the memory it makes us set aside.
        if length - 1 < self._large_from or len(view) - offset < HEADER.size + self._large_from \
                or view[offset + _LENGTH.size] != self._in_place:
            return offset
        payload = self.pool.take(length - 1)
        self._large_filled = len(view) - offset - HEADER.size
        payload[:self._large_filled] = view[offset + HEADER.size:]
        self._large = payload
        return len(view)

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished frame still buffered."""
        return len(self._buffer) + (self._large_filled if self._large is not None else 0)


def _expect_length(frame: Frame, size: int) -> None:
    if len(frame.payload) != size:
        raise ProtocolError(f"{frame.type.name} frame has {len(frame.payload)} payload bytes, expected {size}")


def _ids(payload: bytes, count: int, what: str) -> list[bytes]:
    if len(payload) != count * ID_BYTES:
        raise ProtocolError(f"{what} does not hold {count} ids")
    return [bytes(payload[i:i + ID_BYTES]) for i in range(0, len(payload), ID_BYTES)]


# -- joining -------------------------------------------------------------------

@dataclass(frozen=True)
class Welcome:
    version: int
    capacity: int
    your_id: bytes
    relay_run: bytes


def encode_welcome(capacity: int, your_id: bytes, relay_run: bytes) -> bytes:
    return encode_frame(FrameType.WELCOME, bytes([PROTOCOL_VERSION, capacity]) + your_id + relay_run)


def parse_welcome(frame: Frame) -> Welcome:
    """Only the version byte is read when the length is not this version's: a server
    of another version then gets a clear "update" message, not a protocol error."""
    if not frame.payload:
        raise ProtocolError("WELCOME frame without a version")
    version = frame.payload[0]
    if version != PROTOCOL_VERSION:
        return Welcome(version, 0, b"", b"")
    _expect_length(frame, 2 + 2 * ID_BYTES)
    p = frame.payload
    return Welcome(version, p[1], p[2:2 + ID_BYTES], p[2 + ID_BYTES:])


def encode_hello() -> bytes:
    return encode_frame(FrameType.HELLO, bytes([PROTOCOL_VERSION]))


def parse_hello(frame: Frame) -> int:
    """The client's protocol version."""
    if not frame.payload:
        raise ProtocolError("HELLO frame without a version")
    return frame.payload[0]


@dataclass(frozen=True)
class RosterEntry:
    member_id: bytes
    ready: bool
    confirmed: bool


def encode_roster(entries: list[RosterEntry]) -> bytes:
    body = b"".join(e.member_id + bytes([(ROSTER_READY if e.ready else 0)
                                         | (ROSTER_CONFIRMED if e.confirmed else 0)]) for e in entries)
    return encode_frame(FrameType.ROSTER, bytes([len(entries)]) + body)


def parse_roster(frame: Frame, capacity: int) -> list[RosterEntry]:
    """The relay's list of who is connected. More entries than the room's capacity,
    or an id listed twice, is a protocol error: a roster is bounded by construction."""
    p = frame.payload
    if not p:
        raise ProtocolError("ROSTER frame without a count")
    count = p[0]
    if count > capacity:
        raise ProtocolError(f"ROSTER lists {count} members in a room for {capacity}")
    _expect_length(frame, 1 + count * (ID_BYTES + 1))
    entries = []
    for i in range(count):
        start = 1 + i * (ID_BYTES + 1)
        flags = p[start + ID_BYTES]
        entries.append(RosterEntry(p[start:start + ID_BYTES], bool(flags & ROSTER_READY),
                                   bool(flags & ROSTER_CONFIRMED)))
    if len({e.member_id for e in entries}) != len(entries):
        raise ProtocolError("ROSTER lists a member twice")
    return entries


@dataclass(frozen=True)
class Status:
    ready: bool
    verified: list[bytes]


def encode_status(ready: bool, verified: list[bytes]) -> bytes:
    return encode_frame(FrameType.STATUS, bytes([STATUS_READY if ready else 0, len(verified)]) + b"".join(verified))


def parse_status(frame: Frame) -> Status:
    p = frame.payload
    if len(p) < 2:
        raise ProtocolError("STATUS frame too short")
    if p[1] > MAX_CLIENTS_LIMIT:
        raise ProtocolError("STATUS lists too many members")
    return Status(bool(p[0] & STATUS_READY), _ids(p[2:], p[1], "STATUS"))


def encode_close(reason: CloseReason, detail: str) -> bytes:
    return encode_frame(FrameType.CLOSE, bytes([reason]) + detail.encode("utf-8")[:1024])


def parse_close(frame: Frame) -> CloseReason | None:
    """The reason, or None if this version does not know it. The relay's own words
    (the detail) are deliberately not returned: clients show their own."""
    if not frame.payload:
        raise ProtocolError("CLOSE frame without a reason")
    try:
        return CloseReason(frame.payload[0])
    except ValueError:
        return None


# -- routing -------------------------------------------------------------------

def encode_route(to: bytes, body: bytes) -> bytes:
    return encode_frame(FrameType.ROUTE, to + body)


def encode_fanout(recipients: list[bytes], body: bytes) -> bytes:
    return fanout_header(recipients, len(body)) + body


def fanout_header(recipients: list[bytes], body_bytes: int) -> bytes:
    """A FANOUT frame up to its body, for a sender that sends the body as it is
    (a file chunk) rather than copy it into one frame."""
    payload_bytes = 1 + len(recipients) * ID_BYTES + body_bytes
    if payload_bytes + 1 > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {payload_bytes + 1} bytes is over the {MAX_FRAME_BYTES}-byte limit")
    return HEADER.pack(payload_bytes + 1, FrameType.FANOUT) + bytes([len(recipients)]) + b"".join(recipients)


@dataclass(frozen=True)
class Routed:
    """A body and the id of the member it is for (ROUTE) or from (ROUTED)."""
    member_id: bytes
    body: bytes | memoryview      # a view only from routed_view


def parse_routed(frame: Frame) -> Routed:
    """ROUTE (C->S) and ROUTED (S->C) share one layout: an id, then the body."""
    view = routed_view(frame)
    return Routed(view.member_id, bytes(view.body))


def routed_view(frame: Frame) -> Routed:
    """``parse_routed`` with the body a view into the frame: a file chunk is not copied."""
    if len(frame.payload) <= ID_BYTES:
        raise ProtocolError(f"{frame.type.name} frame too short")
    return Routed(bytes(frame.payload[:ID_BYTES]), memoryview(frame.payload)[ID_BYTES:])


def routed_from_route(sender: bytes, payload: bytes) -> bytes:
    """The relay's only transformation of a ROUTE: swap the recipient for the sender."""
    return encode_frame(FrameType.ROUTED, sender + payload[ID_BYTES:])


@dataclass(frozen=True)
class Fanout:
    recipients: list[bytes]
    body: bytes | memoryview      # a view into the frame: a file chunk is not copied


def parse_fanout(frame: Frame) -> Fanout:
    p = frame.payload
    if not p or p[0] == 0 or p[0] > MAX_CLIENTS_LIMIT:
        raise ProtocolError("FANOUT frame needs 1 to 16 recipients")
    end = 1 + p[0] * ID_BYTES
    if len(p) <= end:
        raise ProtocolError("FANOUT frame too short")
    recipients = _ids(p[1:end], p[0], "FANOUT")
    if len(set(recipients)) != len(recipients):
        raise ProtocolError("FANOUT names a recipient twice")
    return Fanout(recipients, memoryview(p)[end:])


def routed_pieces(sender: bytes, body: bytes | memoryview) -> tuple[bytes, bytes | memoryview]:
    """A ROUTED frame as its header and its body, for a relay that sends the body as
    it is (a file chunk, to each member it is fanned out to) rather than copy it."""
    if len(body) + 1 + ID_BYTES > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(body) + 1 + ID_BYTES} bytes is over the {MAX_FRAME_BYTES}-byte limit")
    return HEADER.pack(len(body) + 1 + ID_BYTES, FrameType.ROUTED) + sender, body
