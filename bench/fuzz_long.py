"""Long-running fuzz, on demand: the properties of tests/test_fuzz.py with far more examples.

    python bench/fuzz_long.py --examples 200000
    python bench/fuzz_long.py --seconds 300

Runs every property of ``PURE_PROPERTIES`` and ``SESSION_PROPERTIES`` (the latter
against one real server and a real ChatSession) in rounds of fresh random examples
until the example budget or the time is used up, then prints, per property and in
total: examples run, seconds, exceptions found and forgeries accepted. A forgery is
a tampered, replayed, reordered or injected message that was accepted or shown. Exit
status 1 if anything was found.
"""

from __future__ import annotations

import argparse
import functools
import platform
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import hypothesis  # noqa: E402
from hypothesis import HealthCheck, Phase, settings  # noqa: E402

import test_fuzz  # noqa: E402

PURE_BATCH = 2000        # examples per hypothesis run; fresh runs keep its memory small
SESSION_BATCH = 1000
SESSION_SHARE = 0.1      # of an --examples budget; socket examples cost ~10x more


@dataclass
class Tally:
    name: str
    session: bool
    examples: int = 0
    seconds: float = 0.0
    exceptions: int = 0
    forgeries: int = 0
    failure: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.exceptions or self.forgeries)


def counted(check: Callable[..., None], tally: Tally) -> Callable[..., None]:
    """``check`` that counts the examples it passes (hypothesis sees the same signature)."""
    @functools.wraps(check)
    def run(*args, **kwargs):
        check(*args, **kwargs)
        tally.examples += 1
    return run


def is_forgery(error: BaseException) -> bool:
    # hypothesis raises an exception group for several distinct failures (the
    # builtin BaseExceptionGroup is Python 3.11+; we support 3.10).
    grouped = getattr(error, "exceptions", None)
    if isinstance(grouped, tuple):
        return any(is_forgery(e) for e in grouped)
    return isinstance(error, test_fuzz.ForgeryAccepted)


def run_batch(tally: Tally, check, strategies, examples: int, **fixed) -> None:
    config = settings(max_examples=examples, deadline=None, database=None,
                      phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
    started = time.monotonic()
    try:
        test_fuzz.run_property(counted(check, tally), strategies, config, **fixed)
    except Exception as error:   # every failure is a finding to report
        if is_forgery(error):
            tally.forgeries += 1
        else:
            tally.exceptions += 1
        tally.failure = "".join(traceback.format_exception(error))
    finally:
        tally.seconds += time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--examples", type=int, help="total examples to run (default: 20000)")
    budget.add_argument("--seconds", type=float, help="run for about this long instead")
    parser.add_argument("--no-session", action="store_true", help="skip the socket-level properties")
    args = parser.parse_args(argv)
    if args.examples is None and args.seconds is None:
        args.examples = 20_000

    pure = [Tally(name, False) for name in test_fuzz.PURE_PROPERTIES]
    session = [] if args.no_session else [Tally(name, True) for name in test_fuzz.SESSION_PROPERTIES]
    if args.examples is not None:
        session_each = max(30, int(args.examples * SESSION_SHARE) // max(len(session), 1))
        pure_each = max(1, (args.examples - session_each * len(session)) // len(pure))
        targets = {t.name: session_each if t.session else pure_each for t in pure + session}
        deadline = float("inf")
    else:
        targets = {t.name: sys.maxsize for t in pure + session}
        deadline = time.monotonic() + args.seconds

    print(f"Secure X long fuzz: hypothesis {hypothesis.__version__}, Python {platform.python_version()}, "
          f"{len(pure) + len(session)} properties", flush=True)
    started = time.monotonic()
    with test_fuzz.fuzz_room() if session else nullcontext() as room:
        while time.monotonic() < deadline:
            active = [t for t in pure + session if not t.failed and t.examples < targets[t.name]]
            if not active:
                break
            for tally in active:
                table = test_fuzz.SESSION_PROPERTIES if tally.session else test_fuzz.PURE_PROPERTIES
                check, strategies = table[tally.name]
                batch = min(SESSION_BATCH if tally.session else PURE_BATCH, targets[tally.name] - tally.examples)
                fixed = {"room": room} if tally.session else {}
                before = tally.examples
                run_batch(tally, check, strategies, batch, **fixed)
                if tally.examples == before and not tally.failed:
                    targets[tally.name] = tally.examples   # hypothesis found nothing new to try
                if time.monotonic() >= deadline:
                    break
    elapsed = time.monotonic() - started

    width = max(len(t.name) for t in pure + session)
    print(f"\n{'property':<{width}}  {'examples':>9}  {'seconds':>8}  {'exceptions':>10}  {'forgeries':>9}")
    for t in pure + session:
        print(f"{t.name:<{width}}  {t.examples:>9,}  {t.seconds:>8.1f}  {t.exceptions:>10}  {t.forgeries:>9}")
    total = sum(t.examples for t in pure + session)
    exceptions = sum(t.exceptions for t in pure + session)
    forgeries = sum(t.forgeries for t in pure + session)
    print(f"{'total':<{width}}  {total:>9,}  {elapsed:>8.1f}  {exceptions:>10}  {forgeries:>9}")
    print(f"\nexamples run: {total:,}; time: {elapsed:.1f} s; exceptions found: {exceptions}; "
          f"forgeries accepted: {forgeries}")
    for t in pure + session:
        if t.failed:
            print(f"\n--- {t.name} ---\n{t.failure}")
    return 1 if exceptions or forgeries else 0


if __name__ == "__main__":
    sys.exit(main())
