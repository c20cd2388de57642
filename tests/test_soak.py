"""Soak (issue 4, part 4): five members bursting at once lose, duplicate and reorder
nothing; a frozen member slows nobody, is dropped at its buffer limit and is told
why when it wakes; a killed member does not stop the others.

The burst members are separate processes (``tests/soak_member.py``, each a real
ChatSession), and so is the server, so none of them share a GIL; all talk over
loopback.

    SECUREX_SOAK_MESSAGES   messages each of the 5 members sends (default 2000)
    SECUREX_SOAK_SIZE       characters per message (default 64)

Figures are printed; see them with ``pytest -s tests/test_soak.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from securex import protocol
from securex.session.runner import ChatMessage, MemberJoined, MemberLeft, Notice
from helpers import (PASSPHRASE, WAIT, CoreClient, Process, RawClient, cli_client, core_clients,
                     python_env, server_process)
from securex.protocol import CloseReason, FrameType

SOAK_MESSAGES = int(os.environ.get("SECUREX_SOAK_MESSAGES", "2000"))
SOAK_SIZE = int(os.environ.get("SECUREX_SOAK_SIZE", "64"))
NAMES = ("Alice", "Bob", "Carol", "Dave", "Eve")
JOIN_WAIT = 30.0          # five interpreters starting and running scrypt on two busy cores
LEAVE_SEEN_WITHIN = 5.0   # seconds for the others to see a killed member leave


def result_wait(messages: int) -> float:
    """How long a burst may take before the test fails: generous, but bounded."""
    return 60.0 + messages / 50


def queue_bytes_for(messages: int) -> int:
    """The server's per-member buffer for a burst: the 4 MiB default, or enough for
    a member to fall a whole burst behind. Four members sending flat out can outrun
    one receiver on two cores; past its buffer that receiver is dropped by design
    (tested below), which is not what the burst tests measure."""
    return max(4 * 1024 * 1024, (len(NAMES) - 1) * messages * (SOAK_SIZE + 100))


@contextmanager
def soak_members(port: int, names: tuple[str, ...], messages: int, *, progress: int = 0,
                 extra: dict[str, list[str]] | None = None) -> Iterator[dict[str, Process]]:
    """Start one soak_member.py per name (``extra`` adds or overrides options for
    some of them); yield them once every one is READY."""
    with ExitStack() as stack:
        members: dict[str, Process] = {}
        for name in names:
            peers = ",".join(n for n in names if n != name)
            process = Process(["tests/soak_member.py", "--port", str(port), "--name", name,
                               "--peers", peers, "--messages", str(messages), "--size", str(SOAK_SIZE),
                               "--progress", str(progress), "--timeout", str(result_wait(messages)),
                               *(extra or {}).get(name, [])],
                              python_env(SECUREX_PASSPHRASE=PASSPHRASE))
            stack.callback(process.kill)
            members[name] = process
        for process in members.values():
            process.expect(r"^READY$", timeout=JOIN_WAIT)
        yield members


def go(members: dict[str, Process]) -> float:
    started = time.monotonic()
    for process in members.values():
        process.send_line("GO")
    return started


def result_of(process: Process, messages: int) -> dict:
    return json.loads(process.expect(r"^RESULT (.*)$", timeout=result_wait(messages)).group(1))


def say_bye(members: dict[str, Process]) -> None:
    for process in members.values():
        process.send_line("BYE")
    for process in members.values():
        assert process.wait() == 0, process.output[-2000:]
        assert "Traceback" not in process.output


def assert_clean(result: dict) -> None:
    name = result["name"]
    assert not result["timed_out"], f"{name} timed out: {result['received']} {result['drops']}"
    assert result["notices"] == [], f"{name} got notices: {result['notices'][:5]}"
    assert result["drops"] == [], f"{name} lost its connection: {result['drops']}"
    assert result["unexpected"] == [], f"{name} got unexpected messages: {result['unexpected'][:5]}"


def test_five_members_bursting_lose_duplicate_and_reorder_nothing():
    n = SOAK_MESSAGES
    with server_process("--quiet", "--max-queue-bytes", str(queue_bytes_for(n))) as (_server, port), \
            soak_members(port, NAMES, n) as members:
        started = go(members)
        results = {name: result_of(process, n) for name, process in members.items()}
        elapsed = time.monotonic() - started
        say_bye(members)
    lost = dup = disorder = 0
    for receiver, result in results.items():
        assert_clean(result)
        assert result["sent"] == n
        for sender in NAMES:
            if sender != receiver:
                lost += n - result["received"][sender]
                dup += result["duplicates"][sender]
                disorder += result["out_of_order"][sender]
    deliveries = len(NAMES) * (len(NAMES) - 1) * n
    print(f"\nsoak: {len(NAMES)} members x {n} messages of {SOAK_SIZE} chars in {elapsed:.2f} s: "
          f"{len(NAMES) * n / elapsed:,.0f} messages/s sent, {deliveries / elapsed:,.0f} deliveries/s; "
          f"lost {lost}, duplicated {dup}, out of order {disorder}")
    assert (lost, dup, disorder) == (0, 0, 0)
    # The same bytes in the same order: each receiver's digest of a sender's
    # messages equals the digest the sender made of what it sent.
    for receiver, result in results.items():
        for sender in NAMES:
            if sender != receiver:
                assert result["sha256"][sender] == results[sender]["sent_sha256"], (receiver, sender)


def test_member_killed_mid_burst_does_not_stop_the_others():
    n = min(SOAK_MESSAGES, 1000)
    victim, survivors = "Eve", NAMES[:-1]
    mark = max(1, n // 10)
    # The victim's burst never ends (a million messages, at most 50 unsent at a
    # time), so whenever the kill lands it lands mid-burst.
    with server_process("--quiet", "--max-queue-bytes", str(queue_bytes_for(n))) as (_server, port), \
            soak_members(port, NAMES, n, progress=mark,
                         extra={victim: ["--messages", "1000000", "--window", "50"],
                                **{name: ["--until-left", victim] for name in survivors}}) as members:
        go(members)
        # Everyone is mid-burst: Alice has a tenth as many of Eve's as each of them sends.
        members["Alice"].expect(rf"^GOT {victim} {mark}$", timeout=result_wait(n))
        members[victim].proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        members[victim].wait()
        seen_leave = {}
        for name in survivors:
            members[name].expect(rf"^LEFT {victim}$", timeout=LEAVE_SEEN_WITHIN)
            seen_leave[name] = time.monotonic() - killed_at
        results = {name: result_of(members[name], n) for name in survivors}
        del members[victim]
        say_bye(members)
    from_victim = {name: r["received"][victim] for name, r in results.items()}
    print(f"\nkill: {victim} SIGKILLed mid-burst; the {len(survivors)} others each sent {n} and "
          f"got {sorted(set(from_victim.values()))} of hers; they saw her leave after "
          + ", ".join(f"{t:.2f}" for t in seen_leave.values()) + " s")
    for name, result in results.items():
        assert_clean(result)
        assert result["left"] == [victim], f"{name} saw {result['left']} leave"
        for sender in survivors:
            if sender != name:
                assert result["received"][sender] == n, (name, sender)
                assert result["duplicates"][sender] == result["out_of_order"][sender] == 0
                assert result["sha256"][sender] == results[sender]["sent_sha256"]
        # What got through from the victim is an unbroken, in-order prefix, the same for all.
        assert result["duplicates"][victim] == result["out_of_order"][victim] == 0
    assert len(set(from_victim.values())) == 1
    assert mark <= from_victim["Alice"] < 1_000_000


FROZEN_QUEUE = 64 * 1024
BIG = 16_000               # characters per message in the frozen-member exchange
PER_ROUND = 4              # messages each awake member sends per round
ROUNDS = 80                # 2 x 80 x 4 x 16 kB, about 10 MB towards the frozen member:
                           # more than the kernel buffers on its path plus its 64 KiB


def exchange(alice: CoreClient, bob: CoreClient, rounds: int) -> dict[str, bool]:
    """Alice and Bob each send PER_ROUND big messages a round, then wait for the
    other's. Returns who saw Carol leave; fails on any other leave or any notice."""
    carol_left = {"Alice": False, "Bob": False}
    for r in range(rounds):
        for me, tag in ((alice, "A"), (bob, "B")):
            for i in range(PER_ROUND):
                me.session.send_text(f"{tag}{r}.{i} " + tag.lower() * BIG)
        for me, other_tag in ((alice, "B"), (bob, "A")):
            for i in range(PER_ROUND):
                while True:
                    event = me.wait_for((ChatMessage, MemberLeft, Notice))
                    if isinstance(event, Notice):
                        pytest.fail(f"{me.name}: {event.text}")
                    if isinstance(event, MemberLeft):
                        assert event.name == "Carol", f"{me.name} saw {event.name} leave"
                        carol_left[me.name] = True
                    elif not event.own:
                        assert event.text.startswith(f"{other_tag}{r}.{i} "), event.text[:20]
                        break
    return carol_left


