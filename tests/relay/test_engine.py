"""securex.relay.engine over real sockets on loopback: bad input answered and closed,
deadlines that cannot be dodged, flow control that slows a flooder instead of
evicting the members who read, a frozen member dropped, and a relay process that
loads no cryptography at all."""

from __future__ import annotations

import contextlib
import os
import re
from collections import deque
import signal
import socket
import threading
import time

from helpers import (WAIT, CoreClient, Process, RawConnection, close_reason, python_env, running_server,
                     wait_until)
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securex import protocol
from securex.protocol import CloseReason, FrameType
from securex.relay import engine
from securex.relay.engine import _drop_sent


def joined_raw(port: int) -> RawConnection:
    raw = RawConnection(port)
    raw.hello()
    raw.ready()
    return raw


def test_garbage_is_answered_with_a_protocol_error_and_closed():
    with running_server() as server:
        raw = RawConnection(server.port)
        raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert close_reason(raw.read_until_closed()) == CloseReason.PROTOCOL


def test_an_oversized_frame_is_refused_before_its_body_arrives():
    with running_server() as server:
        raw = RawConnection(server.port)
        raw.hello()
        raw.send((1 << 30).to_bytes(4, "big"))   # claims a gigabyte, sends nothing more
        assert close_reason(raw.read_until_closed()) == CloseReason.PROTOCOL


def test_a_client_of_another_version_is_told_to_update():
    with running_server() as server:
        raw = RawConnection(server.port)
        raw.read_until(FrameType.WELCOME)
        raw.send(protocol.encode_frame(FrameType.HELLO, b"\x01"))
        assert close_reason(raw.read_until_closed()) == CloseReason.VERSION


def test_a_connection_that_never_finishes_joining_is_dropped_and_leaves_the_roster():
    with running_server(handshake_timeout=1.0) as server:
        member = joined_raw(server.port)
        stalled = RawConnection(server.port)
        stalled.hello()                              # listed, but never ready
        assert close_reason(stalled.read_until_closed()) == CloseReason.HANDSHAKE_TIMEOUT
        while True:   # the member is told: a roster without it
            frame = member.read_until(FrameType.ROSTER)
            if len(protocol.parse_roster(frame, 5)) == 1:
                break


def test_trickling_a_byte_at_a_time_does_not_dodge_the_joining_deadline():
    with running_server(handshake_timeout=1.0) as server:
        raw = RawConnection(server.port)
        raw.hello()
        started = time.monotonic()
        ping = protocol.encode_frame(FrameType.PING)
        closed = False
        try:
            while time.monotonic() - started < 3 * 1.0 + WAIT:
                raw.send(ping[:1])
                raw.send(ping[1:])
                time.sleep(0.2)          # the trickle's pace, not a wait for an event
        except OSError:
            closed = True
        assert closed, "a connection trickling PINGs outlived its joining deadline"


def test_the_sixth_connection_is_refused_as_full():
    with running_server(max_clients=5, max_pending_per_address=8) as server:
        members = [joined_raw(server.port) for _ in range(5)]
        sixth = RawConnection(server.port)
        assert close_reason(sixth.read_until_closed()) == CloseReason.FULL
        for member in members:
            member.close()


def test_one_address_cannot_hold_more_than_its_joining_connections():
    with running_server(max_clients=8, max_pending_per_address=2) as server:
        joining = [RawConnection(server.port) for _ in range(2)]
        for raw in joining:
            raw.hello()
        third = RawConnection(server.port)
        assert close_reason(third.read_until_closed()) == CloseReason.BUSY
        joining[0].ready()
        wait_until(lambda: server.registry.pending_count == 1, "the first to finish joining")
        RawConnection(server.port).hello()   # now there is room again


def test_a_killed_client_leaves_the_room_within_seconds():
    with running_server() as server:
        alice = CoreClient(server.port, "Alice")
        alice.join()
        bob = Process(["client.py", "--cli", "--host", "127.0.0.1", "--port", str(server.port), "--name",
                       "Bob"], python_env(SECUREX_PASSPHRASE=alice.session.options.passphrase))
        bob.expect(r"\* Joined the room")
        alice.wait_members("Bob")
        bob.proc.send_signal(signal.SIGKILL)
        alice.wait_members()
        alice.close()


