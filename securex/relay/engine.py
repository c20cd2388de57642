"""The relay's socket engine: accepts connections and moves frames between sockets
and the room registry (``registry.py``), which holds the room's logic and never
touches a socket.

Each connection has two threads. Its handler reads frames and hands them to
the registry; its writer drains the connection's outbox, joining everything
queued into one ``send`` per wake-up. A small frame for a connection with
nothing queued skips the outbox: the routing thread writes it to the socket at
once (without waiting), which saves a thread switch per recipient of a text.

Flow control, so that nobody honest is evicted by a flood:

* A member's outbox has a high-water mark. When a sender's frames push a
  recipient past it, the sender's handler stops reading from the sender until
  that recipient has caught up (below the low-water mark). The sender's TCP
  window fills and its client slows down: back-pressure reaches the one who
  sends too much, not the ones who read.
* A member whose writer makes no progress at all for ``stall_timeout`` (it does
  not read: frozen, or its network is gone) is dropped with a reason, and
  everyone held back by it is released. Memory stays bounded by the high-water
  mark plus one frame per sender.

Like everything the relay process loads, this module imports no cryptography.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import socketserver
import threading
import time
from collections import deque
from collections.abc import Iterator

from securex import protocol
from securex.errors import ProtocolError
from securex.protocol import (DEFAULT_MAX_CLIENTS, DEFAULT_PORT, HANDSHAKE_TIMEOUT, ID_BYTES, MAX_CLIENTS_LIMIT,
                              PING_SECONDS, PROTOCOL_VERSION, SERVER_IDLE_TIMEOUT, CloseReason, FrameType, OutFrame,
                              out_frame_bytes)
from securex.relay.registry import RoomRegistry

log = logging.getLogger("securex.server")

POLL_SECONDS = 0.5         # how often a blocked read or write looks at its deadlines
SHUTDOWN_LINGER = 2.0      # how long a closing connection may take to flush
SLOW_LINGER = 30.0         # a frozen member gets this long to wake and read why it was dropped
DEFAULT_HIGH_WATER = 8 * 1024 * 1024     # above a file transfer's window (4 MiB), so files never hold a sender back
DEFAULT_STALL_TIMEOUT = 10.0
MAX_BATCH_BYTES = 256 * 1024   # one send's worth: what a dropped member still gets before its CLOSE
LARGE_PIECE_BYTES = 16 * 1024  # a piece this large is sent as it is, not copied to join the small ones
_GATHER = hasattr(socket.socket, "sendmsg")   # not on Windows: there, one piece per send
DIRECT_MAX_BYTES = 16 * 1024   # a frame up to this size may go out from the thread that routes it
_DIRECT = os.name == "posix"   # os.write on a socket's descriptor

# What the relay tells a connection it closes. Clients show their own wording for
# each reason; these are for anything else that connects (and for logs).
_CLOSE_DETAIL = {
    CloseReason.FULL: "The room is full.",
    CloseReason.BUSY: "Too many connections are joining at once; try again shortly.",
    CloseReason.SHUTDOWN: "The server is shutting down.",
    CloseReason.VERSION: f"This server speaks Secure X protocol version {PROTOCOL_VERSION}; update Secure X.",
    CloseReason.HANDSHAKE_TIMEOUT: "You took too long to join.",
    CloseReason.IDLE: "Nothing heard from you for too long.",
    CloseReason.TOO_SLOW: "Your connection stopped reading.",
    CloseReason.GOODBYE: "Goodbye.",
}


def _drop_sent(pieces: deque[memoryview], sent: int) -> None:
    """Take the first ``sent`` bytes off the front of ``pieces``."""
    while sent and pieces:
        if sent >= len(pieces[0]):
            sent -= len(pieces.popleft())
        else:
            pieces[0] = pieces[0][sent:]
            sent = 0


class Connection:
    """One client socket: the ``registry.Member`` the room talks to."""

    def __init__(self, sock: socket.socket, address: str, peer: str, member_id: bytes, *,
                 high_water: int, stall_timeout: float) -> None:
        self.sock = sock
        self.address = address
        self.peer = peer
        self.member_id = member_id
        self._high_water = high_water
        self._low_water = high_water // 2
        self._stall_timeout = stall_timeout
        self._cond = threading.Condition()
        self._outbox: deque[OutFrame] = deque()
        self._queued_roster: bytes | None = None   # a ROSTER still waiting at the end of the outbox
        self._unsent = 0              # queued plus in-flight bytes
        self._writing = False         # the writer holds a batch it has not finished sending
        self._last_write = time.monotonic()   # PING only after PING_SECONDS without a byte written
        # A socket with a timeout is non-blocking underneath (Python waits in poll() itself),
        # so os.write on its descriptor takes what fits and never waits.
        self._direct = _DIRECT and sock.gettimeout() is not None
        self._closing = False
        self._give_up_at: float | None = None
        self.close_reason: CloseReason | None = None
        self.said_goodbye = False     # it sent LEAVE (else it went without a word, if not closed by us)
        self._writer = threading.Thread(target=self._write_loop, name=f"writer {peer}", daemon=True)
        self._writer.start()

    # -- Member interface (any thread; never blocks) -------------------------------

    def send(self, frame: OutFrame) -> None:
        with self._cond:
            if self._closing:
                return
            if not self._outbox and not self._writing:
                left = self._write_now_locked(frame)
                if left is None:
                    return
                frame = left
            self._outbox.append(frame)
            self._unsent += out_frame_bytes(frame)
            if len(self._outbox) == 1:
                # The writer waits only on an empty outbox: wake it for the first
                # frame; later ones join the same batch without another notify.
                self._cond.notify_all()

    def _write_now_locked(self, frame: OutFrame) -> OutFrame | None:
        """Latency: a small frame for a connection with nothing queued goes to its socket
        from the routing thread at once, instead of waking this connection's writer (a
        thread switch per recipient of every text). Whatever the socket does not take
        at once, or any error, is returned for the writer, which handles both as usual.
        Called under the lock, with the writer idle, so the byte order is kept."""
        if not self._direct or out_frame_bytes(frame) > DIRECT_MAX_BYTES:
            return frame
        data = frame if isinstance(frame, bytes) else b"".join(frame)
        try:
            sent = os.write(self.sock.fileno(), data)
        except OSError:     # full (BlockingIOError) or failing: the writer's to handle
            return data
        if sent:
            self._last_write = time.monotonic()
        return data[sent:] or None

    def send_roster(self, frame: bytes) -> None:
        with self._cond:
            if self._closing:
                return
            if self._outbox and self._outbox[-1] is self._queued_roster:
                # Nothing was queued after it, so nothing can be reordered by replacing it.
                self._unsent -= out_frame_bytes(self._outbox.pop())
            self._outbox.append(frame)
            self._queued_roster = frame
            self._unsent += len(frame)
            if len(self._outbox) == 1:
                self._cond.notify_all()

    def close(self, reason: CloseReason, detail: str) -> None:
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self.close_reason = reason
            linger = SLOW_LINGER if reason == CloseReason.TOO_SLOW else SHUTDOWN_LINGER
            self._give_up_at = time.monotonic() + linger
            if reason == CloseReason.TOO_SLOW:
                # Drop what it has not started receiving, so the reason is next in line.
                self._unsent -= sum(map(out_frame_bytes, self._outbox))
                self._outbox.clear()
            self._outbox.append(protocol.encode_close(reason, detail))
            self._cond.notify_all()

    # -- flow control (called by other connections' handler threads) ----------------

    @property
    def backlogged(self) -> bool:
        return self._unsent > self._high_water

    def wait_until_caught_up(self) -> None:
        """Block the calling sender while this member is behind. Returns once it is
        below the low-water mark, or closing (dropped, or gone)."""
        with self._cond:
            if self._unsent <= self._high_water:
                return
            while self._unsent > self._low_water and not self._closing:
                self._cond.wait(POLL_SECONDS)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        with self._cond:
            return self._closing

    def wait_closed(self, timeout: float) -> None:
        self._writer.join(timeout)

    def drain(self) -> None:
        """Once the writer is done: read and discard until the peer hangs up or its
        linger time is over. Closing a socket with unread input makes the kernel
        reset the connection and throw away what is still queued for the peer,
        such as the CLOSE saying why it was dropped."""
        with self._cond:
            deadline = max(self._give_up_at or 0.0, time.monotonic() + POLL_SECONDS)
        while time.monotonic() < deadline:
            try:
                if not self.sock.recv(65536):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def _write_loop(self) -> None:
        flushed = False
        try:
            flushed = self._write_until_done()
        except Exception as error:   # never a dead writer with senders still waiting on it
            log.warning("dropping %s: sending to it failed (%s)", self.peer, error)
        finally:
            # Flushed: FIN after the CLOSE; the reader stops by itself (it is closing) and
            # the handler drains the peer's input (see drain). Gave up (or failed): make
            # the reader's recv() return so the handler ends.
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR if flushed else socket.SHUT_RDWR)
            with self._cond:
                self._closing = True
                self._cond.notify_all()   # release every sender waiting on us

    def _write_until_done(self) -> bool:
        """Send the outbox as it fills; True once everything up to the CLOSE is sent,
        False when the connection failed or gave up first."""
        while True:
            with self._cond:
                if not self._outbox and not self._closing:
                    # Frames written without this thread count as traffic too.
                    quiet = time.monotonic() - self._last_write
                    if quiet < PING_SECONDS:
                        self._cond.wait(PING_SECONDS - quiet)
                        continue
                    ping = protocol.encode_frame(FrameType.PING)
                    self._outbox.append(ping)
                    self._unsent += len(ping)
                if not self._outbox:
                    if self._closing:
                        return True
                    continue
                batch = self._take_batch_locked()
                self._writing = True
            if not self._send_all(batch):
                return False
            with self._cond:
                self._writing = False

    def _take_batch_locked(self) -> list[bytes | memoryview]:
        """Whole frames from the front of the outbox, up to about MAX_BATCH_BYTES, as
        pieces for one sendmsg: small frames joined, a large piece (a file chunk) as it is."""
        pieces: list[bytes | memoryview] = []
        small: list[bytes | memoryview] = []
        size = 0
        while self._outbox and (not size or size + out_frame_bytes(self._outbox[0]) <= MAX_BATCH_BYTES):
            frame = self._outbox.popleft()
            size += out_frame_bytes(frame)
            for piece in (frame,) if isinstance(frame, bytes) else frame:
                if len(piece) >= LARGE_PIECE_BYTES:
                    pieces += [b"".join(small), piece] if small else [piece]
                    small = []
                else:
                    small.append(piece)
        return [*pieces, b"".join(small)] if small else pieces

    def _send_all(self, batch: list[bytes | memoryview]) -> bool:
        pieces = deque(memoryview(piece) for piece in batch if piece)
        last_progress = time.monotonic()
        while pieces:
            try:
                sent = self.sock.sendmsg(pieces) if _GATHER else self.sock.send(pieces[0])
            except TimeoutError:
                now = time.monotonic()
                with self._cond:
                    give_up_at, closing = self._give_up_at, self._closing
                if give_up_at is not None and now > give_up_at:
                    return False
                if not closing and now - last_progress > self._stall_timeout:
                    # It has not read a byte for that long: frozen or gone. Tell it
                    # why (it may wake up) and free everyone waiting on it.
                    # The rest of this batch still goes first (a half-sent frame
                    # would garble the stream), all within SLOW_LINGER.
                    log.info("dropping %s: it stopped reading", self.peer)
                    self.close(CloseReason.TOO_SLOW, _CLOSE_DETAIL[CloseReason.TOO_SLOW])
                continue
            except OSError:
                return False
            _drop_sent(pieces, sent)
            last_progress = time.monotonic()
            with self._cond:
                self._last_write = last_progress
                self._unsent -= sent
                if self._unsent <= self._low_water:
                    self._cond.notify_all()
        return True


class ConnectionHandler(socketserver.BaseRequestHandler):
    """One connection from accept to close."""

    server: RelayServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(POLL_SECONDS)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        address = str(self.client_address[0])
        peer = "{}:{}".format(*self.client_address[:2])
        registry = self.server.registry
        refusal, member_id = registry.reserve(address)
        if refusal is not None:
            log.info("refused %s: %s", peer, refusal.name.lower())
            with contextlib.suppress(OSError):
                sock.sendall(protocol.encode_close(refusal, _CLOSE_DETAIL[refusal]))
            return
        conn = Connection(sock, address, peer, member_id, high_water=self.server.high_water,
                          stall_timeout=self.server.stall_timeout)
        admitted = False
        try:
            conn.send(protocol.encode_welcome(registry.capacity, member_id, self.server.relay_run))
            frames = self._frames(conn, time.monotonic() + self.server.handshake_timeout)
            admitted, rest = self._read_hello(conn, frames)
            if admitted:
                # Not "joined": whether it knows the passphrase is for the members to find out.
                log.info("connection %s from %s took a place (%d/%d)", member_id[:4].hex(), peer,
                         registry.member_count, registry.capacity)
                if self._dispatch(conn, rest):    # what came in the same read as HELLO
                    self._relay(conn, frames)
        finally:
            closed_by_us = conn.close_reason
            remaining = 0
            if admitted:
                registry.remove(conn)
                remaining = registry.member_count    # now: others may leave while this one lingers
            else:
                registry.release(conn)
            conn.close(CloseReason.GOODBYE, _CLOSE_DETAIL[CloseReason.GOODBYE])  # no-op if closing
            conn.wait_closed(SLOW_LINGER + 1)
            conn.drain()
            if admitted:
                self._log_departure(conn, closed_by_us, remaining)

    def _log_departure(self, conn: Connection, closed_by_us: CloseReason | None, remaining: int) -> None:
        """One line per member gone: how (said goodbye, dropped, or closed by the relay, and
        why), and how many were left in the room when it went."""
        capacity = self.server.registry.capacity
        who = conn.member_id[:4].hex()
        if closed_by_us == CloseReason.SHUTDOWN:
            log.info("connection %s closed: the server is shutting down", who)
        elif closed_by_us is not None and not conn.said_goodbye:
            log.info("connection %s closed by the relay (%s); %d/%d in the room", who, closed_by_us.name.lower(),
                     remaining, capacity)
        else:
            how = "left (goodbye)" if conn.said_goodbye else "dropped (no goodbye)"
            log.info("connection %s %s; %d/%d in the room", who, how, remaining, capacity)

    def _frames(self, conn: Connection, ready_by: float) -> Iterator[list[protocol.Frame]]:
        """Yield the whole frames each read brings, until EOF, an error, a closing
        connection, silence or the joining deadline. Garbage, oversized frames and
        silence are answered with a CLOSE."""
        # A file chunk (FANOUT) is read straight into a buffer of its own and fanned out
        # as a view of it: the relay copies none of it.
        decoder = protocol.FrameDecoder(in_place=FrameType.FANOUT)
        registry = self.server.registry
        last_heard = time.monotonic()
        while not conn.closing:
            now = time.monotonic()
            # Checked on every pass, not only when a read times out: a peer that
            # trickles a byte or a PING now and then must not outstay the deadline.
            if now > ready_by and not registry.is_ready(conn):
                self._close(conn, CloseReason.HANDSHAKE_TIMEOUT)
                return
            try:
                count = conn.sock.recv_into(decoder.get_buffer())
            except TimeoutError:
                if time.monotonic() - last_heard > self.server.idle_timeout:
                    self._close(conn, CloseReason.IDLE)
                    return
                continue
            except OSError:
                return
            if not count:
                return
            last_heard = time.monotonic()
            try:
                frames = decoder.buffer_updated(count)
            except ProtocolError as error:
                self._protocol_error(conn, error)
                return
            if frames:
                yield frames

    def _read_hello(self, conn: Connection,
                    batches: Iterator[list[protocol.Frame]]) -> tuple[bool, list[protocol.Frame]]:
        """Wait for HELLO and admit the connection: (admitted, the frames after HELLO
        in the same read, for the caller to dispatch)."""
        for frames in batches:
            for index, frame in enumerate(frames):
                if frame.type == FrameType.PING:
                    continue
                try:
                    if frame.type != FrameType.HELLO:
                        raise ProtocolError(f"expected HELLO, got {frame.type.name}")
                    version = protocol.parse_hello(frame)
                except ProtocolError as error:
                    self._protocol_error(conn, error)
                    return False, []
                if version != PROTOCOL_VERSION:
                    self._close(conn, CloseReason.VERSION)
                    return False, []
                if not self.server.registry.admit(conn):
                    self._close(conn, CloseReason.SHUTDOWN)
                    return False, []
                return True, frames[index + 1:]
        return False, []

    def _relay(self, conn: Connection, batches: Iterator[list[protocol.Frame]]) -> None:
        for frames in batches:
            if not self._dispatch(conn, frames):
                return

    def _dispatch(self, conn: Connection, frames: list[protocol.Frame]) -> bool:
        """Handle one read's frames; False once the connection is to end."""
        registry = self.server.registry
        behind: set[Connection] = set()
        routes: list[bytes] = []     # ROUTEs in a row go together: one lock, one queued chunk per member
        try:
            for frame in frames:
                if frame.type == FrameType.ROUTE:
                    if len(frame.payload) <= ID_BYTES:
                        raise ProtocolError("ROUTE frame too short")
                    routes.append(frame.payload)
                    continue
                if routes:
                    behind.update(registry.route_many(conn, routes))
                    routes = []
                if frame.type == FrameType.FANOUT:      # never back-pressured: the registry skips members behind
                    registry.fan_out(conn, protocol.parse_fanout(frame))
                elif frame.type == FrameType.STATUS:
                    registry.set_status(conn, protocol.parse_status(frame))
                elif frame.type == FrameType.LEAVE:
                    conn.said_goodbye = True
                    return False
                elif frame.type != FrameType.PING:
                    raise ProtocolError(f"unexpected {frame.type.name} frame")
            if routes:
                behind.update(registry.route_many(conn, routes))
        except ProtocolError as error:
            self._protocol_error(conn, error)
            return False
        finally:
            # Back-pressure: read nothing more from this sender until everyone it
            # just sent to has caught up (or has been dropped for not reading).
            for target in behind:
                target.wait_until_caught_up()
        return True

    def _close(self, conn: Connection, reason: CloseReason) -> None:
        conn.close(reason, _CLOSE_DETAIL[reason])

    def _protocol_error(self, conn: Connection, error: ProtocolError) -> None:
        log.info("dropping %s: %s", conn.peer, error)
        conn.close(CloseReason.PROTOCOL, f"Protocol error: {error}")


