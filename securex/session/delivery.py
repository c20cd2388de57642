"""What this member has sent, and who has it: receipts, backlogs, catch-up. Sans-IO.

Every message we send is numbered once (per run of the program) and sealed for
each verified member. The ``Outbox`` remembers, per message, the members still
waiting for it, until each acknowledges it over its own channel (ACK). A member
whose connection drops without a goodbye stays "away" for AWAY_SECONDS: what we
send meanwhile is kept for it, and when the same identity verifies with us again
(a new connection, new keys) we send it everything it has not acknowledged, in
order, then CAUGHT_UP. Receivers show each number once, so a message whose ACK was
lost is resent and never shown twice.

Everything is bounded, and what is given up is said:

* ``PendingQueue``: messages typed while not in the room (MAX_PENDING messages,
  MAX_PENDING_BYTES), sent once the room is back;
* per member, at most MAX_BACKLOG messages and MAX_BACKLOG_BYTES waiting. Past
  that, for a member away, the oldest are given up (and said); for a member
  present they are most likely on their way (a burst outruns its receipts), so
  they are only no longer kept for re-sending, said once until it catches up;
* a member away longer than AWAY_SECONDS is given up: its messages are reported
  undelivered;
* a present member that has not acknowledged a message after SLOW_RECEIPT_SECONDS
  is named once in a notice.

Only plaintext app messages (already authenticated and encoded) are held, in
memory; nothing here is written anywhere.
"""

from __future__ import annotations

import bisect
import enum
from collections import OrderedDict, deque
from typing import NamedTuple
from dataclasses import dataclass, field

MAX_PENDING = 500
MAX_PENDING_BYTES = 1024 * 1024
MAX_BACKLOG = 1000
MAX_BACKLOG_BYTES = 8 * 1024 * 1024
MAX_TRACKED = 2000                 # messages whose receipts we follow; older ones are settled
MAX_NAMES = 1000                   # names remembered for receipts, also of members gone
AWAY_SECONDS = 10 * 60
SLOW_RECEIPT_SECONDS = 30.0


class Delivery(enum.Enum):
    PENDING = "typed while not in the room: not sent yet"
    SENT = "sent; waiting for receipts"
    DELIVERED = "every recipient has it"
    INCOMPLETE = "given up for some recipients"


@dataclass
class Recipient:
    """One member we send to, known by its identity key across connections."""
    key: bytes
    name: str
    away_since: float | None = None            # dropped without a goodbye, when
    backlog: OrderedDict[int, None] = field(default_factory=OrderedDict)   # msg_no not acknowledged, ascending
    backlog_bytes: int = 0
    untracking_noted: bool = False              # said that its oldest are no longer kept


@dataclass
class Sent:
    """One message of ours and where it stands."""
    local_id: int
    msg_no: int
    plaintext: bytes            # the encoded TEXT app message, resealed for a returning member
    preview: str
    sent_at: float
    waiting: set[bytes] = field(default_factory=set)       # recipient keys without a receipt
    delivered: set[bytes] = field(default_factory=set)
    given_up: set[bytes] = field(default_factory=set)
    untracked: set[bytes] = field(default_factory=set)      # present, but no longer kept for it
    slow_reported: set[bytes] = field(default_factory=set)

    @property
    def state(self) -> Delivery:
        if self.waiting or self.untracked - self.delivered:
            return Delivery.SENT
        return Delivery.INCOMPLETE if self.given_up else Delivery.DELIVERED


@dataclass(frozen=True)
class GivenUp:
    """Messages that will not reach a member, and why (for a notice)."""
    name: str
    messages: tuple[Sent, ...]
    why: str

    @property
    def count(self) -> int:
        return len(self.messages)


@dataclass(frozen=True)
class NoLongerKept:
    """A member present has so many messages of ours without a receipt that the
    oldest are no longer kept for re-sending (for a note, once per episode)."""
    name: str
    limit: int


class Typed(NamedTuple):
    local_id: int
    text: str
    typed_at: float      # wall clock: what the message is stamped with when it finally goes


