"""securex.session.members: each message shown once, gaps reported once, late ones
marked; labels that tell same-named members apart; room views compared in words."""

from __future__ import annotations

from securex.session.members import DEDUPE_WINDOW, ReceivedLog, ReceivedLogs, labels, view_difference


def test_in_order_messages_report_no_gap():
    log = ReceivedLog()
    assert [log.add(n, expect_from=0) for n in range(3)] == [(0, False)] * 3


def test_a_gap_is_reported_once_and_the_late_message_is_marked():
    log = ReceivedLog()
    log.add(0, expect_from=0)
    assert log.add(3, expect_from=0) == (2, False)     # 1 and 2 missing
    assert log.add(1, expect_from=0) == (0, True)      # 1 arrives late
    assert log.missing_until(4, expect_from=0) == 0    # 2 was reported already


def test_messages_before_the_pairing_are_not_owed():
    log = ReceivedLog()
    assert log.add(57, expect_from=57) == (0, False)


def test_a_goodbye_or_keepalive_reveals_a_withheld_tail():
    log = ReceivedLog()
    log.add(0, expect_from=0)
    assert log.missing_until(3, expect_from=0) == 2
    assert log.missing_until(3, expect_from=0) == 0


def test_duplicates_are_recognised_within_and_below_the_window():
    log = ReceivedLog()
    log.add(5, expect_from=0)
    assert log.has(5) and not log.has(6)
    log.add(5 + 2 * DEDUPE_WINDOW, expect_from=5 + 2 * DEDUPE_WINDOW)
    assert log.has(1)   # far below the window: treated as seen


def test_sender_runs_are_bounded():
    logs = ReceivedLogs()
    for i in range(10_000):
        logs.get(i.to_bytes(4, "big"), b"run")
    assert len(logs._logs) <= 256


def test_labels_add_a_code_only_while_names_clash():
    assert labels([("Alice", "AAAA BBBB"), ("Bob", "CCCC DDDD")]) == ["Alice", "Bob"]
    assert labels([("Bob", "AAAA BBBB"), ("bob", "CCCC DDDD")]) == ["Bob (AAAA)", "bob (CCCC)"]


def test_view_difference_names_who_is_missing_and_counts_strangers():
    mine = frozenset({b"me", b"carol"})
    theirs = frozenset({b"me", b"ghost1", b"ghost2"})
    text = view_difference("Bob", theirs, mine, {b"carol": "Carol"})
    assert text == "Bob sees 2 members you have not verified; Bob does not see Carol"


def test_a_number_far_ahead_costs_constant_time_and_memory():
    """Review finding: one message numbered 2**63 made the receiver walk the gap."""
    log = ReceivedLog()
    log.add(0, expect_from=0)
    assert log.missing_until(2**63, expect_from=0) == 2**63 - 1
    assert log.add(2**63 + 5, expect_from=0) == (5, False)
    assert len(log._missing) <= DEDUPE_WINDOW + 5


def test_numbers_spread_apart_keep_memory_bounded():
    log = ReceivedLog()
    for i in range(2000):
        log.add(i * (DEDUPE_WINDOW - 1), expect_from=0)
    assert len(log._missing) <= 2 * DEDUPE_WINDOW and len(log._seen) <= 2 * DEDUPE_WINDOW + 1


def test_lookalike_names_are_one_name_for_labels():
    assert labels([("Bob", "AAAA BBBB"), ("BOB", "CCCC DDDD")]) == ["Bob (AAAA)", "BOB (CCCC)"]
