"""The client core, shared by the desktop and terminal front ends. No GUI here.

``ChatSession.start()`` runs a network thread that connects, does the
handshake, receives, verifies and decrypts, and reconnects with back-off when
the link drops. A second thread per link owns sending: it seals each message
with this session's key and counter and writes it. Front ends call
``send_text``/``leave``/``reconnect_now`` (which only queue work, never touch a
socket) and read ``Event`` objects from the queue they passed in.

Every incoming message is checked before it is shown: it must come from a
session the server announced, carry a sequence number above the last one seen
from that sender (replay and reordering are dropped), and authenticate under
that sender's key. Skipped sequence numbers are reported as lost messages.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import socket
import threading
import time
from dataclasses import dataclass

from securex import protocol
from securex.events import (
    ChatMessage, Closed, Connected, ConnectionLost, Event, MemberJoined, MemberLeft, MembersChanged, Notice,
    Reconnecting, display_safe, validate_name)
from crypto_utils import (CIPHER_NAME, SCRYPT_N, RandBytes, RoomKeys, derive_room_keys,
                          new_session_id, open_sealed, seal, sender_key)
from securex.errors import (ConnectionLostError, DecryptionError, ProtocolError, RefusedError,
                    RoomFullError, SecureXError, ServerUnreachableError, WrongPassphraseError)
from securex.protocol import CLIENT_IDLE_TIMEOUT, PING_SECONDS, CloseReason, FrameType, InnerKind

POLL_SECONDS = 0.5
MAX_BACKOFF = 30.0
QUIT_COMMANDS = frozenset({"<quit>", "{quit}", "/quit"})


# -- per-link state -----------------------------------------------------------

@dataclass
class _Peer:
    key: bytes
    joined_after_us: bool   # then its first message must be number 0
    present: bool = True
    name: str | None = None
    last_seq: int | None = None

    @property
    def label(self) -> str:
        return self.name or "a member"

    def expected_seq(self, arriving: int) -> int:
        """The sequence number due next. A member who was here before us spoke
        before we could listen, so its first message we see sets the base."""
        if self.last_seq is not None:
            return self.last_seq + 1
        return 0 if self.joined_after_us else arriving


class _Outcome(Exception):
    """How a link ended: ``kind`` is left, shutdown, lost or fatal."""

    def __init__(self, kind: str, message: str, error: SecureXError | None = None) -> None:
        super().__init__(message)
        if kind == "lost" and error is None:   # a lost link is an error however it was noticed (exit 5)
            error = ConnectionLostError(message)
        self.kind, self.message, self.error = kind, message, error


class _Link:
    """One TCP connection that has joined the room."""

    def __init__(self, sock: socket.socket, decoder: protocol.FrameDecoder, keys: RoomKeys,
                 session_id: bytes, capacity: int) -> None:
        self.sock = sock
        self.decoder = decoder
        self.keys = keys
        self.session_id = session_id
        self.capacity = capacity
        self.outbox: queue.Queue[tuple] = queue.Queue()
        self.peers: dict[bytes, _Peer] = {}            # receiver thread only
        self.leftover: list[protocol.Frame] = []       # frames that came in with ACCEPTED
        self.leave_sent = threading.Event()            # set by the sender thread


class ChatSession:
    def __init__(self, host: str, port: int, name: str, passphrase: str,
                 events: queue.Queue[Event], *, auto_reconnect: bool = True,
                 reconnect_after_shutdown: bool = False, connect_timeout: float = 5.0,
                 idle_timeout: float = CLIENT_IDLE_TIMEOUT, scrypt_n: int = SCRYPT_N,
                 randbytes: RandBytes = os.urandom) -> None:
        self.host, self.port = host, port
        self.name = validate_name(name)
        self.server = f"{host}:{port}"
        self._passphrase = passphrase
        self._events = events
        self._auto_reconnect = auto_reconnect
        self._reconnect_after_shutdown = reconnect_after_shutdown
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._scrypt_n = scrypt_n
        self._randbytes = randbytes
        self._keys_cache: tuple[bytes, RoomKeys] | None = None   # network thread only
        self._lock = threading.Lock()          # guards _link and _leaving
        self._link: _Link | None = None
        self._leaving = False
        self._wake = threading.Event()         # cuts a back-off wait short
        self._thread = threading.Thread(target=self._run, name="securex network", daemon=True)

    # -- front-end API (any thread; never blocks on the network) --------------

    def start(self) -> None:
        self._thread.start()

    def send_text(self, text: str) -> None:
        """Queue a message; a quit command leaves instead. Empty text is ignored."""
        if text.strip() in QUIT_COMMANDS:
            self.leave()
            return
        if not text.strip():
            return
        size = len(text.encode("utf-8"))
        if size > protocol.MAX_TEXT_BYTES:
            self._post(Notice(f"Message not sent: it is {size:,} bytes; the limit is "
                              f"{protocol.MAX_TEXT_BYTES:,}."))
            return
        with self._lock:
            link = self._link
        if link is None:
            self._post(Notice("Not connected: message not sent."))
        else:
            link.outbox.put(("text", text))

    def leave(self) -> None:
        """Leave cleanly; a ``Closed`` event follows."""
        with self._lock:
            self._leaving = True
            link = self._link
        if link is not None:
            link.outbox.put(("leave",))
        self._wake.set()

    def reconnect_now(self) -> None:
        """Skip the rest of the back-off wait."""
        self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def is_alive(self) -> bool:
        return self._thread.is_alive()

    # -- network thread -----------------------------------------------------

    def _post(self, event: Event) -> None:
        self._events.put(event)

    def _leaving_now(self) -> bool:
        with self._lock:
            return self._leaving

    def _run(self) -> None:
        attempt, ever_joined = 0, False
        while True:
            try:
                link = self._connect()
            except SecureXError as error:
                fatal = isinstance(error, WrongPassphraseError) or not ever_joined
                if fatal or not self._auto_reconnect or self._leaving_now():
                    self._post(Closed(str(error), error))
                    return
                reason = str(error)
            else:
                outcome = self._serve(link, reconnected=ever_joined)
                ever_joined, attempt = True, 0
                if outcome.kind == "left":
                    self._post(Closed(outcome.message, None))
                    return
                stop_here = (outcome.kind == "fatal" or not self._auto_reconnect
                             or (outcome.kind == "shutdown" and not self._reconnect_after_shutdown))
                if stop_here:
                    self._post(Closed(outcome.message, outcome.error))
                    return
                reason = outcome.message
            delay = min(MAX_BACKOFF, 0.5 * 2 ** attempt)
            attempt += 1
            self._post(ConnectionLost(reason, delay))
            self._wake.clear()
            self._wake.wait(delay)
            if self._leaving_now():
                self._post(Closed("You left the room.", None))
                return
            self._post(Reconnecting(attempt))

    def _connect(self) -> _Link:
        """TCP connect and handshake. Raises a SecureXError a person can act on."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self._connect_timeout)
        except socket.gaierror:
            raise ServerUnreachableError(f"Unknown host {self.host!r}: check the server address.") from None
        except TimeoutError:
            raise ServerUnreachableError(
                f"No answer from {self.server} within {self._connect_timeout:g} s. Check the address, "
                f"and that no firewall blocks port {self.port}.") from None
        except ConnectionRefusedError:
            raise ServerUnreachableError(
                f"Nothing is listening at {self.server}. Check the address and port, and that "
                "server.py is running.") from None
        except OSError as error:
            raise ServerUnreachableError(f"Cannot reach {self.server}: {error.strerror or error}.") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return self._handshake(sock)
        except BaseException:
            sock.close()
            raise

    def _handshake(self, sock: socket.socket) -> _Link:
        decoder = protocol.FrameDecoder()
        pending: list[protocol.Frame] = []

        def next_frame() -> protocol.Frame:
            while not pending:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    raise ServerUnreachableError(
                        f"{self.server} accepted the connection but did not answer; "
                        "is it a Secure X server?") from None
                except OSError as error:
                    raise ConnectionLostError(f"The connection to {self.server} failed: {error.strerror}.") from None
                if not data:
                    raise ConnectionLostError(f"{self.server} closed the connection during the handshake.")
                pending.extend(decoder.feed(data))
            frame = pending.pop(0)
            if frame.type == FrameType.CLOSE:
                raise self._refusal(*protocol.parse_close(frame))
            return frame

        frame = next_frame()
        if frame.type != FrameType.CHALLENGE:
            raise ProtocolError(f"{self.server} is not a Secure X server (it sent {frame.type.name} first).")
        challenge = protocol.parse_challenge(frame)
        if challenge.version != protocol.PROTOCOL_VERSION:
            raise RefusedError(f"The server speaks protocol version {challenge.version}; "
                               f"this client speaks {protocol.PROTOCOL_VERSION}. Update Secure X.")
        keys = self._room_keys(challenge.room_salt)
        session_id = new_session_id(self._randbytes)
        sock.sendall(protocol.encode_join(session_id, keys.key_check))
        frame = next_frame()
        if frame.type != FrameType.ACCEPTED:
            raise ProtocolError(f"Expected ACCEPTED from the server, got {frame.type.name}.")
        link = _Link(sock, decoder, keys, session_id, challenge.max_members)
        for sid in protocol.parse_session_ids(frame):
            link.peers[sid] = _Peer(sender_key(keys.message_key, sid), joined_after_us=False)
        link.leftover = pending
        # Blocking from here on: the sender's sendall must never time out half-way
        # through a frame; the receiver polls with select() instead.
        sock.settimeout(None)
        return link

    def _room_keys(self, salt: bytes) -> RoomKeys:
        # scrypt costs ~0.1 s; a reconnect to the same server run reuses the result.
        if self._keys_cache is None or self._keys_cache[0] != salt:
            self._keys_cache = (salt, derive_room_keys(self._passphrase, salt, n=self._scrypt_n))
        return self._keys_cache[1]

    def _refusal(self, reason: CloseReason | None, detail: str) -> SecureXError:
        if reason == CloseReason.FULL:
            return RoomFullError(f"The room at {self.server} is full. Try again when someone leaves.")
        if reason == CloseReason.WRONG_PASSPHRASE:
            return WrongPassphraseError()
        return RefusedError(f"The server refused the connection: {detail}")

    def _serve(self, link: _Link, *, reconnected: bool) -> _Outcome:
        with self._lock:
            self._link = link
            leaving = self._leaving
        # Only now: a front end may send the moment it hears Connected.
        self._post(Connected(self.server, link.keys.fingerprint, CIPHER_NAME, reconnected))
        sender = threading.Thread(target=self._send_loop, args=(link,), name="securex sender", daemon=True)
        sender.start()
        if leaving:
            link.outbox.put(("leave",))
        else:
            link.outbox.put(("presence", InnerKind.HELLO))
        self._post_members(link)
        try:
            return self._receive_loop(link)
        finally:
            with self._lock:
                self._link = None
            link.outbox.put(("stop",))
            with contextlib.suppress(OSError):
                link.sock.shutdown(socket.SHUT_RDWR)
            sender.join(2.0)
            link.sock.close()

    def _receive_loop(self, link: _Link) -> _Outcome:
        last_heard = time.monotonic()
        frames, left_since = link.leftover, None
        while True:
            for frame in frames:
                outcome = self._on_frame(link, frame)
                if outcome is not None:
                    return outcome
            frames = []
            if link.leave_sent.is_set():
                # The server answers LEAVE by closing; do not wait long for it.
                left_since = left_since or time.monotonic()
                if time.monotonic() - left_since > 2.0:
                    return _Outcome("left", "You left the room.")
            try:
                readable, _, _ = select.select([link.sock], [], [], POLL_SECONDS)
                data = link.sock.recv(65536) if readable else None
            except (OSError, ValueError):   # ValueError: the socket was closed under us
                data = b""
            if data is None:
                if time.monotonic() - last_heard > self._idle_timeout:
                    return _Outcome("lost", f"No answer from {self.server} for "
                                            f"{self._idle_timeout:g} s: the connection is lost.")
                continue
            if not data:
                if link.leave_sent.is_set() or self._leaving_now():
                    return _Outcome("left", "You left the room.")
                return _Outcome("lost", f"The connection to {self.server} was lost.")
            last_heard = time.monotonic()
            try:
                frames = link.decoder.feed(data)
            except ProtocolError as error:
                return _Outcome("lost", f"The server sent bad data ({error}); reconnecting.")

    def _on_frame(self, link: _Link, frame: protocol.Frame) -> _Outcome | None:
        try:
            if frame.type == FrameType.RELAYED:
                self._on_relayed(link, protocol.parse_relayed(frame))
            elif frame.type == FrameType.JOINED:
                sid = protocol.parse_session_id(frame)
                old = link.peers.get(sid)
                if old is not None:   # a recycled id must not reset replay protection
                    old.present = True
                else:
                    link.peers[sid] = _Peer(sender_key(link.keys.message_key, sid), joined_after_us=True)
                link.outbox.put(("presence", InnerKind.HERE))
            elif frame.type == FrameType.LEFT:
                peer = link.peers.get(protocol.parse_session_id(frame))
                if peer is not None and peer.present:
                    peer.present = False
                    self._post(MemberLeft(peer.label))
                    self._post_members(link)
            elif frame.type == FrameType.CLOSE:
                reason, detail = protocol.parse_close(frame)
                if reason == CloseReason.SHUTDOWN:
                    return _Outcome("shutdown", "The server shut down.")
                if reason == CloseReason.GOODBYE and link.leave_sent.is_set():
                    return _Outcome("left", "You left the room.")
                if reason == CloseReason.WRONG_PASSPHRASE:
                    return _Outcome("fatal", str(WrongPassphraseError()), WrongPassphraseError())
                return _Outcome("lost", f"The server disconnected you: {detail}")
            elif frame.type != FrameType.PING:
                raise ProtocolError(f"unexpected {frame.type.name} frame")
        except ProtocolError as error:
            self._post(Notice(f"Ignored a malformed frame from the server ({error})."))
        return None

    def _on_relayed(self, link: _Link, relayed: protocol.Relayed) -> None:
        peer = link.peers.get(relayed.sender_session)
        if peer is None or not peer.present:
            self._post(Notice("Dropped a message from a session that is not in the room (injected?)."))
            return
        if peer.last_seq is not None and relayed.seq <= peer.last_seq:
            self._post(Notice(f"Dropped a replayed or out-of-order message from {peer.label}."))
            return
        aad = protocol.message_aad(relayed.sender_session, relayed.seq)
        try:
            plaintext = open_sealed(peer.key, relayed.seq, aad, relayed.sealed)
        except DecryptionError:
            self._post(Notice(f"Dropped a message claiming to be from {peer.label}: it failed "
                              "authentication (tampered with, or not encrypted with this room's key)."))
            return
        # Authentic from here on: its number counts even if its content is malformed,
        # so it is not reported again as a missing message.
        missed = relayed.seq - peer.expected_seq(relayed.seq)
        peer.last_seq = relayed.seq
        was_named = peer.name is not None
        try:
            inner: protocol.InnerMessage | None = protocol.decode_inner(plaintext)
        except ProtocolError:
            inner = None
        if inner is not None:
            peer.name = display_safe(inner.name, keep_newlines=False) or "?"
        if missed > 0:
            self._post(Notice(f"{missed} message{'s' if missed > 1 else ''} from {peer.label} "
                              f"{'were' if missed > 1 else 'was'} not received."))
        if inner is None:
            self._post(Notice(f"Dropped a malformed message from {peer.label}."))
            return
        if inner.kind == InnerKind.TEXT:
            self._post(ChatMessage(peer.name, display_safe(inner.body), own=False))
        elif inner.kind == InnerKind.HELLO:
            self._post(MemberJoined(peer.name))
        if not was_named or inner.kind != InnerKind.TEXT:
            self._post_members(link)

    def _post_members(self, link: _Link) -> None:
        others = tuple(p.label for p in link.peers.values() if p.present)
        self._post(MembersChanged((self.name, *others), link.capacity))

    # -- sender thread (one per link) ----------------------------------------

    def _send_loop(self, link: _Link) -> None:
        key = sender_key(link.keys.message_key, link.session_id)
        seq = 0
        while True:
            try:
                item = link.outbox.get(timeout=PING_SECONDS)
            except queue.Empty:
                item = ("ping",)
            kind = item[0]
            try:
                if kind == "stop":
                    return
                if kind == "ping":
                    link.sock.sendall(protocol.encode_frame(FrameType.PING))
                elif kind == "leave":
                    link.sock.sendall(protocol.encode_frame(FrameType.LEAVE))
                    link.leave_sent.set()
                    return
                else:
                    inner_kind, body = (InnerKind.TEXT, item[1]) if kind == "text" else (item[1], "")
                    plaintext = protocol.encode_inner(inner_kind, self.name, body)
                    sealed = seal(key, seq, protocol.message_aad(link.session_id, seq), plaintext)
                    link.sock.sendall(protocol.encode_message(seq, sealed))
                    seq += 1
                    if kind == "text":
                        self._post(ChatMessage(self.name, display_safe(body), own=True))
            except OSError:
                if kind == "text":
                    self._post(Notice("Message not sent: the connection dropped."))
                if kind == "leave":
                    link.leave_sent.set()
                with contextlib.suppress(OSError):   # wake the receiver so the link is torn down now
                    link.sock.shutdown(socket.SHUT_RDWR)
                return
