"""A flooding member: one child process of the relay throughput runs (``bench_flood``).

It joins for real: a ``helpers.ScriptedMember`` is the client's RoomCore on a
socket, so the relay sees exactly what a client sends (HELLO, a SPAKE2 run and
identity proof with every member present, STATUS). Once the whole room is
verified it seals its texts, before any timing, as the client does: a TEXT app
message per text, sealed for each peer with its real pairwise channel, one
ROUTE frame per peer (see ``_seal``); it keeps a SHA-256 per recipient over
what it sealed.

On the start signal it sends them all, as fast as the relay takes them, while a
reader thread collects what arrives; it reports the monotonic time its last
frame arrived. Then it checks every frame: per sender, the record counters of
the flood (consecutive, each once) and a SHA-256 over their bytes, and every
``sample_every``-th record, and the last, is decrypted and authenticated with
the receiver's real channel and its number and text checked.

It talks to the parent over a pipe, one message per step, in order:
``joined`` (its id), ``verified``, ``ready`` (its digests), ``done`` (time),
``result`` (its checks), ``left``; or ``error`` at any point. The parent sends
``seal`` and ``leave``.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection

import bench_setup  # noqa: F401  (the project on sys.path)
import crypto_utils
from helpers import ScriptedMember
from securex import protocol
from securex.protocol import FrameType
from securex.session import peer_wire
from securex.session.peer_wire import BodyKind, Text

FLOOD_TIMEOUT = 120.0      # no member waits longer than this for a step
SEND_CHUNK = 256 * 1024
RECV_BYTES = 256 * 1024
PING_EVERY = 2.0           # while sealing, so the relay does not drop a silent member
SETTLED_VIEW_MS = 60_000   # the age of our view of the room the texts claim (a settled room)
_LENGTH = struct.Struct(">I")
_COUNTER = struct.Struct(">Q")
_HEADER = protocol.HEADER.size                 # length and type
_BODY_AT = _HEADER + protocol.ID_BYTES         # where a routed body starts in its frame


@dataclass(frozen=True)
class FloodPlan:
    members: int
    count: int          # texts each member sends (to each of its peers)
    text_size: int
    sample_every: int   # decrypt every n-th record of each sender


def text_for(name: str, msg_no: int, size: int) -> str:
    """Text number ``msg_no`` of a throughput run (here and in ``bench_members``)."""
    return f"{name}:{msg_no}:".ljust(size, "x")


def sequence_faults(numbers: list[int], count: int) -> tuple[int, int, int]:
    """(lost, duplicated, reordered) for the numbers one receiver got from one sender,
    in arrival order, when the sender sent ``count`` distinct, increasing numbers."""
    distinct = len(set(numbers))
    return (max(0, count - distinct), len(numbers) - distinct,
            sum(1 for a, b in itertools.pairwise(numbers) if b <= a))


def member_main(pipe: Connection, port: int, name: str, plan: FloodPlan, go) -> None:
    member = None
    try:
        member = ScriptedMember(port, name)
        member.join()
        pipe.send(("joined", member.core.my_id))
        member.pump(lambda: len(member.core.peers) == plan.members - 1, "every member verified", FLOOD_TIMEOUT)
        pipe.send(("verified", None))
        # Keep answering (rosters, pings) until everyone is verified: then the stream is quiet.
        member.pump(pipe.poll, "the signal to seal", FLOOD_TIMEOUT)
        pipe.recv()
        blob, frame_bytes, digests = _seal(member, plan)
        member.sock.settimeout(FLOOD_TIMEOUT)
        collector = _Collector(member.sock, frame_bytes, plan.count * (plan.members - 1))
        collector.start()
        pipe.send(("ready", digests))
        if not go.wait(FLOOD_TIMEOUT):
            raise TimeoutError("no signal to start")
        view = memoryview(blob)
        for start in range(0, len(view), SEND_CHUNK):
            member.sock.sendall(view[start:start + SEND_CHUNK])
        collector.join(FLOOD_TIMEOUT)
        if collector.done_at is None:
            raise RuntimeError(collector.error or "timed out collecting frames")
        pipe.send(("done", collector.done_at))
        pipe.send(("result", _check(member, collector.data, frame_bytes, plan)))
        pipe.recv()
        member.core.receive_data(collector.tail)   # the start of a frame that came after the flood
        member.core.leave()
        member.pump(lambda: member.core.outcome is not None, "the relay's goodbye")
        pipe.send(("left", None))
    except BaseException as error:
        pipe.send(("error", f"{name}: {type(error).__name__}: {error}"))
    finally:
        if member is not None:
            member.close()


def _seal(member: ScriptedMember, plan: FloodPlan) -> tuple[bytes, int, dict[bytes, bytes]]:
    """Every ROUTE frame of the flood; the size of one frame; and per recipient a
    SHA-256 over the bodies sealed for it.

    The frames are what ``RoomCore.send_text`` sends (a TEXT app message with its
    number, time and our view of the room, sealed for each peer with our real
    channel to it), made through the same encoders and channels but without the
    core's bookkeeping of its own messages (receipts, events), which the relay
    never sees and which would make sealing far slower than relaying."""
    core, out = member.core, bytearray()
    view = tuple(sorted({crypto_utils.member_tag(core.me.public_key)}
                        | {peer.verified.tag for peer in core.peers.values()}))
    digests = {peer_id: hashlib.sha256() for peer_id in core.peers}
    last_sent = time.monotonic()
    for msg_no in range(plan.count):
        plaintext = peer_wire.encode_text(Text(msg_no, int(time.time() * 1000), SETTLED_VIEW_MS, view,
                                               text_for(core.me.name, msg_no, plan.text_size)))
        for peer_id, peer in core.peers.items():
            body = peer.verified.channel.seal_record(plaintext)
            digests[peer_id].update(body)
            out += protocol.encode_route(peer_id, body)
        if time.monotonic() - last_sent > PING_EVERY:
            member.sock.sendall(protocol.encode_frame(FrameType.PING))
            last_sent = time.monotonic()
    frame_bytes = len(out) // (plan.count * len(core.peers))     # every field has a fixed size
    return bytes(out), frame_bytes, {peer_id: digest.digest() for peer_id, digest in digests.items()}


def _flood_frames(data: bytes, frame_bytes: int) -> tuple[list[int], int]:
    """Where each whole flood frame (a ROUTED record of the flood's size) in ``data``
    starts, and where the last whole frame of any kind ends."""
    starts, offset, end = [], 0, len(data)
    while offset + _HEADER <= end:
        frame_end = offset + _LENGTH.size + _LENGTH.unpack_from(data, offset)[0]
        if frame_end > end:
            break
        if (frame_end - offset == frame_bytes and data[offset + _LENGTH.size] == FrameType.ROUTED
                and data[offset + _BODY_AT] == BodyKind.RECORD):
            starts.append(offset)
        offset = frame_end
    return starts, offset


class _Collector(threading.Thread):
    """Reads until every flood frame has arrived; notes when."""

    def __init__(self, sock, frame_bytes: int, frames: int) -> None:
        super().__init__(daemon=True)
        self.sock, self.frame_bytes, self.frames = sock, frame_bytes, frames
        self.data, self.tail = b"", b""
        self.done_at: float | None = None
        self.error: str | None = None

    def run(self) -> None:
        chunks: list[bytes] = []
        received, wanted = 0, self.frames * self.frame_bytes
        try:
            while True:
                data = self.sock.recv(RECV_BYTES)
                if not data:
                    raise ConnectionError("the relay closed the connection")
                chunks.append(data)
                received += len(data)
                if received >= wanted:     # counting frames costs time: only once it can be done
                    self.data = b"".join(chunks)
                    chunks = [self.data]
                    starts, end = _flood_frames(self.data, self.frame_bytes)
                    count = len(starts)
                    if count >= self.frames:
                        self.done_at = time.monotonic()
                        self.tail = self.data[end:]
                        return
                    wanted = received + (self.frames - count) * self.frame_bytes
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"


def _check(member: ScriptedMember, data: bytes, frame_bytes: int, plan: FloodPlan) -> dict[bytes, dict]:
    """Per sender: the flood frames' counters and bytes, and a decrypted sample."""
    peers = member.core.peers
    counters: dict[bytes, list[int]] = {peer_id: [] for peer_id in peers}
    digests = {peer_id: hashlib.sha256() for peer_id in peers}
    decrypted = dict.fromkeys(peers, 0)
    failed = dict.fromkeys(peers, 0)
    view = memoryview(data)
    for start in _flood_frames(data, frame_bytes)[0]:
        sender = bytes(view[start + _HEADER:start + _BODY_AT])
        if sender not in counters:
            continue
        body = view[start + _BODY_AT:start + frame_bytes]
        index = len(counters[sender])
        counters[sender].append(_COUNTER.unpack_from(data, start + _BODY_AT + 1)[0])
        digests[sender].update(body)
        if index % plan.sample_every == 0 or index == plan.count - 1:
            ok = _opens(peers[sender], bytes(body[1:]), index, plan.text_size)
            decrypted[sender] += ok
            failed[sender] += not ok
    results = {}
    for sender, numbers in counters.items():
        lost, duplicated, reordered = sequence_faults(numbers, plan.count)
        results[sender] = {
            "lost": lost, "duplicated": duplicated, "reordered": reordered, "digest": digests[sender].digest(),
            "decrypted": decrypted[sender], "failed": failed[sender],
        }
    return results


def _opens(peer, record: bytes, msg_no: int, text_size: int) -> bool:
    """The record opens with this pair's channel and holds text number ``msg_no``."""
    try:
        message = peer_wire.parse_app(peer.verified.channel.open_record(record))
    except Exception:
        return False
    return (isinstance(message, Text) and message.msg_no == msg_no
            and message.text == text_for(peer.name, msg_no, text_size))
