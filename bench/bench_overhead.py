"""Per-message overhead in bytes: what a text of N bytes costs on the wire beyond N.

Measured, not computed: ``recipients + 1`` members (``bench_scripted``: the
client's RoomCore on a socket, all pumped by this thread) join a real relay
(``helpers.running_server``, in this process). One sends a text of N ASCII
bytes; the ROUTE frames its core hands to the socket are counted, then the bytes
one receiver reads until the ROUTED frame arrives, which that receiver's own core
must then open and show. Overhead per recipient = bytes per frame - N.

The breakdown comes from the product's own encoders and sizes (frame header,
routing id, record kind and counter, GCM tag, the TEXT header with the message
number, timestamp and view, one tag per member in the view) and must add up to
what was measured. Receipts are extra: each receiver answers each read with one
ACK record, measured the same way. TCP/IP headers are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import bench_setup  # noqa: F401  (the project on sys.path)
from bench_report import Report, size_label
from bench_scripted import scripted_room
from bench_settings import ROOM, Settings
from crypto_utils import MEMBER_TAG_BYTES, TAG_BYTES
from helpers import WAIT, ScriptedMember, frames_of, running_server
from securex import protocol
from securex.events import ChatMessage
from securex.protocol import FrameType
from securex.session import peer_wire
from securex.session.peer_wire import Text

TEXT_SIZE = 100


@dataclass
class Overhead:
    recipients: int
    sent_bytes: int          # every ROUTE frame the sender wrote
    sent_frames: int
    received_bytes: int      # the ROUTED frame one receiver read
    ack_bytes: int           # that receiver's receipt, on its way back

    @property
    def per_recipient(self) -> int:
        return self.received_bytes - TEXT_SIZE


def breakdown(recipients: int) -> list[tuple[str, int]]:
    """The parts of one routed text beyond its N bytes, from the product's encoders."""
    kind_and_counter = len(peer_wire.encode_record(0, b""))
    text_header = len(peer_wire.encode_text(Text(0, 0, 0, (), "")))
    return [("frame header (length, type)", protocol.HEADER.size), ("routing id", protocol.ID_BYTES),
            ("body kind", 1), ("record counter", kind_and_counter - 1), ("GCM tag", TAG_BYTES),
            ("app header (type 1, message number 8, timestamp 8, view age 4, view count 1)", text_header),
            (f"view tags ({recipients + 1} members x {MEMBER_TAG_BYTES})", (recipients + 1) * MEMBER_TAG_BYTES)]


def measure(recipients: int) -> Overhead:
    with running_server() as server, scripted_room(server.port, recipients + 1) as members:
        sender, receiver = members[0], members[1]
        text = "x" * TEXT_SIZE
        sender.core.send_text(text)
        sent = sender.core.data_to_send()
        routes = [frame for frame in frames_of(sent) if frame.type == FrameType.ROUTE]
        sender.sock.sendall(sent)
        received = _read_routed(receiver, sender.core.my_id)
        shown = [e for e in receiver.core.take_events() if isinstance(e, ChatMessage) and e.text == text]
        if not shown:
            raise RuntimeError("the receiver's core did not show the text")
        ack = receiver.core.data_to_send()
    return Overhead(recipients, len(sent), len(routes), received, len(ack))


def _read_routed(receiver: ScriptedMember, sender_id: bytes) -> int:
    """Read until the sender's ROUTED frame is in; hand everything read to the
    receiver's core; the size of that frame."""
    decoder, read = protocol.FrameDecoder(), bytearray()
    receiver.sock.settimeout(WAIT)
    while True:
        data = receiver.sock.recv(65536)
        if not data:
            raise ConnectionError("the relay closed the connection")
        read += data
        for frame in decoder.feed(data):
            if frame.type == FrameType.ROUTED and frame.payload.startswith(sender_id):
                receiver.core.receive_data(bytes(read))
                return protocol.HEADER.size + len(frame.payload)


def run_phase(report: Report, settings: Settings) -> None:
    report.section("overhead", f"bytes on the wire for one {size_label(TEXT_SIZE)} text beyond its "
                               f"{TEXT_SIZE} bytes (TCP/IP headers not counted)")
    for recipients in range(1, ROOM):
        result = measure(recipients)
        label = f"overhead {size_label(TEXT_SIZE)} text to {recipients} recipient{'s' if recipients > 1 else ''}"
        report.figure(f"{label}, from the sender", f"{result.sent_bytes:,} B in {result.sent_frames} ROUTE "
                                                  f"frame{'s' if result.sent_frames > 1 else ''} "
                                                  f"({result.sent_bytes - recipients * TEXT_SIZE:,} B beyond "
                                                  f"{recipients} x {TEXT_SIZE} B)")
        report.figure(f"{label}, to one receiver", f"{result.received_bytes} B in 1 ROUTED frame "
                                                   f"({result.per_recipient} B per recipient)")
        parts = breakdown(recipients)
        if sum(size for _, size in parts) != result.per_recipient or result.sent_frames != recipients:
            report.failure(label, f"the breakdown adds up to {sum(size for _, size in parts)} B, measured "
                                  f"{result.per_recipient} B in {result.sent_frames} frames")
        if recipients == ROOM - 1:
            report.figure(f"{label}, per recipient", " + ".join(f"{name} {size}" for name, size in parts)
                          + f" = {sum(size for _, size in parts)} B")
            report.figure(f"{label}, receipt", f"{result.ack_bytes} B back from each receiver (one ACK record "
                                               "to each member at most every 20 ms: a burst costs one)")
