"""The members one client has verified, and what it has received from each. Sans-IO.

* ``ReceivedLog`` remembers which message numbers of one sender's run arrived,
  so a message delivered twice (resent after a reconnect) is shown once, a gap
  is reported once, and a message filling a reported gap is marked late.
* ``labels`` gives each member the name people see, with a safety-code suffix
  while two members share a name.
* ``view_difference`` explains, in words, how another member's view of the room
  differs from ours.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from securex.events import Member
from securex.session.handshake import VerifiedPeer
from securex.text import name_key

DEDUPE_WINDOW = 4096        # message numbers remembered below the highest one seen
MAX_SENDER_RUNS = 256       # senders' runs remembered (bounded against a hostile stream)
RUNS_PER_SENDER = 4         # a member's restarts remembered: one member cannot push out another's
SUFFIX_CHARS = 4


class ReceivedLog:
    """The message numbers received from one run of one sender. Bounded in memory and
    in work whatever numbers arrive: a gap is counted, not walked, and only the last
    DEDUPE_WINDOW numbers are remembered one by one."""

    def __init__(self) -> None:
        self.high = -1                       # highest number received
        self._seen: set[int] = set()         # received numbers within DEDUPE_WINDOW of high
        self._missing: set[int] = set()      # reported as not received (within the window)
        self.reported_through = -1           # numbers below this were already checked for gaps

    def has(self, msg_no: int) -> bool:
        return msg_no in self._seen or msg_no <= self.high - DEDUPE_WINDOW

    def add(self, msg_no: int, expect_from: int) -> tuple[int, bool]:
        """Record a new number: (how many numbers it shows were skipped, whether it
        arrives late, after a gap that was already reported)."""
        late = msg_no in self._missing
        self._missing.discard(msg_no)
        skipped = self.missing_until(msg_no, expect_from)
        self._seen.add(msg_no)
        if msg_no > self.high:
            self.high = msg_no
        self._prune()
        return skipped, late

    def missing_until(self, next_msg_no: int, expect_from: int) -> int:
        """How many numbers from ``expect_from`` up to (not including) ``next_msg_no``
        never arrived and were not reported yet; they count as reported now."""
        start = max(expect_from, self.reported_through)
        if next_msg_no <= start:
            return 0
        floor = self.high - DEDUPE_WINDOW          # at or below: treated as seen
        counted_seen = max(0, min(next_msg_no, floor + 1) - start)
        window_start = max(start, floor + 1)
        if next_msg_no - window_start < len(self._seen):     # walk the shorter of the two
            seen_in_window = sum(1 for n in range(window_start, next_msg_no) if n in self._seen)
        else:
            seen_in_window = sum(1 for n in self._seen if window_start <= n < next_msg_no)
        gap = (next_msg_no - start) - counted_seen - seen_in_window
        self.reported_through = next_msg_no
        if gap > 0 and next_msg_no - window_start <= DEDUPE_WINDOW:
            self._missing.update(n for n in range(window_start, next_msg_no) if n not in self._seen)
        return max(0, gap)

    def _prune(self) -> None:
        floor = self.high - DEDUPE_WINDOW
        if len(self._seen) > 2 * DEDUPE_WINDOW or len(self._missing) > 2 * DEDUPE_WINDOW:
            self._seen = {n for n in self._seen if n > floor}
            self._missing = {n for n in self._missing if n > floor}


class ReceivedLogs:
    """A bounded map from (sender key, run id) to its ``ReceivedLog``. A sender's new
    runs push out only its own old ones, and past the overall bound the logs of
    members still here (or away, owed a catch-up) are the last to go: forgetting one
    would show its resent messages twice."""

    def __init__(self, keep: Callable[[bytes], bool] = lambda public_key: False) -> None:
        self._logs: OrderedDict[tuple[bytes, bytes], ReceivedLog] = OrderedDict()
        self._keep = keep

    def get(self, public_key: bytes, run_id: bytes) -> ReceivedLog:
        key = (public_key, run_id)
        log = self._logs.get(key)
        if log is not None:
            self._logs.move_to_end(key)
            return log
        own = [k for k in self._logs if k[0] == public_key]
        for old in own[:max(0, len(own) - RUNS_PER_SENDER + 1)]:
            del self._logs[old]
        log = self._logs[key] = ReceivedLog()
        while len(self._logs) > MAX_SENDER_RUNS:
            victim = next((k for k in self._logs if not self._keep(k[0])), next(iter(self._logs)))
            del self._logs[victim]
        return log


@dataclass
class Peer:
    """A member verified over this connection, known to the relay by ``member_id``."""
    member_id: bytes
    verified: VerifiedPeer
    member: Member
    heard_at: float
    sent_at: float
    goodbye: bool = False
    silence_reported: bool = False
    unacknowledged: set[int] = field(default_factory=set)       # received message numbers to acknowledge
    receipt_sent_at: float = float("-inf")                       # our last ACK to it
    reported_views: set[tuple[frozenset[bytes], frozenset[bytes]]] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.verified.identity.name

    @property
    def expect_from(self) -> int:
        """The first of its message numbers owed to us since this pairing."""
        return self.verified.identity.next_msg_no


def labels(names_and_codes: list[tuple[str, str]],
           unfamiliar: Callable[[str, str], bool] = lambda name, code: False) -> list[str]:
    """The label of each (name, safety code): the name, or ``name (CODE)`` with the
    start of the safety code while another member has the same name, or for as long as
    ``unfamiliar(name, code)`` (not the code trusted for that name: alone in the room, it
    must not pass for the member we know)."""
    counts: dict[str, int] = {}
    for name, _ in names_and_codes:
        counts[name_key(name)] = counts.get(name_key(name), 0) + 1
    return [f"{name} ({code.replace(' ', '')[:SUFFIX_CHARS]})"
            if counts[name_key(name)] > 1 or unfamiliar(name, code) else name
            for name, code in names_and_codes]


def view_difference(sender: str, their_view: frozenset[bytes], my_view: frozenset[bytes],
                    names_by_tag: dict[bytes, str]) -> str:
    """How ``sender``'s room differs from ours, in words."""
    parts = []
    unknown = their_view - my_view
    if unknown:
        parts.append(f"{sender} sees {len(unknown)} member{'s' if len(unknown) != 1 else ''} "
                     "you have not verified")
    hidden = [names_by_tag.get(tag, "a member") for tag in sorted(my_view - their_view)]
    if hidden:
        parts.append(f"{sender} does not see {', '.join(hidden)}")
    return "; ".join(parts)
