"""securex.session.verdict: the join verdict as a pure function, over every mix of
run results (hypothesis) and the messages a user reads."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from securex.events import Severity
from securex.session.verdict import Outcome, RunResult, join_verdict

results_strategy = st.dictionaries(st.binary(min_size=8, max_size=8), st.sampled_from(RunResult), max_size=4)


@given(results_strategy, st.data(), st.booleans(), st.booleans())
def test_the_verdict_follows_the_rules_for_any_mix_of_results(results, data, rejected_too_often, join_anyway):
    confirmed = data.draw(st.sets(st.sampled_from(sorted(results)) if results else st.nothing()))
    verdict = join_verdict(results, confirmed, rejected_too_often=rejected_too_often, refused_for=7.0,
                           join_anyway=join_anyway)
    values = list(results.values())
    verified = values.count(RunResult.VERIFIED)
    outvoted = not verified and any(r == RunResult.MISMATCH and m in confirmed for m, r in results.items())
    if (rejected_too_often and not verified) or (outvoted and not join_anyway):
        assert verdict.outcome == Outcome.WRONG_PASSPHRASE and verdict.message.startswith("Wrong passphrase")
        assert verdict.may_join_anyway == (not rejected_too_often)     # never past the guessing limit
    elif not verified and RunResult.REFUSED in values:
        assert verdict.outcome == Outcome.REFUSED and "7 s" in verdict.message
    else:
        assert verdict.outcome == Outcome.ENTER
        assert verdict.verified == verified
        assert verdict.present == len(values) - values.count(RunResult.GONE)
        first = [text for text, _ in verdict.notices if text.startswith("You are the first")]
        assert bool(first) == (verdict.present == 0)
        anyway = [text for text, severity in verdict.notices if text.startswith("You joined anyway")]
        assert bool(anyway) == outvoted
        assert all(text and severity in Severity for text, severity in verdict.notices)


@given(st.lists(st.sampled_from([RunResult.MISMATCH, RunResult.SILENT, RunResult.GONE]), max_size=4))
def test_strangers_nobody_confirmed_cannot_make_a_newcomer_give_up(unconfirmed):
    """A stranger who took the empty room first (and so verified nobody) differs from
    us: we enter and are told, as with any number of such strangers."""
    results = {bytes([i]) * 8: result for i, result in enumerate(unconfirmed)}
    verdict = join_verdict(results, set(), rejected_too_often=False, refused_for=1.0)
    assert verdict.outcome == Outcome.ENTER


def test_what_a_newcomer_reads():
    one, two, three = b"1" * 8, b"2" * 8, b"3" * 8
    wrong = join_verdict({one: RunResult.MISMATCH, two: RunResult.MISMATCH}, {one}, rejected_too_often=False,
                         refused_for=1.0)
    assert wrong.message == ("Wrong passphrase: it does not match the 2 members present. Check it with them and "
                             "try again. If you are sure of it, you can join anyway.")
    anyway = join_verdict({one: RunResult.MISMATCH, two: RunResult.MISMATCH}, {one, two}, rejected_too_often=False,
                          refused_for=1.0, join_anyway=True)
    assert anyway.outcome == Outcome.ENTER and anyway.notices == ((
        "You joined anyway: your passphrase matches none of the 2 members present, who share another one "
        "(someone else may be holding the room), and they cannot read what you send. Whoever joins with your "
        "passphrase confirms it; if nobody you expect does, check it with them.", Severity.WARNING),)
    mixed = join_verdict({one: RunResult.VERIFIED, two: RunResult.MISMATCH, three: RunResult.SILENT}, {one, two},
                         rejected_too_often=False, refused_for=1.0)
    assert mixed.notices == (
        ("Could not verify 1 member: its passphrase differs from yours. It does not see your messages.",
         Severity.WARNING),
        ("1 member present did not answer its passphrase check; it cannot see your messages.", Severity.WARNING))
    assert (mixed.verified, mixed.present) == (1, 3)
    refused = join_verdict({one: RunResult.REFUSED}, set(), rejected_too_often=False, refused_for=42.4)
    assert refused.message == "The room is refusing new members for 42 s after failed passphrase attempts."


def test_members_who_verified_us_outweigh_rejections_used_up_on_others():
    """A relay that invents members to test guesses uses up our rejections; the real
    members who verified us still let us in, and we are told who was not asked."""
    real, fake, unasked = b"r" * 8, b"f" * 8, b"u" * 8
    verdict = join_verdict({real: RunResult.VERIFIED, fake: RunResult.MISMATCH, unasked: RunResult.UNTRIED},
                           {real, fake, unasked}, rejected_too_often=True, refused_for=1.0)
    assert verdict.outcome == Outcome.ENTER and verdict.verified == 1
    assert any(text.startswith("1 member present was not asked to check your passphrase") and
               "the server may be testing guesses" in text for text, _ in verdict.notices)
    alone = join_verdict({fake: RunResult.MISMATCH, unasked: RunResult.UNTRIED}, {fake, unasked},
                         rejected_too_often=True, refused_for=1.0)
    assert alone.outcome == Outcome.WRONG_PASSPHRASE and not alone.may_join_anyway
