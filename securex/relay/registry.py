"""The relay's room: who is in it, who may join, and fan-out. No sockets here.

The registry talks to each connection through the small ``Member`` interface
(``session_id``, ``send``, ``close``), so the same logic is unit-tested with fake
members. One lock guards all of the room's state; ``send`` only queues bytes
and never blocks, so holding the lock across a fan-out keeps every member's view
in one order (a newcomer's ACCEPTED always precedes the first message it sees).

The registry never sees a key: the first member's ``key_check`` (an HKDF output
of the room key) is kept so later members with another passphrase are refused
at once. It is forgotten when the room empties, so a room whose first member
mistyped the passphrase recovers once that member leaves.
"""

from __future__ import annotations

import hmac
import threading
from typing import Protocol

from securex.errors import RoomFullError, SecureXError, WrongPassphraseError
from securex import protocol
from securex.protocol import CloseReason, FrameType


class Member(Protocol):
    session_id: bytes

    def send(self, frame: bytes) -> bool:
        """Queue an encoded frame (from ``relay_many``: several whole frames joined)
        without blocking; False if the member's outgoing buffer is over its limit
        (it cannot keep up)."""

    def close(self, reason: CloseReason, detail: str) -> None:
        """Tell the member why with a CLOSE frame, then disconnect it."""


class DuplicateSessionError(SecureXError):
    """Another member already uses this session id."""


class RoomRegistry:
    def __init__(self, max_members: int, room_salt: bytes, max_pending: int) -> None:
        self.max_members = max_members
        self.room_salt = room_salt
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._members: list[Member] = []
        self._key_check: bytes | None = None
        self._pending = 0
        self._closed = False

    # -- handshakes ---------------------------------------------------------

    def begin_handshake(self) -> CloseReason | None:
        """Reserve a pending slot for a new connection, or say why it must be turned away.
        Pending connections never take a member's place, and their number is capped."""
        with self._lock:
            if self._closed:
                return CloseReason.SHUTDOWN
            if len(self._members) >= self.max_members:
                return CloseReason.FULL
            if self._pending >= self.max_pending:
                return CloseReason.BUSY
            self._pending += 1
            return None

    def end_handshake(self) -> None:
        with self._lock:
            self._pending -= 1

    def admit(self, member: Member, key_check: bytes) -> None:
        """Make ``member`` a member: queue ACCEPTED to it and JOINED to the others.
        Raises RoomFullError, WrongPassphraseError or DuplicateSessionError."""
        with self._lock:
            if self._closed or len(self._members) >= self.max_members:
                raise RoomFullError()
            if self._key_check is None:
                self._key_check = key_check
            elif not hmac.compare_digest(self._key_check, key_check):
                raise WrongPassphraseError()
            if any(m.session_id == member.session_id for m in self._members):
                raise DuplicateSessionError()
            present = [m.session_id for m in self._members]
            self._members.append(member)
            member.send(protocol.encode_session_ids(FrameType.ACCEPTED, present))
            self._fan_out_locked(member, protocol.encode_session_ids(FrameType.JOINED, [member.session_id]))

    # -- in the room --------------------------------------------------------

    def relay(self, sender: Member, message_payload: bytes) -> None:
        """Send one member's sealed MESSAGE to every other member."""
        self.relay_many(sender, [message_payload])

    def relay_many(self, sender: Member, message_payloads: list[bytes]) -> None:
        """``relay`` for several MESSAGE payloads in a row from one member: the RELAYED
        frames are joined and queued to each member as one chunk, under one lock."""
        if not message_payloads:
            return
        relayed = protocol.relayed_from_message
        chunk = b"".join([relayed(sender.session_id, payload) for payload in message_payloads])
        with self._lock:
            if sender in self._members:
                self._fan_out_locked(sender, chunk)

    def remove(self, member: Member) -> bool:
        """Take a member out (it left or its connection died); tell the others."""
        with self._lock:
            return self._remove_locked(member)

    def close_all(self, reason: CloseReason, detail: str) -> list[Member]:
        """Refuse newcomers from now on and close every member (server shutdown)."""
        with self._lock:
            self._closed = True
            members, self._members = self._members, []
        for member in members:
            member.close(reason, detail)
        return members

    @property
    def member_count(self) -> int:
        with self._lock:
            return len(self._members)

    @property
    def pending_count(self) -> int:
        with self._lock:
            return self._pending

    # -- internals (lock held) ---------------------------------------------

    def _fan_out_locked(self, sender: Member | None, frame: bytes) -> None:
        too_slow = [m for m in self._members if m is not sender and not m.send(frame)]
        for member in too_slow:
            # False if the LEFT fan-out for an earlier slow member already dropped it.
            if self._remove_locked(member):
                member.close(CloseReason.TOO_SLOW,
                             "You were disconnected: your connection could not keep up with the room.")

    def _remove_locked(self, member: Member) -> bool:
        if member not in self._members:
            return False
        self._members.remove(member)
        if not self._members:
            self._key_check = None
        self._fan_out_locked(member, protocol.encode_session_ids(FrameType.LEFT, [member.session_id]))
        return True
