"""What the client core tells a front end, and how chat text is made safe to show.

Events are immutable and carry the local time they were made. The network
thread puts them on a ``queue.Queue``; front ends read them on their own thread.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime

from securex import protocol
from securex.errors import SecureXError

# -- events (network thread -> front end) -----------------------------------

@dataclass(frozen=True)
class Event:
    at: datetime = field(default_factory=datetime.now, compare=False, kw_only=True)


@dataclass(frozen=True)
class Connected(Event):
    server: str
    fingerprint: str
    cipher: str
    reconnected: bool


@dataclass(frozen=True)
class ChatMessage(Event):
    sender: str
    text: str
    own: bool


@dataclass(frozen=True)
class MemberJoined(Event):
    name: str


@dataclass(frozen=True)
class MemberLeft(Event):
    name: str


@dataclass(frozen=True)
class MembersChanged(Event):
    names: tuple[str, ...]   # you first
    capacity: int


@dataclass(frozen=True)
class Notice(Event):
    """Something the user should know: a dropped forgery, lost messages, an unsent line."""
    text: str


@dataclass(frozen=True)
class ConnectionLost(Event):
    reason: str
    retry_in: float


@dataclass(frozen=True)
class Reconnecting(Event):
    attempt: int


@dataclass(frozen=True)
class Closed(Event):
    """The session is over. ``error`` is None when the user left or the server shut down."""
    reason: str
    error: SecureXError | None


# -- text hygiene -------------------------------------------------------------

_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def display_safe(text: str, *, keep_newlines: bool = True) -> str:
    """Neutralise characters another member could use to fake output: terminal
    escapes, other control characters and bidi overrides become U+FFFD."""
    allowed = "\n\t" if keep_newlines else "\t"
    return "".join(
        ch if ch in allowed or (unicodedata.category(ch) != "Cc" and ch not in _BIDI_CONTROLS)
        else "\ufffd" for ch in text)


def validate_name(name: str) -> str:
    """The display name to use, or ValueError saying what is wrong with it."""
    name = name.strip()
    if not name:
        raise ValueError("Enter a display name.")
    if len(name) > protocol.MAX_NAME_CHARS:
        raise ValueError(f"Keep the name to {protocol.MAX_NAME_CHARS} characters.")
    if display_safe(name, keep_newlines=False) != name:
        raise ValueError("The name cannot contain control characters.")
    return name
