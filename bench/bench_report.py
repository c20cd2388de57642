"""How the benchmark speaks: one line per measured figure, with its unit, as soon
as it is measured; statistics over repeated runs (median and spread); and the
closing summary of targets.

Every line is flushed at once: figures appear while the run goes on, and no
output is left in a buffer that a forked member process could print again.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO


class Throughput:
    """For a result that has ``deliveries``, ``seconds`` and the relay's ``cpu_seconds``."""

    deliveries: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds

    @property
    def cpu_us(self) -> float:
        """The relay's CPU per delivery, in microseconds."""
        return 1e6 * self.cpu_seconds / self.deliveries


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The value below which ``fraction`` of the samples lie (nearest rank)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def spread(values: Sequence[float], unit: str, digits: int = 0, of: str = "runs") -> str:
    """``median X unit`` and, for several values, how many ``of`` what and their range."""
    if not values:
        return "no values"
    text = f"median {statistics.median(values):,.{digits}f} {unit}"
    if len(values) > 1:
        text += f" ({len(values)} {of}: {min(values):,.{digits}f}-{max(values):,.{digits}f})"
    return text


def size_label(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


def verification(lost: int, duplicated: int, reordered: int, extra: str = "") -> str:
    """The verification clause every delivery figure ends with (the smoke test reads it)."""
    return f"verified: {lost} lost, {duplicated} duplicated, {reordered} reordered" + (f", {extra}" if extra else "")


@dataclass
class Target:
    name: str
    met: bool | None     # None: not measured in this run
    detail: str


@dataclass
class Report:
    out: TextIO = field(default_factory=lambda: sys.stdout)
    targets: list[Target] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    ratio: float | None = None

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def section(self, phase: str, what: str) -> None:
        self.line()
        self.line(f"[{phase}] {what}")

    def figure(self, label: str, text: str) -> None:
        self.line(f"  {label}: {text}")

    def note(self, text: str) -> None:
        self.line(f"    ({text})")

    def failure(self, phase: str, error: BaseException | str) -> None:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.failures.append(f"{phase}: {text}")
        self.line(f"  FAILED {phase}: {text}")

    def target(self, name: str, met: bool | None, detail: str) -> None:
        self.targets.append(Target(name, met, detail))

    def summary(self) -> None:
        self.line()
        self.line("Targets")
        for target in self.targets:
            verdict = {True: "met", False: "MISSED", None: "not measured"}[target.met]
            self.line(f"  {target.name}: {target.detail} -> {verdict}")
        for failure in self.failures:
            self.line(f"  FAILED {failure}")
        self.line(f"every phase ran and every delivery was verified: {'yes' if not self.failures else 'NO'}")
        ratio = "n/a (the flood phase did not run)" if self.ratio is None else f"{self.ratio:.2f}"
        self.line(f"ratio secure/bare server throughput: {ratio}")