def test_frozen_member_slows_nobody_is_dropped_and_told_why_on_waking():
    with server_process("--max-queue-bytes", str(FROZEN_QUEUE)) as (_server, port), ExitStack() as stack:
        alice = CoreClient(port, "Alice")
        stack.callback(alice.close)
        alice.join()
        bob = CoreClient(port, "Bob")
        stack.callback(bob.close)
        bob.join()
        carol = stack.enter_context(cli_client(port, "Carol"))
        for member in (alice, bob):
            member.wait_for(MemberJoined, lambda e: e.name == "Carol")

        carol.proc.send_signal(signal.SIGSTOP)
        stack.callback(lambda: carol.proc.poll() is None and carol.proc.send_signal(signal.SIGCONT))
        started = time.monotonic()
        carol_left = exchange(alice, bob, ROUNDS)
        exchange_seconds = time.monotonic() - started
        for me in (alice, bob):
            if not carol_left[me.name]:
                me.wait_for(MemberLeft, lambda e: e.name == "Carol")
        assert carol.proc.poll() is None       # still frozen: it was dropped while asleep

        carol.proc.send_signal(signal.SIGCONT)
        woke = carol.expect(r"! The server disconnected you: .*could not keep up", timeout=WAIT)
        carol.expect(r"Reconnected at", timeout=WAIT)
        alice.session.send_text("welcome back")
        carol.expect(r"Alice: welcome back$")
        printed = sum(1 for line in carol.lines if re.search(r"(Alice|Bob): [AB]\d", line))
    megabytes = 2 * ROUNDS * PER_ROUND * BIG / 1e6
    print(f"\nfrozen: 2 awake members exchanged {ROUNDS} rounds ({megabytes:.1f} MB) in "
          f"{exchange_seconds:.2f} s beside a SIGSTOPped third (--max-queue-bytes {FROZEN_QUEUE}); "
          f"on waking it printed the {printed} messages buffered for it, then {woke.group(0)!r}")
    assert "Traceback" not in carol.output


