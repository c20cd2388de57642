"""securex.session.guard: failed guesses counted once each, back-off that doubles."""

from __future__ import annotations

import itertools

from securex.session.guard import FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS, WINDOW_SECONDS, JoinGuard, OwnRejections

_runs = itertools.count()


def fail(guard: JoinGuard, n: int, at: float, attempt: bytes = b"A") -> None:
    """``n`` failed runs, each a new guess (a fresh member nonce)."""
    for _ in range(n):
        assert guard.record(f"run-{next(_runs)}".encode(), attempt, at)


def test_a_few_failures_are_free_then_the_back_off_doubles():
    guard = JoinGuard(free_failures=4)
    fail(guard, 3, at=100.0)
    assert guard.backoff_remaining(100.0) == 0
    fail(guard, 1, at=100.0)                       # the budget is used up
    assert guard.backoff_remaining(100.0) == FIRST_BACKOFF_SECONDS
    fail(guard, 1, at=100.0)
    assert guard.backoff_remaining(100.0) == 2 * FIRST_BACKOFF_SECONDS
    assert guard.backoff_remaining(100.0 + 2 * FIRST_BACKOFF_SECONDS) == 0


def test_the_back_off_is_capped_and_old_failures_are_forgotten():
    guard = JoinGuard(free_failures=1)
    fail(guard, 30, at=0.0)
    assert guard.backoff_remaining(0.0) == MAX_BACKOFF_SECONDS
    assert guard.backoff_remaining(WINDOW_SECONDS + 1) == 0


def test_the_same_run_reported_twice_counts_once():
    guard = JoinGuard(free_failures=2)
    assert guard.record(b"run", b"attempt", 0.0)
    assert not guard.record(b"run", b"attempt", 1.0)
    assert guard.backoff_remaining(1.0) == 0


def test_a_guesser_reusing_its_nonce_is_still_counted_once_per_guess():
    # The key is the member's run nonce, which the guesser does not choose.
    guard = JoinGuard(free_failures=2)
    guard.record(b"member-run-1", b"same-attempt", 0.0)
    guard.record(b"member-run-2", b"same-attempt", 0.0)
    assert guard.backoff_remaining(0.0) > 0


def test_the_notice_counts_attempts_in_the_last_minute_at_most_every_10_seconds():
    guard = JoinGuard(free_failures=100)
    fail(guard, 3, at=0.0, attempt=b"one")      # one newcomer, three members: one attempt
    fail(guard, 2, at=0.0, attempt=b"two")
    assert guard.notice_due(0.0) == "2 failed attempts to join with a wrong passphrase in the last minute."
    fail(guard, 1, at=1.0, attempt=b"three")
    assert guard.notice_due(1.0) is None
    assert guard.next_notice_at() == 10.0
    assert "3 failed attempts" in guard.notice_due(10.0)


def test_other_members_reporting_the_same_attempt_is_no_second_notice():
    # Found by a tester: one wrong passphrase, announced, then announced again 10 s later
    # once the other member's report of the same attempt came in: it read like a second attack.
    guard = JoinGuard(free_failures=100)
    fail(guard, 1, at=0.0, attempt=b"one")
    assert guard.notice_due(0.0) == "1 failed attempt to join with a wrong passphrase in the last minute."
    fail(guard, 1, at=0.5, attempt=b"one")       # Carol's report of the same newcomer's run with her
    assert guard.next_notice_at() is None and guard.notice_due(10.0) is None
    fail(guard, 1, at=11.0, attempt=b"two")       # a new attempt is news
    assert "2 failed attempts" in guard.notice_due(11.0)


def test_the_notice_says_at_once_when_the_room_starts_refusing_joins():
    guard = JoinGuard(free_failures=2)
    fail(guard, 1, at=0.0)
    assert "refuses" not in guard.notice_due(0.0)
    fail(guard, 1, at=1.0)          # within the 10 s quiet time, but this is news
    assert "refuses new joins for 10 s" in guard.notice_due(1.0)


def test_two_honest_typos_in_a_room_of_five_cost_nothing_a_third_is_held_back():
    guard = JoinGuard()
    fail(guard, 4, at=0.0)          # one typo: one failed run with each of four members
    assert guard.refusal(0.0, in_flight=0) == 0
    fail(guard, 3, at=0.0)          # the second typo, three members done, one still running
    assert guard.refusal(0.0, in_flight=1) > 0
    fail(guard, 1, at=0.0)
    assert guard.backoff_remaining(0.0) == FIRST_BACKOFF_SECONDS


def test_runs_in_flight_use_up_the_budget_so_parallel_joins_get_no_more_answers():
    guard = JoinGuard(free_failures=8)
    answered = 0
    for in_flight in range(50):               # fifty joins at once, none finished yet
        if guard.refusal(0.0, in_flight=in_flight) == 0:
            answered += 1
    assert answered == 8


def test_the_budget_is_fixed_not_set_by_anything_the_relay_says():
    assert JoinGuard().free_failures == 8
    assert not hasattr(JoinGuard, "set_room_size")


def test_a_newcomer_rejected_too_often_stops_trying():
    own = OwnRejections(allowed=8)
    for left in range(8, 0, -1):
        assert own.remaining(0.0) == left
        own.record(0.0)
    assert own.remaining(0.0) == 0
    assert own.remaining(WINDOW_SECONDS + 1) == 8