class RelayServer(socketserver.ThreadingTCPServer):
    """The listening socket plus the room. ``serve_forever`` in one thread;
    ``stop()`` from another tells every member and returns when all is closed."""

    allow_reuse_address = True   # restart on the same port at once
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, host: str = "0.0.0.0", port: int = DEFAULT_PORT, *,
                 max_clients: int = DEFAULT_MAX_CLIENTS, max_pending: int = 8,
                 max_pending_per_address: int = 3, handshake_timeout: float = HANDSHAKE_TIMEOUT,
                 idle_timeout: float = SERVER_IDLE_TIMEOUT, high_water: int = DEFAULT_HIGH_WATER,
                 stall_timeout: float = DEFAULT_STALL_TIMEOUT) -> None:
        if not 1 <= max_clients <= MAX_CLIENTS_LIMIT:
            raise ValueError(f"max_clients must be 1..{MAX_CLIENTS_LIMIT}")
        self.registry = RoomRegistry(max_clients, max_pending=max_pending,
                                     max_pending_per_address=max_pending_per_address,
                                     new_id=lambda: os.urandom(ID_BYTES))
        self.relay_run = os.urandom(ID_BYTES)
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.high_water = high_water
        self.stall_timeout = stall_timeout
        super().__init__((host, port), ConnectionHandler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def stop(self) -> None:
        members = self.registry.close_all(CloseReason.SHUTDOWN, _CLOSE_DETAIL[CloseReason.SHUTDOWN])
        self.shutdown()
        for member in members:
            member.wait_closed(SHUTDOWN_LINGER)
        self.server_close()