def test_slow_member_that_keeps_talking_is_still_told_why():
    """A member that keeps sending (here: PINGs) but reads too slowly is dropped.
    The server must not reset the connection on it, which would destroy the
    CLOSE still on its way."""
    with server_process("--quiet", "--max-queue-bytes", str(FROZEN_QUEUE)) as (_server, port), \
            core_clients(port, "Alice") as (alice,):
        raw = RawClient(port)
        raw.handshake()
        stop = threading.Event()

        def chatter() -> None:
            while not stop.is_set():
                try:
                    raw.sock.sendall(protocol.encode_frame(FrameType.PING) * 100)
                except OSError:
                    return
                stop.wait(0.01)

        talker = threading.Thread(target=chatter, daemon=True)
        talker.start()
        try:
            sent = 0
            while not any(isinstance(e, MemberLeft) for e in alice.seen):
                assert sent < 400, "the member that never reads was never dropped"
                for _ in range(20):
                    alice.session.send_text(f"{sent} " + "x" * 60_000)
                    sent += 1
                with contextlib.suppress(AssertionError):
                    alice.wait_for(MemberLeft, timeout=0.5)
            frames = raw.read_until_closed()
        finally:
            stop.set()
            talker.join(WAIT)
            raw.close()
    closes = [protocol.parse_close(f) for f in frames if f.type == FrameType.CLOSE]
    assert closes and closes[-1][0] == CloseReason.TOO_SLOW, f"read {len(frames)} frames, no CLOSE"
    assert "could not keep up" in closes[-1][1]