def test_a_member_sending_garbage_is_dropped_and_the_others_carry_on():
    with running_server() as server:
        alice, bob = CoreClient(server.port, "Alice"), CoreClient(server.port, "Bob")
        alice.join()
        bob.join()
        alice.wait_members("Bob")
        vandal = joined_raw(server.port)
        vandal.send(b"\x00\x00\x00\x05\x99junk")
        assert close_reason(vandal.read_until_closed()) == CloseReason.PROTOCOL
        alice.session.send_text("still fine")
        bob.wait_message("still fine")
        alice.close()
        bob.close()


def test_file_chunks_fanned_out_arrive_whole_and_in_order_however_the_sender_trickles_them():
    """The relay reads a large FANOUT in place and sends each member the same body as a
    view of it, beside a header of its own: nothing may be lost, mixed up or reordered,
    whether the chunk comes in one read or a hundred."""
    with running_server() as server:
        sender, bob, carol = (joined_raw(server.port) for _ in range(3))
        sender_id, bob_id, carol_id = (raw.welcome.your_id for raw in (sender, bob, carol))
        # Sent before the relay has taken Carol's STATUS, a chunk would rightly skip her.
        while not (len(roster := protocol.parse_roster(sender.read_until(FrameType.ROSTER), 16)) == 3
                   and all(entry.ready for entry in roster)):
            pass
        chunks = [os.urandom(100_000), os.urandom(70_000), os.urandom(100_000)]
        expected = {bob: [chunks[0], b"between", chunks[1], chunks[2]], carol: chunks}
        got: dict[RawConnection, list] = {bob: [], carol: []}

        def read(raw: RawConnection) -> None:     # both read all along, as members do
            while len(got[raw]) < len(expected[raw]):
                frame = raw.read_frame()
                if frame.type == FrameType.CLOSE:
                    got[raw].append(protocol.parse_close(frame))
                    return
                if frame.type == FrameType.ROUTED:
                    routed = protocol.parse_routed(frame)
                    got[raw].append(routed.body if routed.member_id == sender_id else routed.member_id)

        readers = [threading.Thread(target=read, args=(raw,), daemon=True) for raw in (bob, carol)]
        for reader in readers:
            reader.start()
        stream = (protocol.encode_fanout([bob_id, carol_id], chunks[0]) + protocol.encode_route(bob_id, b"between")
                  + protocol.encode_fanout([bob_id, carol_id], chunks[1])
                  + protocol.encode_fanout([carol_id, bob_id], chunks[2]))
        for start in range(0, len(stream), 997):
            sender.send(stream[start:start + 997])
        for reader in readers:
            reader.join(WAIT)
        assert got == expected


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.binary(max_size=50), max_size=8), sends=st.lists(st.integers(0, 60), max_size=10))
def test_what_is_left_after_a_partial_send_is_exactly_what_was_not_sent(pieces, sends):
    queue = deque(memoryview(piece) for piece in pieces if piece)
    left = b"".join(pieces)
    for sent in sends:
        sent = min(sent, len(left))
        _drop_sent(queue, sent)
        left = left[sent:]
        assert b"".join(queue) == left and all(queue)


def _reading(sock: socket.socket, count: int) -> bytes:
    """``count`` bytes from ``sock`` (more if they come in the same read), within WAIT
    in all: the writer's PINGs must not keep a short read waiting for ever."""
    got = b""
    deadline = time.monotonic() + WAIT
    while len(got) < count:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        more = sock.recv(65536)
        assert more, "closed early"
        got += more
        assert time.monotonic() < deadline, f"{len(got)} of {count} bytes within {WAIT:g} s"
    return got


