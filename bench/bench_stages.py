"""Where a text's time goes: stage by stage, from one member's ``send_text`` to the
other members' front-end threads, with real clients in processes of their own.

Five members (``bench_members``) join a room through the Secure X relay; one sends
100-byte texts at a steady pace (one per 10 ms by default: a pace the machine
takes in its stride, so what is measured is the path, not a queue). Before the
member processes are forked, this process wraps four of the session's methods to
note the time (CLOCK_MONOTONIC, one clock for every process here) at each stage:

    t0        just before ``send_text`` (carried in the text, as in bench_latency)
    command   the network thread takes the text (``RoomCore.send_text`` starts)
    sealed    the four copies are sealed (``RoomCore.send_text`` returns)
    sent      the socket took them (the first ``SendBuffer.send_some`` after)
    read      a receiver's network thread has the bytes (``RoomCore.received``)
    handed    it hands the message to its front end (``ChatSession._post``)
    shown     the front end's thread takes it off the queue (bench_members' stamp)

The wrappers cost a few microseconds a stage; the figures are for comparing one
version with another, not for the target (``relay_bench.py`` measures that
without them). Each process writes its notes to a file of its own, read back at
the end. ``sent`` can come after ``read``: on a busy machine the kernel runs the
relay and a receiver before the sender's ``sendmsg`` returns.

    python bench/bench_stages.py [--period 0.01] [--count 500]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import bench_setup  # noqa: F401  (the project on sys.path)
import crypto_utils
import helpers
from bench_latency import TEXT_SIZE
from bench_members import RUN_TIMEOUT, MemberError, chat_room, start_together
from bench_relays import SECURE, running_relay
from bench_report import percentile
from bench_settings import ROOM
from securex.events import ChatMessage
from securex.session import core, runner, send_buffer

STAGES = ("command", "sealed", "sent", "read", "handed", "shown")


class _Notes:
    """This process's stage times, written to ``folder`` now and then (members are
    stopped without running atexit handlers)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lines: list[str] = []

    def note(self, stage: str, number: int, at: int) -> None:
        self.lines.append(f"{stage} {number} {at}\n")
        if len(self.lines) >= 50:
            self.flush()

    def flush(self) -> None:
        with open(self.folder / str(os.getpid()), "a", encoding="ascii") as out:
            out.writelines(self.lines)
        self.lines.clear()


def _number(text: str) -> int:
    return int(text.split(":", 1)[0])


def instrument(notes: _Notes) -> None:
    """Wrap the session's methods to note each stage (inherited by forked members)."""
    send_text, send_some = core.RoomCore.send_text, send_buffer.SendBuffer.send_some
    received, post = core.RoomCore.received, runner.ChatSession._post
    last_sealed: list[int] = []

    def noting_send_text(self, text: str) -> bool:
        notes.note("command", _number(text), time.monotonic_ns())
        notes.note("t0", _number(text), int(text.split(":", 2)[1]))     # bench_members' send stamp
        result = send_text(self, text)
        notes.note("sealed", _number(text), time.monotonic_ns())
        last_sealed[:] = [_number(text)]
        return result

    def noting_send_some(self, sock):
        sent = send_some(self, sock)
        if sent and last_sealed:
            notes.note("sent", last_sealed.pop(), time.monotonic_ns())
        return sent

    def noting_received(self, count: int) -> None:
        notes.note("read", -1, time.monotonic_ns())      # matched to a text when it is handed over
        received(self, count)

    def noting_post(self, event) -> None:
        if isinstance(event, ChatMessage) and not event.own:
            notes.note("handed", _number(event.text), time.monotonic_ns())
        post(self, event)

    core.RoomCore.send_text = noting_send_text
    send_buffer.SendBuffer.send_some = noting_send_some
    core.RoomCore.received = noting_received
    runner.ChatSession._post = noting_post


def _read(folder: Path, pid: int) -> list[tuple[str, int, int]]:
    path = folder / str(pid)
    if not path.exists():
        return []
    return [(stage, int(number), int(at)) for stage, number, at in
            (line.split() for line in path.read_text(encoding="ascii").splitlines())]


def stage_times(folder: Path, sender_pid: int, receiver_pids: list[int], shown: list[dict]) -> dict[str, list[int]]:
    """Per stage, the time (ns) it took after the stage before it, over every (text,
    receiver) pair whose notes were all written. ``read`` is counted from ``sealed``:
    on a busy machine the socket's ``sent`` can come after a receiver's ``read``."""
    at_sender: dict[str, dict[int, int]] = {stage: {} for stage in ("t0", "command", "sealed", "sent")}
    for stage, number, at in _read(folder, sender_pid):
        if stage in at_sender:      # (it reads receipts too)
            at_sender[stage].setdefault(number, at)
    gaps: dict[str, list[int]] = {stage: [] for stage in STAGES}
    for pid, check in zip(receiver_pids, shown, strict=True):
        handed: dict[int, tuple[int, int]] = {}      # text number: (read, handed)
        read_at = None
        for stage, number, at in _read(folder, pid):
            if stage == "read":
                read_at = at
            elif stage == "handed" and read_at is not None:
                handed[number] = (read_at, at)
        for number, latency in enumerate(check["samples"]):
            if number not in handed or any(number not in times for times in at_sender.values()):
                continue       # the last notes of a process may not have been written out
            t0, command, sealed, sent = (at_sender[stage][number] for stage in ("t0", "command", "sealed", "sent"))
            read, hand = handed[number]
            for stage, gap in (("command", command - t0), ("sealed", sealed - command), ("sent", sent - sealed),
                               ("read", read - sealed), ("handed", hand - read), ("shown", t0 + latency - hand)):
                gaps[stage].append(gap)
    return gaps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--period", type=float, default=0.01, help="seconds between two texts (default 0.01)")
    parser.add_argument("--count", type=int, default=500, help="texts to send (default 500)")
    args = parser.parse_args(argv)
    crypto_utils.passphrase_to_w(helpers.PASSPHRASE, n=crypto_utils.SCRYPT_N)   # forked members start with it
    with tempfile.TemporaryDirectory(prefix="securex-stages-") as folder_name:
        folder = Path(folder_name)
        instrument(_Notes(folder))
        try:
            with running_relay(SECURE) as relay, chat_room(relay.port, ROOM) as (room, go):
                sender, receivers = room[0], room[1:]
                start_together([sender], go, "send_paced", count=args.count, period=args.period,
                               text_size=TEXT_SIZE)
                sender.reply(timeout=RUN_TIMEOUT)
                shown = [r.call("latencies", RUN_TIMEOUT, sender=sender.name, count=args.count) for r in receivers]
                gaps = stage_times(folder, sender.pid, [r.pid for r in receivers], shown)
        except (MemberError, RuntimeError) as error:
            print(f"failed: {error}", file=sys.stderr)
            return 1
    print(f"one text of {TEXT_SIZE} B to {ROOM - 1} members every {1e3 * args.period:g} ms, {args.count} texts")
    for stage, values in gaps.items():
        if values:
            p50, p90, p99 = (percentile([v / 1e6 for v in values], q) for q in (0.5, 0.9, 0.99))
            print(f"  {stage:8s} p50 {p50:.3f} ms  p90 {p90:.3f}  p99 {p99:.3f}  ({len(values)} samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
