"""Counting wrong-passphrase guesses across the room, and backing off. Sans-IO.

Every failed confirmation is one guess at the passphrase (and so is a run a
newcomer abandons after seeing our confirmation: it could have checked its
guess against it). Each member counts the failures it sees itself and those its
verified peers report, once each, keyed by the nonce the *member* drew for that
run: a guesser cannot make two guesses count as one by reusing its own nonce.
The newcomer's nonce, shared by its runs with each member, only groups them
into "attempts" for the people reading the notice. A few are free,
enough for honest typos in a full room; after that the room stops answering
new joins for a back-off that doubles with every further failure, up to ten
minutes, so a stranger's guessing slows to a crawl while members are told.

Runs still in flight count as well: a member answers a new join only while its
recorded failures plus the runs it is still waiting on stay within the free
budget, so a burst of parallel joins gets no more answers than a sequence would.
The budget is fixed here, not taken from anything the relay says.

Legitimate newcomers are held back too while the room backs off: that is the
price of a shared passphrase with no accounts, and it is said in the README.

``OwnRejections`` is the newcomer's side: each time a member (or something
posing as one) rejects our passphrase, whoever sent that answer learnt whether
its guess at our passphrase was right. A newcomer never has more runs open that
could still end in a rejection than it has rejections left, so however many
members a relay invents, at most OWN_REJECTIONS_ALLOWED guesses are tested in 15
minutes; with none left it stops joining on its own, so a hostile relay cannot
farm guesses by cutting and re-admitting us either.
"""

from __future__ import annotations

from collections import OrderedDict

WINDOW_SECONDS = 15 * 60           # failures older than this are forgotten
FREE_FAILURES = 8                  # two honest typos in a room of five (one failed run per member each)
BUSY_SECONDS = 5.0                 # "come back shortly" while runs in flight use up the budget
FIRST_BACKOFF_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 10 * 60.0
NOTICE_EVERY_SECONDS = 10.0        # members are told at most this often, with the count
MAX_REMEMBERED = 1024              # bounded against a flood of reports


class JoinGuard:
    def __init__(self, free_failures: int = FREE_FAILURES) -> None:
        self.free_failures = free_failures
        # the member's run nonce -> (the newcomer's attempt nonce, when), oldest first
        self._failures: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()
        self._last_notice_at: float | None = None
        self._unannounced = 0
        self._announced_backoff = False    # the last notice already said the room refuses joins

    def record(self, run: bytes, attempt: bytes, now: float) -> bool:
        """Count one failed run (seen here or reported by a peer). False if it was
        already counted."""
        self._forget_old(now)
        if run in self._failures:
            return False
        # One newcomer's attempt fails once with each member present, and each reports it:
        # it counts towards the back-off each time, but is news to the user only once.
        new_attempt = all(seen != attempt for seen, _ in self._failures.values())
        self._failures[run] = (attempt, now)
        while len(self._failures) > MAX_REMEMBERED:
            self._failures.popitem(last=False)
        if new_attempt:
            self._unannounced += 1
        return True

    def backoff_remaining(self, now: float) -> float:
        """Seconds until the room answers new joins again (0 when it does)."""
        self._forget_old(now)
        beyond = len(self._failures) - self.free_failures     # 0 when the budget is just used up
        if beyond < 0:
            return 0.0
        last = next(reversed(self._failures.values()))[1]
        backoff = min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** min(beyond, 16))
        return max(0.0, last + backoff - now)

    def refusal(self, now: float, in_flight: int) -> float:
        """Seconds a new join must wait before we answer it (0: answer now). Within the
        budget, as many runs may be in flight as guesses are left; past it (once the
        back-off is over), one at a time, so each further guess doubles the wait."""
        backoff = self.backoff_remaining(now)
        if backoff:
            return backoff
        left = self.free_failures - len(self._failures)
        return BUSY_SECONDS if in_flight >= max(1, left) else 0.0

    def recent_attempts(self, now: float, seconds: float = 60.0) -> int:
        """Distinct attempts to join (one per newcomer connection) that failed lately."""
        return len({attempt for attempt, at in self._failures.values() if now - at <= seconds})

    def notice_due(self, now: float) -> str | None:
        """A line for the user about new failures, at most every NOTICE_EVERY_SECONDS,
        except that the room starting to refuse joins is said at once."""
        backoff = self.backoff_remaining(now)
        starts_refusing = bool(backoff) and not self._announced_backoff
        if not self._unannounced and not starts_refusing:
            return None
        if (not starts_refusing and self._last_notice_at is not None
                and now - self._last_notice_at < NOTICE_EVERY_SECONDS):
            return None
        self._last_notice_at, self._unannounced, self._announced_backoff = now, 0, bool(backoff)
        count = self.recent_attempts(now)
        text = (f"{count} failed attempt{'s' if count != 1 else ''} to join with a wrong passphrase "
                f"in the last minute.")
        if backoff:
            text += f" The room refuses new joins for {backoff:.0f} s."
        return text

    def next_notice_at(self) -> float | None:
        if not self._unannounced or self._last_notice_at is None:
            return None
        return self._last_notice_at + NOTICE_EVERY_SECONDS

    def _forget_old(self, now: float) -> None:
        while self._failures and now - next(iter(self._failures.values()))[1] > WINDOW_SECONDS:
            self._failures.popitem(last=False)


OWN_REJECTIONS_ALLOWED = 8     # a typo costs one per member present; a few typos are fine


class OwnRejections:
    """How often members rejected our passphrase lately (see the module docstring)."""

    def __init__(self, allowed: int = OWN_REJECTIONS_ALLOWED) -> None:
        self.allowed = allowed
        self._times: list[float] = []

    def record(self, now: float) -> None:
        self._times = [t for t in self._times if now - t <= WINDOW_SECONDS] + [now]

    def remaining(self, now: float) -> int:
        """Rejections still allowed in the window."""
        return max(0, self.allowed - len([t for t in self._times if now - t <= WINDOW_SECONDS]))

