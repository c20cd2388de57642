"""Light-load latency: how long a text takes from one member's ``send_text`` to the
other members' screens, with real clients in processes of their own; and, to
tell the relay's part from the clients', the relay hop alone.

Relay hop: five members (``bench_scripted``) join a relay for real in this
process; the sender's texts are sealed beforehand; one thread sends one text's
four ROUTE frames every millisecond and reads the four receivers' sockets,
timing each ROUTED frame from the send to its arrival. No client work is timed:
this is the relay (a process of its own) plus the loopback network, measured for
the Secure X relay and for the bare relay.

Clients: five members (``bench_members``: a real ``ChatSession`` each) join a room through
the Secure X relay. One of them sends 100-byte texts at a steady pace, first one
every 10 ms (a lively chat is far slower still), then one every millisecond (the
pace the target is set for); each text carries ``time.monotonic_ns()`` taken just
before ``send_text``, and each receiver's handler thread stamps the
``ChatMessage`` event when it takes it off the session's queue. Both stamps read
CLOCK_MONOTONIC, one clock for every process on the machine, so their difference
is the latency whichever processes took them. The CPU time each process spent
over the run, per text, shows how much of the machine the pace takes.

The figures are percentiles over every (text, receiver) pair, and the range of
the receivers' own p99. Every receiver checks it got every text once and in
order (and the clients, with no warning).
"""

from __future__ import annotations

import os
import select
import struct
import time

import bench_proc
import bench_setup  # noqa: F401  (the project on sys.path)
from bench_flooder import sequence_faults
from bench_members import RUN_TIMEOUT, MemberError, chat_room, start_together
from bench_relays import KINDS, SECURE, Relay, running_relay, wait_until_empty
from bench_report import Report, percentile, size_label, spread, verification
from bench_scripted import scripted_room
from bench_settings import ROOM, Settings
from securex import protocol
from securex.protocol import FrameType
from securex.session.peer_wire import BodyKind

TEXT_SIZE = 100
TARGET_P99_MS = 1.0
TARGET_PERIOD = 0.001      # the pace the target is set for
_COUNTER = struct.Struct(">Q")
CORES = os.cpu_count() or 1


def _cpu(relay: Relay, room: list) -> list[float]:
    """CPU seconds so far of the relay and of each member process, in that order."""
    return [relay.cpu_seconds(), *(bench_proc.cpu_seconds(member.pid) for member in room)]


def relay_hop(relay: Relay, count: int, period: float) -> dict:
    """Send-to-arrival times (ns) of ROUTED frames through ``relay`` alone, and their check."""
    wait_until_empty(relay.port)
    with scripted_room(relay.port, ROOM) as members:
        sender, receivers = members[0], members[1:]
        texts = []
        for number in range(count):
            sender.core.send_text(f"{number}:".ljust(TEXT_SIZE, "x"))
            texts.append(sender.core.data_to_send())
        sender.core.take_events()
        arrivals: dict = {r.sock: [] for r in receivers}            # (record counter, ns) per receiver
        decoders = {r.sock: protocol.FrameDecoder() for r in receivers}
        sent: list[int] = []
        next_at, deadline = time.monotonic() + 0.01, time.monotonic() + RUN_TIMEOUT
        while len(sent) < count or any(len(got) < count for got in arrivals.values()):
            if time.monotonic() > deadline:
                break
            if len(sent) < count and time.monotonic() >= next_at:
                sent.append(time.monotonic_ns())
                sender.sock.sendall(texts[len(sent) - 1])
                next_at += period
                continue
            wait = max(0.0, next_at - time.monotonic()) if len(sent) < count else 0.05
            for sock in select.select(list(arrivals), [], [], wait)[0]:
                data, at = sock.recv(65536), time.monotonic_ns()
                for frame in decoders[sock].feed(data):
                    body = frame.payload[protocol.ID_BYTES:]
                    if (frame.type == FrameType.ROUTED and frame.payload.startswith(sender.core.my_id)
                            and body[0] == BodyKind.RECORD):
                        arrivals[sock].append((_COUNTER.unpack_from(body, 1)[0], at))
    checks = []
    for got in arrivals.values():
        lost, duplicated, reordered = sequence_faults([counter for counter, _ in got], count)
        checks.append({"lost": lost, "duplicated": duplicated, "reordered": reordered, "warnings": [],
                       "samples": [at - sent[i] for i, (_, at) in enumerate(got[:len(sent)])]})
    return checks


