"""Relay throughput for routed frames: the Secure X relay against the bare relay, in one run.

One run: ``members`` flooding members (``bench_flooder``), each a child process
of its own, join an empty room for real, seal their texts before any timing,
and on one signal send them all as fast as the relay takes them. A delivery is
one ROUTED frame received by one member. The rate is all deliveries over the
time from the signal until the last member has all of its frames; the relay's
CPU time over that window (``bench_proc``) divided by the deliveries is its
cost per delivery. Then the parent compares what each receiver got from each
sender (counters, SHA-256) with what that sender sealed for it.

The phase floods rooms of 2 to 5 members with 100 B and 4 KiB texts through
both relays, taking turns, the headline (5 members, 100 B) several times, and
prints medians and ranges.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

import bench_setup  # noqa: F401  (the project on sys.path)
from bench_flooder import FLOOD_TIMEOUT, FloodPlan, member_main
from bench_pipes import unpack_reply
from bench_relays import BARE, KINDS, SECURE, Relay, running_relay, wait_until_empty
from bench_report import Report, Throughput, size_label, spread, verification
from bench_settings import FLOOD_ROOMS, TEXT_SIZES, Settings
from helpers import WAIT


@dataclass
class FloodResult(Throughput):
    relay: str
    plan: FloodPlan
    seconds: float
    cpu_seconds: float
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    decrypted: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def deliveries(self) -> int:
        return self.plan.members * (self.plan.members - 1) * self.plan.count

    @property
    def verified(self) -> bool:
        return not (self.problems or self.lost or self.duplicated or self.reordered)


class FloodError(RuntimeError):
    pass


# -- the parent -----------------------------------------------------------------------------

def run_flood(relay: Relay, plan: FloodPlan) -> FloodResult:
    """One flood through ``relay``; raises FloodError if a member failed outright."""
    wait_until_empty(relay.port)
    context = multiprocessing.get_context("fork")
    go = context.Event()
    pipes: list[Connection] = []
    processes = []
    try:
        ids = []
        for index in range(plan.members):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=member_main, args=(child_end, relay.port, f"m{index}", plan, go),
                                      daemon=True)
            process.start()
            child_end.close()
            pipes.append(parent_end)
            processes.append(process)
            ids += _expect(pipes[-1:], "joined")        # one at a time, as people arrive
        _expect(pipes, "verified")
        for pipe in pipes:
            pipe.send("seal")
        sent = dict(zip(ids, _expect(pipes, "ready", FLOOD_TIMEOUT), strict=True))
        cpu_before, started = relay.cpu_seconds(), time.monotonic()
        go.set()
        finished = max(_expect(pipes, "done", FLOOD_TIMEOUT))
        cpu = relay.cpu_seconds() - cpu_before
        received = dict(zip(ids, _expect(pipes, "result", FLOOD_TIMEOUT), strict=True))
        for pipe in pipes:
            pipe.send("leave")
        _expect(pipes, "left")
    except BaseException:
        for process in processes:      # they may be waiting for a word that will not come
            process.kill()
        raise
    finally:
        for process in processes:
            process.join(WAIT)
            if process.is_alive():
                process.kill()
    result = FloodResult(relay.kind, plan, finished - started, cpu)
    _compare(result, sent, received)
    return result


def _expect(pipes: list[Connection], kind: str, timeout: float = WAIT) -> list:
    """One message of ``kind`` from each member, in member order."""
    values: dict[Connection, object] = {}
    deadline = time.monotonic() + timeout
    while len(values) < len(pipes):
        ready = wait([p for p in pipes if p not in values], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise FloodError(f"{len(pipes) - len(values)} members sent no {kind!r} within {timeout:g} s")
        for pipe in ready:
            values[pipe] = unpack_reply(pipe, kind, "a member", FloodError)
    return [values[p] for p in pipes]


def _compare(result: FloodResult, sent: dict[bytes, dict], received: dict[bytes, dict]) -> None:
    """Every receiver against every sender: counts, order, and the bytes themselves."""
    for receiver, by_sender in received.items():
        for sender, digests in sent.items():
            if sender == receiver:
                continue
            got = by_sender.get(sender)
            if got is None:
                result.lost += result.plan.count
                result.problems.append(f"{receiver.hex()[:6]} got nothing from {sender.hex()[:6]}")
                continue
            result.lost += got["lost"]
            result.duplicated += got["duplicated"]
            result.reordered += got["reordered"]
            result.decrypted += got["decrypted"]
            if got["failed"]:
                result.problems.append(f"{got['failed']} sampled records failed to decrypt or check")
            if got["digest"] != digests.get(receiver):
                result.problems.append(f"the bytes {receiver.hex()[:6]} got from {sender.hex()[:6]} differ "
                                       "from what was sealed")


# -- the phase ---------------------------------------------------------------------------------

def run_phase(report: Report, settings: Settings) -> None:
    report.section("flood", "relay throughput for routed frames: members in processes of their own join for "
                            "real, then send pre-sealed ROUTE frames as fast as the relay takes them")
    with running_relay(SECURE) as secure, running_relay(BARE) as bare:
        relays = {SECURE: secure, BARE: bare}
        for text_size in TEXT_SIZES:
            for members in FLOOD_ROOMS:
                plan = FloodPlan(members, settings.flood_texts(members, text_size), text_size, settings.sample_every)
                runs: dict[str, list[FloodResult]] = {kind: [] for kind in KINDS}
                for repeat in range(settings.flood_repeats(members, text_size)):
                    for kind in KINDS if repeat % 2 == 0 else KINDS[::-1]:     # neither always goes first
                        try:
                            runs[kind].append(run_flood(relays[kind], plan))
                        except (FloodError, RuntimeError) as error:
                            report.failure(f"flood {kind} relay, {members} members, {size_label(text_size)}", error)
                for kind in KINDS:
                    _report_runs(report, kind, plan, runs[kind])
                if runs[SECURE] and runs[BARE]:
                    throughput = _median_rate(runs[SECURE]) / _median_rate(runs[BARE])
                    cpu = statistics.median(r.cpu_us for r in runs[SECURE]) / statistics.median(
                        r.cpu_us for r in runs[BARE])
                    report.figure(f"flood secure/bare, {members} members, {size_label(text_size)}",
                                  f"throughput {throughput:.2f}, relay CPU per delivery {cpu:.2f}")
                    if settings.is_headline(members, text_size):
                        report.ratio = throughput
        report.figure("flood relay peak memory", f"Secure X {secure.memory_kib('VmHWM') / 1024:.1f} MiB, "
                                                 f"bare {bare.memory_kib('VmHWM') / 1024:.1f} MiB (VmHWM)")
    if report.ratio is not None:
        report.target("Secure X relay throughput at least the bare relay's (5 members, 100 B)",
                      report.ratio >= 1.0, f"ratio {report.ratio:.2f}")


def _median_rate(runs: list[FloodResult]) -> float:
    return statistics.median(r.rate for r in runs)


def _report_runs(report: Report, kind: str, plan: FloodPlan, runs: list[FloodResult]) -> None:
    if not runs:
        return
    label = f"flood {kind} relay, {plan.members} members, {size_label(plan.text_size)}"
    report.figure(f"{label}, throughput", spread([r.rate for r in runs], "deliveries/s"))
    report.figure(f"{label}, relay CPU", spread([r.cpu_us for r in runs], "us/delivery", 2))
    lost, duplicated, reordered = (sum(getattr(r, a) for r in runs) for a in ("lost", "duplicated", "reordered"))
    report.figure(f"{label}, check", verification(
        lost, duplicated, reordered, f"{sum(r.deliveries for r in runs):,} deliveries, "
                                     f"{sum(r.decrypted for r in runs):,} sampled records decrypted"))
    for run in runs:
        if not run.verified:
            report.failure(label, "; ".join(run.problems[:3]) or "frames lost, duplicated or reordered")