@pytest.mark.parametrize("gather", [True, False], ids=["sendmsg", "no-sendmsg"])
def test_a_writer_sends_frames_in_pieces_whole_and_in_order_with_or_without_sendmsg(monkeypatch, gather):
    """Windows has no sendmsg: there a writer sends one piece at a time."""
    monkeypatch.setattr(engine, "_GATHER", gather)
    ours, theirs = socket.socketpair()
    conn = engine.Connection(ours, "local", "local", b"m" * 8, high_water=1 << 30, stall_timeout=WAIT)
    body = os.urandom(300_000)
    frames = [protocol.encode_frame(FrameType.PING), protocol.routed_pieces(b"s" * 8, memoryview(body)),
              protocol.encode_frame(FrameType.PING)]
    for frame in frames:
        conn.send(frame)
    expected = b"".join(f if isinstance(f, bytes) else b"".join(f) for f in frames)
    assert _reading(theirs, len(expected))[:len(expected)] == expected
    conn.close(CloseReason.SHUTDOWN, "bye")
    conn.wait_closed(WAIT)
    theirs.close()


def test_what_a_socket_does_not_take_at_once_is_left_to_the_writer_whole_and_in_order():
    """A frame for a connection with nothing queued is written from the routing thread;
    a socket with little room takes only part of it, and the writer sends the rest,
    before anything routed later. The reader gets every byte, in order."""
    ours, theirs = socket.socketpair()
    ours.settimeout(engine.POLL_SECONDS)            # as the handler sets it: non-blocking underneath
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)    # room for part of the first frame only
    conn = engine.Connection(ours, "local", "local", b"m" * 8, high_water=1 << 30, stall_timeout=WAIT)
    frames = [protocol.encode_frame(FrameType.ROUTED, os.urandom(engine.DIRECT_MAX_BYTES - 8)),
              *(protocol.encode_frame(FrameType.ROUTED, b"s" * 8 + b"text %d" % n) for n in range(20))]
    for frame in frames:
        conn.send(frame)
    expected = b"".join(frames)
    assert _reading(theirs, len(expected))[:len(expected)] == expected
    conn.close(CloseReason.SHUTDOWN, "bye")
    conn.wait_closed(WAIT)
    theirs.close()


def test_a_frame_never_cuts_into_one_the_writer_is_still_sending():
    """The writer is part-way through a large frame, waiting for the reader; meanwhile
    small frames arrive, each just after the reader made some room. Each must wait for
    the large one to finish instead of taking that room."""
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)    # the large frame goes in many pieces
    ours.settimeout(engine.POLL_SECONDS)
    conn = engine.Connection(ours, "local", "local", b"m" * 8, high_water=1 << 30, stall_timeout=WAIT)
    large = protocol.encode_frame(FrameType.ROUTED, os.urandom(1_000_000))
    small = [protocol.encode_frame(FrameType.ROUTED, b"s" * 8 + b"text %d" % n) for n in range(300)]
    conn.send(large)
    theirs.settimeout(WAIT)
    received = bytearray()
    for frame in small:
        received += theirs.recv(65536)
        conn.send(frame)
    expected = large + b"".join(small)
    received += _reading(theirs, len(expected) - len(received))
    assert bytes(received) == expected
    conn.close(CloseReason.SHUTDOWN, "bye")
    conn.wait_closed(WAIT)
    theirs.close()


def test_a_member_sent_frames_is_not_pinged_as_well(monkeypatch):
    """The relay PINGs after PING_SECONDS with nothing written: frames that went out
    without the writer thread count too (a reviewer's finding: they did not, and a busy
    member was PINGed every 5 s)."""
    monkeypatch.setattr(engine, "PING_SECONDS", 2.0)
    ours, theirs = socket.socketpair()
    ours.settimeout(engine.POLL_SECONDS)
    conn = engine.Connection(ours, "local", "local", b"m" * 8, high_water=1 << 30, stall_timeout=WAIT)
    frame = protocol.encode_frame(FrameType.ROUTED, b"s" * 8 + b"small text")
    for _ in range(3):
        time.sleep(0.25)       # a pace, far inside the writer's quiet time (even on a loaded machine)
        last_frame = time.monotonic()
        conn.send(frame)
    ping = protocol.encode_frame(FrameType.PING)
    assert _reading(theirs, 3 * len(frame) + len(ping))[:3 * len(frame) + len(ping)] == frame * 3 + ping
    assert time.monotonic() - last_frame >= 2.0      # 2 s after the last frame, not after the first
    conn.close(CloseReason.SHUTDOWN, "bye")
    conn.wait_closed(WAIT)
    theirs.close()


