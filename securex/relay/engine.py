"""The relay's socket engine: accepts connections, runs each handshake, and moves
frames between sockets and the room registry (``registry.py``), which holds the
room's logic and never touches a socket.

Each connection has two threads: the handler reads and dispatches frames; a
writer drains that connection's bounded outbox, joining everything queued into
one ``send`` per wake-up, so one slow member never blocks the others.

This module, like everything the relay process loads, imports no cryptography.
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

from securex import protocol
from securex.errors import ProtocolError, RoomFullError, WrongPassphraseError
from securex.protocol import (DEFAULT_MAX_CLIENTS, DEFAULT_PORT, PING_SECONDS, SALT_BYTES, SERVER_IDLE_TIMEOUT, CloseReason,
                              FrameType)
from securex.relay.registry import DuplicateSessionError, RoomRegistry

log = logging.getLogger("securex.server")

POLL_SECONDS = 0.5         # how often a blocked read or write looks at its deadlines
SHUTDOWN_LINGER = 2.0      # how long a closing connection may take to flush
SLOW_LINGER = 30.0         # a frozen member gets this long to wake and read why it was dropped


class Connection:
    """One client socket: the ``room.Member`` the registry talks to."""

    def __init__(self, sock: socket.socket, peer: str, max_queue_bytes: int) -> None:
        self.sock = sock
        self.peer = peer
        self.session_id = b""
        self._max_queue_bytes = max_queue_bytes
        self._cond = threading.Condition()
        self._outbox: deque[bytes] = deque()
        self._unsent = 0          # queued plus in-flight bytes; bounded by max_queue_bytes
        self._closing = False
        self._give_up_at: float | None = None
        self.close_reason: CloseReason | None = None
        self._writer = threading.Thread(target=self._write_loop, name=f"writer {peer}", daemon=True)
        self._writer.start()

    def send(self, frame: bytes) -> bool:
        with self._cond:
            if self._closing:
                return True
            if self._unsent and self._unsent + len(frame) > self._max_queue_bytes:
                return False
            self._outbox.append(frame)
            self._unsent += len(frame)
            if len(self._outbox) == 1:
                # The writer only waits on an empty outbox: wake it for the first
                # frame; later ones join the same batch without another notify.
                self._cond.notify()
            return True

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
                self._unsent -= sum(map(len, self._outbox))
                self._outbox.clear()
            self._outbox.append(protocol.encode_close(reason, detail))
            self._cond.notify()

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

    @property
    def closing(self) -> bool:
        with self._cond:
            return self._closing

    def _write_loop(self) -> None:
        flushed = False
        while True:
            with self._cond:
                idle = not self._outbox and not self._closing
                if idle and not self._cond.wait(PING_SECONDS) and not self._outbox:
                    ping = protocol.encode_frame(FrameType.PING)
                    self._outbox.append(ping)
                    self._unsent += len(ping)
                if not self._outbox:
                    if self._closing:
                        flushed = True
                        break
                    continue
                batch = b"".join(self._outbox)
                self._outbox.clear()
            if not self._send_all(batch):
                break
            with self._cond:
                self._unsent -= len(batch)
        # Flushed: FIN after the CLOSE; the reader stops by itself (it is closing) and
        # the handler drains the peer's input (see drain). Gave up: make the reader's
        # recv() return so the handler ends.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR if flushed else socket.SHUT_RDWR)

    def _send_all(self, batch: bytes) -> bool:
        view = memoryview(batch)
        while view:
            try:
                sent = self.sock.send(view)
            except TimeoutError:
                with self._cond:
                    give_up_at = self._give_up_at
                if give_up_at is not None and time.monotonic() > give_up_at:
                    return False
                continue
            except OSError:
                return False
            view = view[sent:]
        return True


class ConnectionHandler(socketserver.BaseRequestHandler):
    """Handshake, then relay frames, for one connection."""

    server: RelayServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(POLL_SECONDS)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = "{}:{}".format(*self.client_address[:2])
        registry = self.server.registry
        refusal = registry.begin_handshake()
        if refusal is not None:
            self._refuse_early(sock, peer, refusal)
            return
        conn = Connection(sock, peer, self.server.max_queue_bytes)
        in_handshake, admitted = True, False
        try:
            conn.send(protocol.encode_challenge(registry.max_members, registry.room_salt))
            admitted = self._read_handshake(conn)
            registry.end_handshake()
            in_handshake = False
            if admitted:
                log.info("member %s joined from %s (%d/%d)", conn.session_id[:4].hex(), peer,
                         registry.member_count, registry.max_members)
                self._relay_frames(conn)
        finally:
            if in_handshake:
                registry.end_handshake()
            registry.remove(conn)   # already done if the room dropped it as too slow
            conn.close(CloseReason.GOODBYE, "Goodbye.")  # no-op if already closing
            conn.wait_closed(SLOW_LINGER + 1)
            conn.drain()
            if admitted:
                log.info("member %s left (%s); %d/%d in the room", conn.session_id[:4].hex(),
                         conn.close_reason.name.lower() if conn.close_reason else "gone",
                         registry.member_count, registry.max_members)

    def _refuse_early(self, sock: socket.socket, peer: str, reason: CloseReason) -> None:
        detail = {CloseReason.FULL: "The room is full.",
                  CloseReason.BUSY: "The server is busy with other connections; try again.",
                  CloseReason.SHUTDOWN: "The server is shutting down."}[reason]
        log.info("refused %s: %s", peer, reason.name.lower())
        with contextlib.suppress(OSError):
            sock.sendall(protocol.encode_close(reason, detail))

    def _frames(self, conn: Connection, deadline: float | None):
        """Yield frames until EOF, an error, a closing connection or the deadline.
        Garbage, oversized frames and silence are answered with a CLOSE."""
        for frames in self._frame_batches(conn, deadline):
            yield from frames

    def _frame_batches(self, conn: Connection, deadline: float | None):
        """Like ``_frames``, but yields the list of whole frames each read brought."""
        decoder = FrameDecoderWithIdle(self.server.idle_timeout)
        while not conn.closing:
            # Checked on every pass, not only when a read times out: a peer that
            # trickles a byte or a PING now and then must not outstay the deadline.
            if deadline is not None and time.monotonic() > deadline:
                conn.close(CloseReason.HANDSHAKE_TIMEOUT, "You took too long to join.")
                return
            try:
                data = conn.sock.recv(65536)
            except TimeoutError:
                if decoder.idle_too_long():
                    conn.close(CloseReason.IDLE, "Nothing heard from you for too long.")
                    return
                continue
            except OSError:
                return
            if not data:
                return
            try:
                frames = decoder.feed(data)
            except ProtocolError as error:
                log.info("dropping %s: %s", conn.peer, error)
                conn.close(CloseReason.PROTOCOL, f"Protocol error: {error}")
                return
            if frames:
                yield frames

    def _read_handshake(self, conn: Connection) -> bool:
        deadline = time.monotonic() + self.server.handshake_timeout
        for frame in self._frames(conn, deadline):
            if frame.type == FrameType.PING:
                continue
            try:
                if frame.type != FrameType.JOIN:
                    raise ProtocolError(f"expected JOIN, got {frame.type.name}")
                join = protocol.parse_join(frame)
            except ProtocolError as error:
                conn.close(CloseReason.PROTOCOL, f"Protocol error: {error}")
                return False
            if join.version != protocol.PROTOCOL_VERSION:
                conn.close(CloseReason.VERSION, f"This server speaks protocol version "
                           f"{protocol.PROTOCOL_VERSION}; update Secure X.")
                return False
            conn.session_id = join.session_id
            try:
                self.server.registry.admit(conn, join.key_check)
            except RoomFullError:
                conn.close(CloseReason.FULL, "The room is full.")
                return False
            except WrongPassphraseError:
                log.info("refused %s: wrong passphrase", conn.peer)
                conn.close(CloseReason.WRONG_PASSPHRASE, "Wrong passphrase for this room.")
                return False
            except DuplicateSessionError:
                conn.close(CloseReason.PROTOCOL, "Session id already in use; reconnect.")
                return False
            return True
        return False

    def _relay_frames(self, conn: Connection) -> None:
        registry = self.server.registry
        for frames in self._frame_batches(conn, None):
            # The MESSAGE frames of one read are relayed together: one registry lock
            # and one queued chunk per member, not one of each per frame. Anything
            # else first flushes the messages before it, so the order is unchanged.
            payloads: list[bytes] = []
            for frame in frames:
                if frame.type == FrameType.MESSAGE:
                    try:
                        protocol.check_message(frame)
                    except ProtocolError as error:
                        registry.relay_many(conn, payloads)
                        conn.close(CloseReason.PROTOCOL, f"Protocol error: {error}")
                        return
                    payloads.append(frame.payload)
                    continue
                registry.relay_many(conn, payloads)
                payloads = []
                if frame.type == FrameType.LEAVE:
                    return
                if frame.type != FrameType.PING:
                    conn.close(CloseReason.PROTOCOL, f"Protocol error: unexpected {frame.type.name} frame")
                    return
            registry.relay_many(conn, payloads)


class FrameDecoderWithIdle(protocol.FrameDecoder):
    """A frame decoder that also remembers when it was last fed."""

    def __init__(self, idle_timeout: float) -> None:
        super().__init__()
        self._idle_timeout = idle_timeout
        self._last_heard = time.monotonic()

    def feed(self, data: bytes) -> list[protocol.Frame]:
        self._last_heard = time.monotonic()
        return super().feed(data)

    def idle_too_long(self) -> bool:
        return time.monotonic() - self._last_heard > self._idle_timeout


class RelayServer(socketserver.ThreadingTCPServer):
    """The listening socket plus the room. ``serve_forever`` in one thread;
    ``stop()`` from another tells every member and returns when all is closed."""

    allow_reuse_address = True   # restart on the same port at once
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, host: str = "0.0.0.0", port: int = DEFAULT_PORT, *,
                 max_clients: int = DEFAULT_MAX_CLIENTS, max_pending: int = 16,
                 handshake_timeout: float = 10.0, idle_timeout: float = SERVER_IDLE_TIMEOUT,
                 max_queue_bytes: int = 4 * 1024 * 1024) -> None:
        if not 1 <= max_clients <= 255:
            raise ValueError("max_clients must be 1..255")
        self.registry = RoomRegistry(max_clients, os.urandom(SALT_BYTES), max_pending)
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.max_queue_bytes = max_queue_bytes
        super().__init__((host, port), ConnectionHandler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def stop(self, detail: str = "The server is shutting down.") -> None:
        members = self.registry.close_all(CloseReason.SHUTDOWN, detail)
        self.shutdown()
        for member in members:
            member.wait_closed(SHUTDOWN_LINGER)
        self.server_close()
