"""What the client core tells a front end, and the one way front ends handle it.

Events are immutable and carry the local time they were made. The network
thread puts them on a bounded ``queue.Queue``; a front end reads them on its own
thread and hands each to ``dispatch(handler, event)``, which calls the handler's
``on_<event>`` method (``on_chat_message`` for ``ChatMessage``). ``EventHandler``
gives every method a default that does nothing, so a front end implements only
what it shows, and a test checks that every front end handles every event.

Every string in an event that another member chose (names, text) has already
been made safe to show (``securex.text``).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from securex.errors import SecureXError


@dataclass(frozen=True)
class Member:
    """A verified member as a person sees them."""
    name: str
    safety_code: str
    label: str          # the name, with a safety-code suffix while two members share it
    you: bool = False


@dataclass(frozen=True)
class Event:
    at: datetime = field(default_factory=datetime.now, compare=False, kw_only=True)


@dataclass(frozen=True)
class Connected(Event):
    """The relay answered; the passphrase is being checked with the members present."""
    server: str
    you: Member
    reconnected: bool


@dataclass(frozen=True)
class Joined(Event):
    """In the room. ``verified`` of the ``present`` members proved the same passphrase;
    ``present == 0`` means nobody was here to confirm it."""
    server: str
    cipher: str
    you: Member
    verified: int
    present: int
    reconnected: bool


@dataclass(frozen=True)
class MembersChanged(Event):
    members: tuple[Member, ...]   # you first
    capacity: int


@dataclass(frozen=True)
class MemberJoined(Event):
    member: Member


@dataclass(frozen=True)
class MemberLeft(Event):
    """``dropped``: its connection ended without an authenticated goodbye."""
    member: Member
    dropped: bool


DELAYED_SECONDS = 60.0       # a message written this much before it arrived also shows when it was written


@dataclass(frozen=True)
class ChatMessage(Event):
    sender: Member
    text: str
    own: bool
    sent_at: datetime
    late: bool = False       # arrived after later messages from the same sender
    caught_up: bool = False  # sent while we were away, delivered when we came back
    message_id: int = 0      # our own messages: the id DeliveryChanged refers to
    pending: bool = False    # our own, typed while not in the room: sent when it is back

    @property
    def shown_at(self) -> datetime:
        """The time a line shows: when it arrived. One's own, when written; a late or
        caught-up one, when its sender says it was written, which is marked as such (a
        member's clock may be off, or lie, so its word is never passed off as ours)."""
        return self.sent_at if self.own or self.late or self.caught_up else self.at

    @property
    def written_earlier(self) -> datetime | None:
        """When its sender says it was written, for a message that arrived well after
        that (kept while the room was away): shown beside the arrival time, as theirs."""
        if self.own or self.late or self.caught_up or (self.at - self.sent_at).total_seconds() <= DELAYED_SECONDS:
            return None
        return self.sent_at


@dataclass(frozen=True)
class DeliveryChanged(Event):
    """Where one of our own messages stands: who has it (their receipts), who it is
    still on its way to, and for whom it was given up."""
    message_id: int
    state: str                           # pending, sent, delivered or incomplete
    delivered_to: tuple[str, ...]
    waiting_for: tuple[str, ...]
    given_up: tuple[str, ...]


@dataclass(frozen=True)
class FileOffered(Event):
    """A member offers us a file: /accept or /decline it by ``file_id``. Offered
    again, with ``problem`` saying why, when accepting it failed in a way the user
    can put right (no room on the disk, a folder that cannot be written to) and it
    may be accepted once more."""
    file_id: str
    name: str            # already made safe to use as a file name
    size: int
    sender: Member
    problem: str = ""
    accepting_into: Path | None = None     # accepted at once into this folder (--accept-files)


@dataclass(frozen=True)
class FileProgress(Event):
    """A transfer moves: ``direction`` is "in" (from ``peer``) or "out" (to ``peer``)."""
    file_id: str
    name: str
    direction: str
    peer: str
    done: int
    total: int
    rate: float          # bytes a second over the last few seconds
    # offered, sending, receiving, checking, paused (the other's connection dropped)
    # or waiting (connected, but nothing has moved for a few seconds)
    stage: str
    # "offered" only: each member offered it, by label (``peer`` joins them for a line of text,
    # and a name may itself hold a comma).
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileFinished(Event):
    """A transfer ended, for one member: delivered or saved (``ok``), or not, and why;
    ``by_choice``: not a failure: someone declined, withdrew or cancelled it."""
    file_id: str
    name: str
    direction: str
    peer: str
    ok: bool
    path: str | None
    message: str
    by_choice: bool = False


class Severity(enum.Enum):
    INFO = "info"
    WARNING = "warning"      # something went wrong or needs a look
    ALERT = "alert"          # possibly an attack: a changed safety code, a forged room


@dataclass(frozen=True)
class Notice(Event):
    """Something the user should know that is not a chat message."""
    text: str
    severity: Severity = Severity.INFO


@dataclass(frozen=True)
class ConnectionLost(Event):
    """The link is down (or a try to get back failed); the next try is in ``retry_in`` s.
    ``failed_attempts`` counts the tries since the drop that did not get back."""
    reason: str
    retry_in: float
    failed_attempts: int = 0


@dataclass(frozen=True)
class Reconnecting(Event):
    attempt: int


@dataclass(frozen=True)
class Closed(Event):
    """The session is over. ``error`` is None when the user left or the server shut down;
    ``unsent`` counts messages typed while away that never went out; ``unfinished`` says
    which file transfers (and offers) stopped with it, a sentence each."""
    reason: str
    error: SecureXError | None
    unsent: int = 0
    unfinished: tuple[str, ...] = ()


EVENT_TYPES: tuple[type[Event], ...] = (Connected, Joined, MembersChanged, MemberJoined, MemberLeft,
                                        ChatMessage, DeliveryChanged, FileOffered, FileProgress, FileFinished,
                                        Notice, ConnectionLost, Reconnecting, Closed)


def handler_name(event_type: type[Event]) -> str:
    """``ChatMessage`` -> ``on_chat_message``."""
    return "on_" + re.sub(r"(?<!^)(?=[A-Z])", "_", event_type.__name__).lower()


class EventHandler:
    """Base class of a front end: one ``on_<event>`` method per event type, each a
    no-op until overridden."""

    def on_connected(self, event: Connected) -> None: ...
    def on_joined(self, event: Joined) -> None: ...
    def on_members_changed(self, event: MembersChanged) -> None: ...
    def on_member_joined(self, event: MemberJoined) -> None: ...
    def on_member_left(self, event: MemberLeft) -> None: ...
    def on_chat_message(self, event: ChatMessage) -> None: ...
    def on_delivery_changed(self, event: DeliveryChanged) -> None: ...
    def on_file_offered(self, event: FileOffered) -> None: ...
    def on_file_progress(self, event: FileProgress) -> None: ...
    def on_file_finished(self, event: FileFinished) -> None: ...
    def on_notice(self, event: Notice) -> None: ...
    def on_connection_lost(self, event: ConnectionLost) -> None: ...
    def on_reconnecting(self, event: Reconnecting) -> None: ...
    def on_closed(self, event: Closed) -> None: ...


_HANDLERS = {event_type: handler_name(event_type) for event_type in EVENT_TYPES}


def dispatch(handler: EventHandler, event: Event) -> None:
    """Call the handler's method for this event's type."""
    getattr(handler, _HANDLERS[type(event)])(event)
