"""The relay's room: who holds a place, who may join, and routing. No sockets here.

The registry talks to each connection through the small ``Member`` interface
(``member_id``, ``address``, ``send``, ``close``), so the same logic is
unit-tested with fake members. One lock guards all of the room's state;
``send`` only queues bytes and never blocks, so holding the lock while routing
keeps every member's view in one order (a member's ROSTER always precedes the
first frame it receives from a newcomer).

The registry never sees a key or a name. It knows connections by random ids it
chose, whether each has finished joining ("ready"), and which pairs both claim
to have verified each other ("confirmed"); joining clients use that only as a
hint for their passphrase verdict.

Places: a connection holds one from the moment it is accepted until it goes,
whether it has finished joining or not. Joining connections ("pending") are
capped in total and per address, and must become ready within the engine's
handshake deadline, so a stranger can hold at most a few places for a bounded
time.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from securex import protocol
from securex.protocol import CloseReason, OutFrame, RosterEntry


class Member(Protocol):
    member_id: bytes
    address: str

    def send(self, frame: OutFrame) -> None:
        """Queue encoded frames without blocking, whole or in pieces (a file chunk's
        header, then the chunk itself, shared by every member it goes to). (The
        engine holds senders back, outside the lock, when a member's queue is long:
        see ``engine.py``.)"""

    def send_roster(self, frame: bytes) -> None:
        """Queue a ROSTER; one still waiting at the end of the queue is replaced, not
        joined, since only the newest matters (a member toggling its claims must not
        grow everyone's queue)."""

    def close(self, reason: CloseReason, detail: str) -> None:
        """Tell the member why with a CLOSE frame, then disconnect it."""

    @property
    def backlogged(self) -> bool:
        """More is queued for it than its high-water mark."""


class RoomRegistry:
    def __init__(self, capacity: int, *, max_pending: int, max_pending_per_address: int,
                 new_id: Callable[[], bytes]) -> None:
        self.capacity = capacity
        self.max_pending = max_pending
        self.max_pending_per_address = max_pending_per_address
        self._new_id = new_id
        self._lock = threading.Lock()
        self._members: dict[bytes, Member] = {}   # admitted, in order of arrival
        self._reserved = 0                          # accepted, not yet admitted (before HELLO)
        self._pending: Counter[str] = Counter()     # not yet ready, per address
        self._unready: set[bytes] = set()
        self._claims: dict[bytes, frozenset[bytes]] = {}
        self._closed = False

    # -- arriving -------------------------------------------------------------

    def reserve(self, address: str) -> tuple[CloseReason | None, bytes]:
        """A place for a new connection, with its id; or why it is turned away."""
        with self._lock:
            if self._closed:
                return CloseReason.SHUTDOWN, b""
            if len(self._members) + self._reserved >= self.capacity:
                return CloseReason.FULL, b""
            if (sum(self._pending.values()) >= self.max_pending
                    or self._pending[address] >= self.max_pending_per_address):
                return CloseReason.BUSY, b""
            self._reserved += 1
            self._pending[address] += 1
            member_id = self._new_id()
            while member_id in self._members:   # ids are random; a repeat is astronomically rare
                member_id = self._new_id()
            return None, member_id

    def admit(self, member: Member) -> bool:
        """Turn a reservation into a place in the room (on HELLO) and tell everyone.
        False if the relay is shutting down."""
        with self._lock:
            self._reserved -= 1
            if self._closed:
                self._pending[member.address] -= 1
                self._pending += Counter()   # drop zero counts
                return False
            self._members[member.member_id] = member
            self._unready.add(member.member_id)
            self._claims[member.member_id] = frozenset()
            self._send_roster_locked()
            return True

    def release(self, member: Member) -> None:
        """A reserved connection went away before HELLO."""
        with self._lock:
            self._reserved -= 1
            self._end_pending_locked(member)

    def set_status(self, member: Member, status: protocol.Status) -> None:
        """The member finished joining and/or says whom it has verified."""
        with self._lock:
            if self._members.get(member.member_id) is not member:
                return
            changed = False
            if status.ready and member.member_id in self._unready:
                self._unready.discard(member.member_id)
                self._end_pending_locked(member)
                changed = True
            claims = frozenset(status.verified) & self._members.keys()
            if claims != self._claims[member.member_id]:
                before = self._confirmed_locked()
                self._claims[member.member_id] = claims
                changed = changed or self._confirmed_locked() != before
            if changed:
                self._send_roster_locked()

    def is_ready(self, member: Member) -> bool:
        """Admitted and finished joining (a connection before HELLO is not)."""
        with self._lock:
            return member.member_id in self._members and member.member_id not in self._unready

    # -- in the room ------------------------------------------------------------

    def route_many(self, sender: Member, payloads: list[bytes]) -> list[Member]:
        """Forward the ROUTE payloads of one read, each as ROUTED, under one lock and
        as one queued chunk per member (in order); returns the members sent to."""
        with self._lock:
            if self._members.get(sender.member_id) is not sender:
                return []
            per_member: dict[bytes, list[bytes]] = {}
            for payload in payloads:
                to = payload[:protocol.ID_BYTES]
                if to != sender.member_id and to in self._members:
                    per_member.setdefault(to, []).append(protocol.routed_from_route(sender.member_id, payload))
            targets = []
            for to, frames in per_member.items():
                target = self._members[to]
                target.send(b"".join(frames))
                targets.append(target)
            return targets

    def fan_out(self, sender: Member, fanout: protocol.Fanout) -> list[Member]:
        """One body to each named member present (files are sealed once), except those
        already backlogged: file chunks never hold a sender back, so a member reading
        slowly (or pretending to) slows only its own copy; it asks for what it missed."""
        with self._lock:
            if self._members.get(sender.member_id) is not sender:
                return []
            # A file chunk goes to each member as a view of what was read, beside a header of
            # its own; anything small as one frame, since a view costs more to queue than a copy.
            body = fanout.body
            frame = (protocol.routed_pieces(sender.member_id, body) if len(body) >= protocol.LARGE_FRAME_BYTES
                     else protocol.encode_frame(protocol.FrameType.ROUTED, sender.member_id + bytes(body)))
            targets = [self._members[to] for to in fanout.recipients
                       if to in self._members and to != sender.member_id and not self._members[to].backlogged]
            for target in targets:
                target.send(frame)
            return targets

    def remove(self, member: Member) -> bool:
        """Take a member out (it left or its connection died); tell the others."""
        with self._lock:
            if self._members.get(member.member_id) is not member:
                return False
            del self._members[member.member_id]
            del self._claims[member.member_id]
            if member.member_id in self._unready:
                self._unready.discard(member.member_id)
                self._end_pending_locked(member)
            self._send_roster_locked()
            return True

    def close_all(self, reason: CloseReason, detail: str) -> list[Member]:
        """Refuse newcomers from now on and close every member (relay shutdown)."""
        with self._lock:
            self._closed = True
            members = list(self._members.values())
            self._members.clear()
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
            return sum(self._pending.values())

    # -- internals (lock held) -----------------------------------------------------

    def _end_pending_locked(self, member: Member) -> None:
        self._pending[member.address] -= 1
        self._pending += Counter()   # drop zero counts so the counter stays small

    def _confirmed_locked(self) -> set[bytes]:
        return {a for a, claimed in self._claims.items()
                if any(a in self._claims.get(b, ()) for b in claimed)}

    def _send_roster_locked(self) -> None:
        confirmed = self._confirmed_locked()
        frame = protocol.encode_roster([
            RosterEntry(member_id, member_id not in self._unready, member_id in confirmed)
            for member_id in self._members])
        for member in self._members.values():
            member.send_roster(frame)
