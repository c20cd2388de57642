"""End-to-end throughput: real clients sealing and opening every text.

Five members, each a real ``ChatSession`` in a process of its own
(``bench_members``), join a room; on one signal each sends ``count`` texts of
100 bytes through ``ChatSession.send_text``, staying at most a window of texts
ahead of what it has received (as a person would not type faster than they
read), while its handler thread takes the ``ChatMessage`` events. A delivery is
one text shown to one member. The rate is every delivery over the time from the
signal until the last member has every text; the relay's CPU over that window
(receipts included: every member acknowledges what it reads) divided by the
deliveries is its cost per delivery.

Every member checks every text it was shown: from each sender, numbers
0..count-1 each once, in order, with the exact text; and no warning notice
(a gap, a message given up) during the run.

Measured through the Secure X relay and, for comparison, the bare relay.
"""

from __future__ import annotations

from dataclasses import dataclass

import bench_setup  # noqa: F401  (the project on sys.path)
from bench_members import RUN_TIMEOUT, MemberError, chat_room, start_together
from bench_relays import KINDS, Relay, running_relay, wait_until_empty
from bench_report import Report, Throughput, size_label, spread, verification
from bench_settings import ROOM, Settings

TEXT_SIZE = 100


@dataclass
class EndToEndResult(Throughput):
    deliveries: int
    seconds: float
    cpu_seconds: float
    lost: int
    duplicated: int
    reordered: int
    problems: list[str]


def run_end_to_end(relay: Relay, members: int, count: int, window: int) -> EndToEndResult:
    wait_until_empty(relay.port)
    with chat_room(relay.port, members) as (room, go):
        cpu_before = relay.cpu_seconds()
        started = start_together(room, go, "flood", count=count, text_size=TEXT_SIZE, window=window)
        checks = [member.reply(timeout=RUN_TIMEOUT) for member in room]
        cpu = relay.cpu_seconds() - cpu_before
    problems = [f"{member.name}: {w}" for member, check in zip(room, checks, strict=True) for w in check["warnings"]]
    problems += [f"{member.name}: {check['wrong']} texts differ" for member, check in zip(room, checks, strict=True)
                 if check["wrong"]]
    return EndToEndResult(members * (members - 1) * count, max(c["done_at"] for c in checks) - started, cpu,
                          *(sum(c[key] for c in checks) for key in ("lost", "duplicated", "reordered")), problems)


def run_phase(report: Report, settings: Settings) -> None:
    report.section("e2e", f"end to end: {ROOM} real ChatSession clients, each in its own process, all sending "
                          f"{size_label(TEXT_SIZE)} texts (sealed per recipient, opened, acknowledged)")
    for kind in KINDS:
        label = f"e2e {kind} relay, {ROOM} ChatSession clients, {size_label(TEXT_SIZE)}"
        runs: list[EndToEndResult] = []
        with running_relay(kind) as relay:
            for _ in range(settings.e2e_repeats):
                try:
                    runs.append(run_end_to_end(relay, ROOM, settings.e2e_texts, settings.e2e_window))
                except (MemberError, RuntimeError) as error:
                    report.failure(label, error)
        if not runs:
            continue
        report.figure(f"{label}, throughput", spread([r.rate for r in runs], "deliveries/s"))
        report.figure(f"{label}, relay CPU", spread([r.cpu_us for r in runs], "us/delivery", 2))
        lost, duplicated, reordered = (sum(getattr(r, a) for r in runs) for a in ("lost", "duplicated", "reordered"))
        report.figure(f"{label}, check", verification(lost, duplicated, reordered,
                                                      f"{sum(r.deliveries for r in runs):,} texts shown"))
        for run in runs:
            if run.problems or run.lost or run.duplicated or run.reordered:
                report.failure(label, "; ".join(run.problems[:3]) or "texts lost, duplicated or reordered")
