"""The join verdict: what a newcomer's passphrase checks with the members present
add up to, and what the user is told. A pure function of the runs' results; the
core acts on it (ends the link, or enters the room and shows the notices).

Only a mismatch with a member the relay lists as *confirmed* (it has verified
someone) proves our passphrase wrong; against unconfirmed members nobody can tell
who typed it wrong, so we enter and say so. A refusal is unauthenticated, so it
never keeps us waiting: we leave and come back once the wait is over.

"Confirmed" proves less than it seems: a stranger with two connections confirms
itself. So a newcomer the members present all reject is told it is probably a typo,
and that it may join anyway (``join_anyway``): it then enters alone, and whoever
comes with its passphrase confirms it, as in an empty room.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from securex.events import Severity


class RunResult(enum.Enum):
    VERIFIED = "verified"
    MISMATCH = "passphrase differs"
    REFUSED = "refusing new members for now"
    SILENT = "did not answer"
    GONE = "left"
    UNTRIED = "not tried: our passphrase was rejected too often lately"


class Outcome(enum.Enum):
    """What the core does on the verdict."""
    ENTER = "enter the room"
    WRONG_PASSPHRASE = "the passphrase is wrong: stop"
    REFUSED = "the room refuses newcomers for now: come back later"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    message: str = ""                                   # why the link ends (not for ENTER)
    may_join_anyway: bool = False                        # WRONG_PASSPHRASE: the user may insist
    verified: int = 0                                    # members who verified us
    present: int = 0                                     # members present (not counting those who left)
    notices: tuple[tuple[str, Severity], ...] = ()       # to show on entering


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def join_verdict(results: Mapping[bytes, RunResult], confirmed: Collection[bytes], *, rejected_too_often: bool,
                 refused_for: float, join_anyway: bool = False, back: bool = False) -> Verdict:
    """The verdict once every run with a member present has ended (or timed out), or
    was never tried (UNTRIED: no rejections were left to risk on it).
    ``confirmed``: members the relay lists as having verified someone;
    ``rejected_too_often``: no rejections of our passphrase are left for now;
    ``refused_for``: seconds until a refusing member will answer again;
    ``join_anyway``: the user insists on this passphrase against confirmed members;
    ``back``: this is a reconnect (the user was told what being first means already)."""
    present = [result for result in results.values() if result != RunResult.GONE]
    verified = present.count(RunResult.VERIFIED)
    mismatched = [member_id for member_id, result in results.items() if result == RunResult.MISMATCH]
    silent = present.count(RunResult.SILENT)
    refused = present.count(RunResult.REFUSED)
    untried = present.count(RunResult.UNTRIED)
    if rejected_too_often and not verified:
        return Verdict(Outcome.WRONG_PASSPHRASE,
                       "Wrong passphrase: it has been rejected too many times in the last 15 minutes, so this "
                       "client stops trying by itself (each rejection tests a guess at it). Check the passphrase "
                       "with the others, then join again.")
    outvoted = not verified and any(member_id in confirmed for member_id in mismatched)
    if outvoted and not join_anyway:
        n = len(mismatched)
        return Verdict(Outcome.WRONG_PASSPHRASE,
                       f"Wrong passphrase: it does not match the {n} member{_plural(n, '', 's')} present. "
                       "Check it with them and try again. If you are sure of it, you can join anyway.",
                       may_join_anyway=True)
    if not verified and refused:
        return Verdict(Outcome.REFUSED, f"The room is refusing new members for {refused_for:.0f} s after failed "
                                        "passphrase attempts.")
    notices: list[tuple[str, Severity]] = []
    if outvoted:
        n = len(mismatched)
        notices.append((f"You joined anyway: your passphrase matches none of the {n} member"
                        f"{_plural(n, '', 's')} present, who share another one (someone else may be holding "
                        f"the room), and {_plural(n, 'it', 'they')} cannot read what you send. Whoever joins with "
                        "your passphrase confirms it; if nobody you expect does, check it with them.",
                        Severity.WARNING))
    elif not present:
        if not back:        # a tester's finding: said again after every reconnect to an empty room
            notices.append(("You are the first here. Nobody can confirm the passphrase until someone else joins; "
                            "you will be told if theirs differs.", Severity.INFO))
    elif not verified and mismatched:
        n = len(mismatched)
        notices.append((f"The {_plural(n, 'member', f'{n} members')} present {_plural(n, 'has', 'have')} a "
                        "different passphrase, and nobody has confirmed either one yet: one of you typed it "
                        "wrong. If it may be you, leave and join again with the right one; until then you are "
                        "in the room, but nobody there reads what you write. The next person to arrive with "
                        "the right passphrase confirms it.", Severity.WARNING))
    elif mismatched:
        n = len(mismatched)
        notices.append((f"Could not verify {n} member{_plural(n, '', 's')}: {_plural(n, 'its', 'their')} "
                        f"passphrase differs from yours. {_plural(n, 'It does', 'They do')} not see your "
                        "messages.", Severity.WARNING))
    if verified and refused:
        notices.append((f"{refused} member{_plural(refused, '', 's')} present {_plural(refused, 'is', 'are')} "
                        "refusing new members for a while after failed passphrase attempts; this client will "
                        "try them again then.", Severity.WARNING))
    if untried:
        notices.append((f"{untried} member{_plural(untried, '', 's')} present {_plural(untried, 'was', 'were')} "
                        "not asked to check your passphrase: it was rejected too many times in the last 15 minutes "
                        f"(each rejection tests a guess at it), and {_plural(untried, 'it', 'they')} cannot see your "
                        "messages. If you did not expect rejections, the server may be testing guesses at your "
                        "passphrase.", Severity.WARNING))
    if silent:
        notices.append((f"{silent} member{_plural(silent, '', 's')} present did not answer "
                        f"{_plural(silent, 'its', 'their')} passphrase check; {_plural(silent, 'it', 'they')} "
                        "cannot see your messages.", Severity.WARNING))
    return Verdict(Outcome.ENTER, verified=verified, present=len(present), notices=tuple(notices))