class PendingQueue:
    """Messages typed while the room is not there, in order, bounded."""

    def __init__(self) -> None:
        self._queue: deque[Typed] = deque()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._queue)

    def room_for(self, text: str) -> bool:
        return len(self._queue) < MAX_PENDING and self._bytes + len(text.encode()) <= MAX_PENDING_BYTES

    def add(self, local_id: int, text: str, typed_at: float) -> None:
        self._queue.append(Typed(local_id, text, typed_at))
        self._bytes += len(text.encode())

    def take_all(self) -> list[Typed]:
        items = list(self._queue)
        self._queue.clear()
        self._bytes = 0
        return items


class Outbox:
    def __init__(self) -> None:
        self.sent: OrderedDict[int, Sent] = OrderedDict()      # msg_no -> Sent, oldest first
        # The messages still watched for a slow receipt, oldest first: the runner asks
        # for the next expiry on every pass, so it must not walk the settled ones.
        self._watched: OrderedDict[int, Sent] = OrderedDict()
        self.recipients: dict[bytes, Recipient] = {}
        self._names: OrderedDict[bytes, str] = OrderedDict()   # recipient key -> name, newest last

    # -- sending ------------------------------------------------------------------

    def record(self, message: Sent, present: list[tuple[bytes, str]]) -> list[GivenUp | NoLongerKept]:
        """A message was sent to the ``present`` members (key, name); members away are
        owed it too. Returns what had to be given up to stay within the limits."""
        given_up: list[GivenUp | NoLongerKept] = []
        for key, name in present:
            self._recipient(key, name)
        owed = [r for r in self.recipients.values() if r.away_since is not None or r.key in dict(present)]
        for recipient in owed:
            message.waiting.add(recipient.key)
            recipient.backlog[message.msg_no] = None
            recipient.backlog_bytes += len(message.plaintext)
            given_up += self._trim(recipient)
        self.sent[message.msg_no] = message
        if message.waiting:
            self._watched[message.msg_no] = message
        while len(self.sent) > MAX_TRACKED:
            _, oldest = self.sent.popitem(last=False)
            self._watched.pop(oldest.msg_no, None)
            for key in list(oldest.waiting):
                self._drop_from_backlog(key, oldest)
        return given_up

    def acknowledged(self, key: bytes, ranges: tuple[tuple[int, int], ...]) -> list[Sent]:
        """A member's receipts; returns the messages whose state changed."""
        recipient = self.recipients.get(key)
        if recipient is None:
            return []
        changed = []
        # The member's own backlog (ascending), bisected for each range: a hostile range
        # is huge, and 32 ranges must not each walk the whole backlog.
        numbers = list(recipient.backlog)
        acknowledged: set[int] = set()
        for first, last in ranges:
            acknowledged.update(numbers[bisect.bisect_left(numbers, first):bisect.bisect_right(numbers, last)])
        if acknowledged:
            for msg_no in sorted(acknowledged):
                message = self.sent.get(msg_no)
                self._drop_from_backlog(key, message, msg_no)
                if message is not None:
                    message.delivered.add(key)
                    changed.append(message)
        if len(recipient.backlog) < MAX_BACKLOG // 2:
            recipient.untracking_noted = False
        return changed

    # -- members coming and going ----------------------------------------------------

    def member_dropped(self, key: bytes, now: float) -> None:
        """Its connection ended without a goodbye: keep what it is owed, for a while."""
        recipient = self.recipients.get(key)
        if recipient is not None:
            recipient.away_since = now

    def member_left(self, key: bytes) -> GivenUp | None:
        """A goodbye: it will not be back for what it has not acknowledged."""
        recipient = self.recipients.pop(key, None)
        if recipient is None or not recipient.backlog:
            return None
        return GivenUp(recipient.name, self._give_up_all(recipient), "they left before receiving them")

    def member_back(self, key: bytes, name: str) -> list[bytes]:
        """The same identity verified again: the plaintexts it still lacks, oldest first."""
        recipient = self._recipient(key, name)
        recipient.away_since = None
        return [self.sent[n].plaintext for n in recipient.backlog if n in self.sent]

    def expire(self, now: float) -> tuple[list[GivenUp], list[tuple[Sent, str]]]:
        """Members away too long are given up; present members slow to acknowledge are
        named once per message: (given up, [(message, name)])."""
        given_up = []
        for key, recipient in list(self.recipients.items()):
            if recipient.away_since is not None and now - recipient.away_since > AWAY_SECONDS:
                del self.recipients[key]
                messages = self._give_up_all(recipient)
                if messages:
                    given_up.append(GivenUp(recipient.name, messages,
                                            f"they did not come back within {AWAY_SECONDS // 60} minutes"))
        slow, done = [], []
        for msg_no, message in self._watched.items():
            if now - message.sent_at < SLOW_RECEIPT_SECONDS:
                break   # oldest first: the rest are younger
            for key in message.waiting - message.slow_reported:
                # Each waiting member is looked at once: one present is named; one away
                # is covered by its own expiry above, one gone by its goodbye.
                message.slow_reported.add(key)
                recipient = self.recipients.get(key)
                if recipient is not None and recipient.away_since is None:
                    slow.append((message, recipient.name))
            done.append(msg_no)
        for msg_no in done:
            del self._watched[msg_no]
        return given_up, slow

    def next_expiry(self) -> float | None:
        times = [r.away_since + AWAY_SECONDS for r in self.recipients.values() if r.away_since is not None]
        while self._watched:     # settled ones at the front go now; the rest in their turn
            message = next(iter(self._watched.values()))
            if message.waiting - message.slow_reported:
                times.append(message.sent_at + SLOW_RECEIPT_SECONDS)
                break
            self._watched.popitem(last=False)
        return min(times) if times else None

    def names(self, keys: set[bytes]) -> list[str]:
        return sorted(self._names.get(k, "a former member") for k in keys)

    # -- internals ----------------------------------------------------------------------

    def _recipient(self, key: bytes, name: str) -> Recipient:
        recipient = self.recipients.get(key)
        if recipient is None:
            recipient = self.recipients[key] = Recipient(key, name)
        recipient.name = name
        self._names.pop(key, None)
        self._names[key] = name
        while len(self._names) > MAX_NAMES:
            self._names.popitem(last=False)
        return recipient

    def _trim(self, recipient: Recipient) -> list[GivenUp | NoLongerKept]:
        dropped: list[Sent] = []
        present = recipient.away_since is None
        while recipient.backlog and (len(recipient.backlog) > MAX_BACKLOG
                                     or recipient.backlog_bytes > MAX_BACKLOG_BYTES):
            oldest = next(iter(recipient.backlog))
            message = self.sent.get(oldest)
            self._drop_from_backlog(recipient.key, message, oldest)
            if message is not None:
                (message.untracked if present else message.given_up).add(recipient.key)
                dropped.append(message)
        if not dropped:
            return []
        if not present:
            return [GivenUp(recipient.name, tuple(dropped), "too many were waiting for them")]
        if recipient.untracking_noted:
            return []
        recipient.untracking_noted = True
        return [NoLongerKept(recipient.name, MAX_BACKLOG)]

    def _give_up_all(self, recipient: Recipient) -> tuple[Sent, ...]:
        given_up = []
        for msg_no in list(recipient.backlog):
            message = self.sent.get(msg_no)
            if message is not None:
                message.waiting.discard(recipient.key)
                message.given_up.add(recipient.key)
                given_up.append(message)
        recipient.backlog.clear()
        recipient.backlog_bytes = 0
        return tuple(given_up)

    def _drop_from_backlog(self, key: bytes, message: Sent | None, msg_no: int | None = None) -> None:
        recipient = self.recipients.get(key)
        number = msg_no if msg_no is not None else (message.msg_no if message else None)
        if recipient is not None and number in recipient.backlog:
            del recipient.backlog[number]
            if message is not None:
                recipient.backlog_bytes -= len(message.plaintext)
        if message is not None:
            message.waiting.discard(key)