def test_a_member_whose_socket_is_full_never_holds_up_the_thread_routing_to_it():
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    filled = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            filled += ours.send(bytes(65536))
    ours.settimeout(60)      # far longer than this test waits: a write that waited for room would hang
    conn = engine.Connection(ours, "local", "local", b"m" * 8, high_water=1 << 30, stall_timeout=WAIT)
    frame = protocol.encode_frame(FrameType.ROUTED, b"s" * 8 + b"small text")
    routing = threading.Thread(target=lambda: [conn.send(frame) for _ in range(3)], daemon=True)
    routing.start()
    routing.join(WAIT)
    assert not routing.is_alive()
    queued_then_sent = _reading(theirs, filled + 3 * len(frame))[filled:filled + 3 * len(frame)]
    assert queued_then_sent == frame * 3
    conn.close(CloseReason.SHUTDOWN, "bye")
    conn.wait_closed(WAIT)
    theirs.close()


class _BrokenSocket:
    """A socket whose sending fails in a way no socket should (not an OSError)."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real

    def sendmsg(self, *args):
        raise ValueError("broken")

    send = sendmsg

    def gettimeout(self) -> None:     # blocking: everything goes through the writer, which fails
        return None

    def shutdown(self, how: int) -> None:
        self.real.shutdown(how)


def test_a_writer_that_fails_unexpectedly_still_closes_and_releases_whoever_waits_on_it():
    ours, theirs = socket.socketpair()
    conn = engine.Connection(_BrokenSocket(ours), "local", "local", b"m" * 8, high_water=10, stall_timeout=WAIT)
    conn.send(protocol.encode_frame(FrameType.ROUTED, b"s" * 8 + bytes(100)))   # over its high-water mark
    conn.wait_closed(WAIT)
    assert conn.closing
    waited = threading.Thread(target=conn.wait_until_caught_up, daemon=True)
    waited.start()
    waited.join(WAIT)
    assert not waited.is_alive()
    ours.close()
    theirs.close()


# -- flow control -------------------------------------------------------------------------

class SlowReader(threading.Thread):
    """A raw member that reads, but slowly: ``rate`` bytes a second."""

    def __init__(self, raw: RawConnection, rate: int) -> None:
        super().__init__(daemon=True)
        self.raw, self.rate = raw, rate
        self.routed: list[protocol.Routed] = []
        self.closed_with: CloseReason | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        decoder = protocol.FrameDecoder()
        self.raw.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                data = self.raw.sock.recv(self.rate // 10)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            for frame in decoder.feed(data):
                if frame.type == FrameType.ROUTED:
                    self.routed.append(protocol.parse_routed(frame))
                elif frame.type == FrameType.CLOSE:
                    self.closed_with = protocol.parse_close(frame)
            time.sleep(0.1)


def test_a_flooding_member_is_slowed_while_members_who_read_are_never_dropped():
    """Version 1 dropped the honest readers ("too slow") 18 times in 15 s while the
    flooder sent at will, and a third member's messages were lost."""
    with running_server(high_water=256 * 1024, stall_timeout=3.0) as server:
        readers = [SlowReader(joined_raw(server.port), rate=2_000_000) for _ in range(2)]
        flooder, talker = joined_raw(server.port), joined_raw(server.port)
        roster = []
        while len(roster) < 4:
            frame = talker.read_until(FrameType.ROSTER)
            roster = protocol.parse_roster(frame, 5)
        # Ids from each one's WELCOME, not places in the roster: the relay lists members in
        # the order their HELLOs were handled, which on a loaded machine is not the order sent.
        reader_ids = [reader.raw.welcome.your_id for reader in readers]
        for reader in readers:
            reader.start()
        flooding = threading.Event()
        flooding.set()

        def flood() -> None:
            body = b"\x10" + bytes(200_000)
            try:
                while flooding.is_set():
                    for reader_id in reader_ids:
                        flooder.send(protocol.encode_route(reader_id, body))
            except OSError:
                pass   # the test is over and the relay closed

        threading.Thread(target=flood, daemon=True).start()
        for n in range(150):
            for reader_id in reader_ids:
                talker.send(protocol.encode_route(reader_id, b"\x10" + n.to_bytes(4, "big")))
        talker_id = talker.welcome.your_id
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
                sum(r.member_id == talker_id for r in reader.routed) == 150 for reader in readers):
            time.sleep(0.1)
        flooding.clear()
        for reader in readers:
            got = [int.from_bytes(r.body[1:], "big") for r in reader.routed if r.member_id == talker_id]
            assert got == list(range(150)), "every one of the third member's messages, in order"
            assert reader.closed_with is None, "a member who reads is never dropped"
            reader.stop.set()