def run_phase(report: Report, settings: Settings) -> None:
    report.section("latency", f"one member sends {size_label(TEXT_SIZE)} texts at a steady pace to {ROOM - 1} "
                              "others: through the relay alone (pre-sealed frames, one thread sends and receives), "
                              "then between real ChatSession clients, each in its own process")
    target = f"light-load end-to-end p99 under {TARGET_P99_MS:g} ms (1 text per {1e3 * TARGET_PERIOD:g} ms)"
    clock = time.get_clock_info("monotonic").implementation
    if "CLOCK_MONOTONIC" not in clock:
        report.failure("latency", f"the monotonic clock here is {clock}, not one clock for every process")
        return
    hop_period, hop_count = settings.latency_runs[-1]
    results: dict[float, list[dict]] = {}
    cpu_ms: dict[float, list[float]] = {}      # per text: relay, sender, each receiver
    try:
        for kind in KINDS:
            with running_relay(kind) as relay:
                _report_run(report, f"latency relay hop alone, {kind} relay, 1 text to {ROOM - 1} per "
                                    f"{1e3 * hop_period:g} ms", relay_hop(relay, hop_count, hop_period),
                            "frames received")
        with running_relay(SECURE) as relay, chat_room(relay.port, ROOM) as (room, go):
            sender, receivers = room[0], room[1:]
            for period, count in settings.latency_runs:
                cpu_before = _cpu(relay, room)
                start_together([sender], go, "send_paced", count=count, period=period, text_size=TEXT_SIZE)
                sender.reply(timeout=RUN_TIMEOUT)
                results[period] = [r.call("latencies", RUN_TIMEOUT, sender=sender.name, count=count)
                                   for r in receivers]
                cpu_ms[period] = [1e3 * (after - before) / count
                                  for before, after in zip(cpu_before, _cpu(relay, room), strict=True)]
    except (MemberError, RuntimeError) as error:
        report.failure("latency", error)
    for period, checks in results.items():
        label = f"latency {SECURE} relay, {ROOM} ChatSession clients, 1 text per {1e3 * period:g} ms"
        p99 = _report_run(report, label, checks)
        relay_ms, sender_ms, *receiver_ms = cpu_ms[period]
        total = relay_ms + sender_ms + sum(receiver_ms)
        report.figure(f"{label}, CPU per text", f"sender {sender_ms:.3f} ms, receivers {min(receiver_ms):.3f}-"
                                                f"{max(receiver_ms):.3f} ms each, relay {relay_ms:.3f} ms: "
                                                f"{total:.3f} ms in all, {100 * total / (1e3 * period) / CORES:.0f}% "
                                                f"of {CORES} cores at this pace")
        if period == TARGET_PERIOD:
            report.target(target, p99 < TARGET_P99_MS, f"p99 {p99:.3f} ms")
    if TARGET_PERIOD not in results:
        report.target(target, None, "not measured")


def _report_run(report: Report, label: str, checks: list[dict], delivered: str = "texts shown") -> float:
    """Print one paced run's figures; its p99 in ms."""
    samples = [ns / 1e6 for check in checks for ns in check["samples"]]
    p50, p90, p99 = (percentile(samples, q) for q in (0.5, 0.9, 0.99))
    report.figure(f"{label}, p50", f"{p50:.3f} ms")
    report.figure(f"{label}, p90", f"{p90:.3f} ms")
    report.figure(f"{label}, p99", f"{p99:.3f} ms")
    report.figure(f"{label}, max", f"{max(samples):.3f} ms")
    report.figure(f"{label}, p99 per receiver",
                  spread([percentile([ns / 1e6 for ns in c["samples"]], 0.99) for c in checks], "ms", 3,
                         of="receivers"))
    within = sum(1 for s in samples if s < TARGET_P99_MS) / len(samples)
    report.figure(f"{label}, under {TARGET_P99_MS:g} ms", f"{100 * within:.1f}% of {len(samples):,} deliveries")
    lost, duplicated, reordered = (sum(c[key] for c in checks) for key in ("lost", "duplicated", "reordered"))
    report.figure(f"{label}, check", verification(lost, duplicated, reordered, f"{len(samples):,} {delivered}"))
    warnings = [w for c in checks for w in c["warnings"]]
    if lost or duplicated or reordered or warnings:
        report.failure(label, "; ".join(warnings[:3]) or "texts lost, duplicated or reordered")
    return p99