def test_a_frozen_member_is_dropped_and_stalls_the_others_only_briefly():
    with running_server(high_water=64 * 1024, stall_timeout=1.0) as server:
        frozen = joined_raw(server.port)
        reader = SlowReader(joined_raw(server.port), rate=50_000_000)
        sender = joined_raw(server.port)
        roster = []
        while len(roster) < 3:
            roster = protocol.parse_roster(sender.read_until(FrameType.ROSTER), 5)
        frozen_id, reader_id = frozen.welcome.your_id, reader.raw.welcome.your_id     # (not roster places)
        reader.start()
        body = b"\x10" + bytes(100_000)
        started = time.monotonic()
        for _ in range(60):          # 6 MB each: far past what the frozen member's buffers hold
            sender.send(protocol.encode_route(frozen_id, body))
            sender.send(protocol.encode_route(reader_id, body))
        wait_until(lambda: len(reader.routed) == 60 or reader.closed_with is not None,
                   "every frame to reach the member who reads", timeout=30)
        assert reader.closed_with is None and len(reader.routed) == 60
        assert time.monotonic() - started < 20
        wait_until(lambda: server.registry.member_count == 2, "the frozen member to be dropped")
        reader.stop.set()
        # It wakes up: what was in flight, then why it was dropped, promptly.
        woke = time.monotonic()
        assert close_reason(frozen.read_until_closed()) == CloseReason.TOO_SLOW
        assert time.monotonic() - woke < 5


# -- blind by construction -------------------------------------------------------------------

def test_the_relay_process_loads_no_cryptography_at_all():
    """The real server.py in a fresh interpreter, with a room chatting through it:
    ``-X importtime`` lists every module it ever imported."""
    process = Process(["-X", "importtime", "server.py", "--host", "127.0.0.1", "--port", "0"], python_env())
    try:
        port = int(process.expect(r"Secure X server on [\d.]+:(\d+)").group(1))
        alice, bob = CoreClient(port, "Alice"), CoreClient(port, "Bob")
        alice.join()
        bob.join()
        alice.session.send_text("through a blind relay")
        bob.wait_message("through a blind relay")
        alice.close()
        bob.close()
    finally:
        process.proc.send_signal(signal.SIGTERM)
        process.wait()
    imported = {m.group(1).strip() for line in process.errors
                if (m := re.search(r"import time:\s+\d+ \|\s+\d+ \|\s*(\S+)", line))}
    assert "securex.relay.engine" in imported
    forbidden = {name for name in imported
                 if name.split(".")[0] in ("Crypto", "Cryptodome", "cryptography", "crypto_utils", "ssl",
                                           "hashlib", "hmac", "_hashlib", "secrets")}
    assert not forbidden, f"the relay imported {sorted(forbidden)}"


def test_roster_updates_for_a_member_that_reads_slowly_replace_each_other():
    """Review finding: a stranger toggling its STATUS claims grew a slow reader's
    queue by a ROSTER each time (100 MiB in 8 s)."""
    from securex.relay.engine import Connection
    here, there = socket.socketpair()
    connection = Connection(here, "10.0.0.1", "test", b"i" * 8, high_water=1 << 20, stall_timeout=60)
    try:
        for n in range(100_000):
            connection.send_roster(protocol.encode_roster(
                [protocol.RosterEntry(b"i" * 8, True, n % 2 == 0)]))
        assert connection._unsent < 64 * 1024
    finally:
        connection.close(CloseReason.SHUTDOWN, "")
        there.close()
        here.close()
