"""Soak: five members bursting at once lose, duplicate and reorder nothing; a member
killed mid-burst is seen as dropped while the others finish; a frozen member holds
the others up only until the relay drops it, and is told why when it wakes; a member
that keeps talking but never reads is dropped and still told why.

Every burst member is a process of its own (``tests/burst_member.py``, a real
ChatSession), so no two share a GIL; they verify each other (SPAKE2) as real members
do and talk over loopback. The relay is ``server.py`` in its own process where the
defaults serve; the two tests that need a short stall timeout run it in this process
(``running_server``), where it shares a GIL with nothing but the test's waits.

    SECUREX_SOAK_MESSAGES   messages each of the 5 members sends (default 300)
    SECUREX_SOAK_SIZE       characters per message (default 64)

Figures are printed; see them with ``pytest -s tests/test_soak.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from helpers import (PASSPHRASE, WAIT, Process, ScriptedMember, cli_client, close_reason, frames_of, python_env,
                     running_server, server_process, wait_until)
from securex.events import ChatMessage
from securex.protocol import CloseReason

SOAK_MESSAGES = int(os.environ.get("SECUREX_SOAK_MESSAGES", "300"))
SOAK_SIZE = int(os.environ.get("SECUREX_SOAK_SIZE", "64"))
NAMES = ("Alice", "Bob", "Carol", "Dave", "Eve")
JOIN_WAIT = 30.0          # five interpreters starting, each running scrypt and four PAKEs, on two busy cores
LEAVE_SEEN_WITHIN = 5.0   # seconds for the others to see a killed member go

# The relay for the frozen and the never-reading member: a short stall timeout (the
# default is 10 s) and a small per-member buffer, so back-pressure engages at once.
STALL_TIMEOUT = 2.0
MEMBER_BUFFER = 64 * 1024
BIG = 16_000              # characters per message towards a member that does not read
# 480 x 16 kB, 7.7 MB, go its way: well past what the kernel can buffer on the path (the
# relay's send buffer, at most 4 MiB by default, plus the reader's receive window) and
# its 64 KiB at the relay, and within the 8 MiB a sender keeps for a member who is away
# (past that the sender would rightly warn that some will not reach it).
TOWARDS_THE_STALLED = 480
HELD_UP_AT_MOST = STALL_TIMEOUT + 3.0   # the longest an awake member may wait for a message
BACK_WITHIN = 30.0        # a woken member back in the room: a few reconnect attempts, back-off 0.5, 1, 2, 4 s


def result_wait(messages: int, size: int = SOAK_SIZE) -> float:
    """How long a burst may take before the test fails: generous, but bounded."""
    return 60.0 + messages * max(size, 1000) / 50_000


def member_process(port: int, name: str, peers: list[str], messages: int, *args: str,
                   size: int = SOAK_SIZE) -> Process:
    return Process(["tests/burst_member.py", "--port", str(port), "--name", name, "--peers", ",".join(peers),
                    "--messages", str(messages), "--size", str(size),
                    "--timeout", str(result_wait(messages, size) + JOIN_WAIT), *args],
                   python_env(SECUREX_PASSPHRASE=PASSPHRASE))


@contextmanager
def burst_members(port: int, names: tuple[str, ...], messages: int, *, others: tuple[str, ...] = (),
                  size: int = SOAK_SIZE, extra: dict[str, list[str]] | None = None) -> Iterator[dict[str, Process]]:
    """One burst_member.py per name (``extra`` adds options for some), each expecting
    the rest of ``names`` and ``others`` as peers; yields them once every one is READY
    (has verified every peer). Killed at the end if still running."""
    with ExitStack() as stack:
        members: dict[str, Process] = {}
        for name in names:
            peers = [n for n in (*names, *others) if n != name]
            process = member_process(port, name, peers, messages, *(extra or {}).get(name, []), size=size)
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


def result_of(process: Process, messages: int, size: int = SOAK_SIZE) -> dict:
    return json.loads(process.expect(r"^RESULT (.*)$", timeout=result_wait(messages, size)).group(1))


def say_bye(members: dict[str, Process]) -> None:
    for process in members.values():
        process.send_line("BYE")
    for process in members.values():
        assert process.wait() == 0, process.output[-2000:]
        assert "Traceback" not in process.output


def assert_clean(result: dict, *, away: str = "") -> None:
    """No time-out, no warning, no lost link, nothing unexpected. A sender keeps at most
    1,000 messages for a member who is ``away`` (dropped, may come back) and rightly
    says when more will not reach them: with large bursts that is no fault."""
    name = result["name"]
    warnings = [w for w in result["warnings"] if not (away and f" will not reach {away}: " in w)]
    assert not result["timed_out"], f"{name} timed out: {result['received']} {result['link_losses']}"
    assert warnings == [], f"{name} was warned: {warnings[:5]}"
    assert result["link_losses"] == [], f"{name} lost its connection: {result['link_losses']}"
    assert result["unexpected"] == [], f"{name} got unexpected messages: {result['unexpected'][:5]}"


def assert_every_burst_whole(results: dict[str, dict], senders: tuple[str, ...], messages: int) -> None:
    """Each receiver got each sender's burst complete, once, in order: the same
    bytes in the same order as the sender's digest of what it sent."""
    for receiver, result in results.items():
        for sender in senders:
            if sender != receiver:
                assert result["received"][sender] == messages, (receiver, sender, result["received"][sender])
                assert result["duplicates"][sender] == result["out_of_order"][sender] == 0, (receiver, sender)
                assert result["sha256"][sender] == results[sender]["sent_sha256"], (receiver, sender)


def test_five_members_bursting_at_once_lose_duplicate_and_reorder_nothing():
    n = SOAK_MESSAGES
    with server_process("--quiet", "--max-pending-per-address", str(len(NAMES))) as (_server, port), \
            burst_members(port, NAMES, n) as members:
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
          f"{len(NAMES) * n / elapsed:,.0f} messages/s sent, {deliveries / elapsed:,.0f} deliveries/s "
          f"(each sealed separately per recipient); lost {lost}, duplicated {dup}, out of order {disorder}")
    assert (lost, dup, disorder) == (0, 0, 0)
    assert_every_burst_whole(results, NAMES, n)


def test_a_member_killed_mid_burst_is_seen_as_dropped_and_the_others_finish():
    n = SOAK_MESSAGES
    victim, survivors = "Eve", NAMES[:-1]
    mark = max(1, n // 10)
    # The victim's burst never ends (a million messages, at most 50 unsent at a
    # time), so whenever the kill lands it lands mid-burst.
    with server_process("--quiet", "--max-pending-per-address", str(len(NAMES))) as (_server, port), \
            burst_members(port, NAMES, n, extra={
                victim: ["--messages", "1000000", "--window", "50"],
                **{name: ["--until-left", victim, "--progress", str(mark)] for name in survivors}}) as members:
        go(members)
        # Eve is mid-burst (hers never ends): Alice has a tenth as many of hers as each of them sends.
        members["Alice"].expect(rf"^GOT {victim} {mark}$", timeout=result_wait(n))
        members[victim].proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        members[victim].wait()
        seen_go = {}
        for name in survivors:
            members[name].expect(rf"^LEFT {victim} dropped$", timeout=LEAVE_SEEN_WITHIN)
            seen_go[name] = time.monotonic() - killed_at
        results = {name: result_of(members[name], n) for name in survivors}
        del members[victim]
        say_bye(members)
    from_victim = {name: r["received"][victim] for name, r in results.items()}
    print(f"\nkill: {victim} SIGKILLed mid-burst; the {len(survivors)} others each sent {n} and got "
          f"{sorted(set(from_victim.values()))} of hers; they saw her connection drop after "
          + ", ".join(f"{t:.2f}" for t in seen_go.values()) + " s")
    for name, result in results.items():
        assert_clean(result, away=victim)
        assert result["left"] == [victim], f"{name} saw {result['left']} go"
        # What got through from the victim is an unbroken prefix, in order.
        assert result["duplicates"][victim] == result["out_of_order"][victim] == 0
    assert_every_burst_whole(results, survivors, n)
    # She sealed each message once per member and died somewhere in those writes:
    # the prefixes differ by at most her last message.
    assert max(from_victim.values()) - min(from_victim.values()) <= 1, from_victim
    assert mark <= from_victim["Alice"] < 1_000_000


def test_a_frozen_member_holds_the_others_up_only_until_it_is_dropped_and_is_told_why_on_waking():
    awake, messages = ("Alice", "Bob"), TOWARDS_THE_STALLED // 2
    with running_server(high_water=MEMBER_BUFFER, stall_timeout=STALL_TIMEOUT) as server, ExitStack() as stack:
        carol = stack.enter_context(cli_client(server.port, "Carol"))
        members = stack.enter_context(burst_members(server.port, awake, messages, others=("Carol",),
                                                    size=BIG, extra={n: ["--until-left", "Carol"] for n in awake}))
        carol.proc.send_signal(signal.SIGSTOP)
        stack.callback(lambda: carol.proc.poll() is None and carol.proc.send_signal(signal.SIGCONT))
        started = go(members)
        for process in members.values():
            process.expect(r"^LEFT Carol dropped$", timeout=result_wait(messages, BIG))
        dropped_after = time.monotonic() - started
        results = {name: result_of(process, messages, BIG) for name, process in members.items()}
        burst_seconds = time.monotonic() - started
        assert carol.proc.poll() is None, "Carol was dropped while asleep, so she is still frozen"

        carol.proc.send_signal(signal.SIGCONT)
        woke = carol.expect(r"^\[[\d:]+\] ! The server closed the connection: this connection stopped reading\. "
                            r"Reconnecting in", timeout=WAIT)
        carol.expect(r"\* Back in the room at ", timeout=BACK_WITHIN)
        for process in members.values():
            process.expect(r"^JOINED Carol$")
        # What was kept for her while she was away follows her back: the end of each burst.
        for sender in awake:
            carol.expect(rf"\] {sender}: {sender} {messages - 1} x", timeout=WAIT)
        members["Alice"].send_line("SAY welcome back")
        carol.expect(r"Alice: welcome back$")
        carol.send_line("/quit")
        assert carol.wait() == 0
        say_bye(members)
    woke_at = carol.lines.index(woke.string)
    shown = {sender: [] for sender in awake}         # burst indices Carol printed, per sender
    before_drop = 0
    for number, line in enumerate(carol.lines):
        if match := re.search(r"\] (Alice|Bob): \1 (\d+) x", line):
            shown[match.group(1)].append(int(match.group(2)))
            before_drop += number < woke_at
    back_at = next(i for i, line in enumerate(carol.lines) if "* Back in the room at " in line)
    failed = [line[11:] for line in carol.lines[woke_at + 1:back_at] if line[11:].startswith("! ")]   # tries
    waits = {name: r["longest_wait"] for name, r in results.items()}
    megabytes = len(awake) * messages * BIG / 1e6
    print(f"\nfrozen: 2 awake members each sent {messages} x {BIG // 1000} kB to each other and to a SIGSTOPped "
          f"third ({megabytes:.1f} MB towards it; relay stall timeout {STALL_TIMEOUT:g} s, member buffer "
          f"{MEMBER_BUFFER // 1024} KiB): it was dropped {dropped_after:.2f} s after they started, they finished in "
          f"{burst_seconds:.2f} s, the longest either waited for a message was "
          + ", ".join(f"{w:.2f}" for w in waits.values()) + f" s. On waking it printed the {before_drop} messages "
          f"already on their way, then {woke.string[11:]!r}; it was back in the room at attempt {len(failed) + 1}"
          + (f" (before that: {'; '.join(failed)})" if failed else "")
          + f" and was sent the other {sum(map(len, shown.values())) - before_drop}")
    for result in results.values():
        assert_clean(result)
        assert result["left"] == ["Carol"]
    assert_every_burst_whole(results, awake, messages)
    assert dropped_after >= STALL_TIMEOUT, "dropped before it had stalled for the stall timeout"
    assert max(waits.values()) < HELD_UP_AT_MOST, f"held up for {waits} s; stall timeout {STALL_TIMEOUT:g} s"
    for sender, indices in shown.items():      # nothing lost for her either: each once, in order
        assert indices == list(range(messages)), (sender, indices[:5], len(indices))
    assert "Traceback" not in carol.output


def test_a_member_that_keeps_talking_but_never_reads_is_dropped_and_still_told_why():
    """Sam, a real verified member, keeps sending messages and never reads, while Alice
    sends to him. The relay drops him, and must not reset the connection on the input
    he keeps sending: a reset would destroy the CLOSE still on its way to him."""
    with running_server(high_water=MEMBER_BUFFER, stall_timeout=STALL_TIMEOUT) as server, ExitStack() as stack:
        alice = member_process(server.port, "Alice", ["Sam"], TOWARDS_THE_STALLED, "--until-left", "Sam", size=BIG)
        stack.callback(alice.kill)
        sam = ScriptedMember(server.port, "Sam")
        stack.callback(sam.close)
        sam.join()
        sam.pump(lambda: any(peer.name == "Alice" for peer in sam.core.peers.values()), "Alice verified",
                 timeout=JOIN_WAIT)
        alice.expect(r"^READY$", timeout=JOIN_WAIT)

        stop = threading.Event()
        talked = []

        def keep_talking() -> None:      # the only thread touching Sam's core from here on
            sam.sock.settimeout(WAIT)
            while not stop.is_set():
                sam.core.send_text(f"Sam {len(talked)} still talking")
                try:
                    sam.sock.sendall(sam.core.data_to_send())
                except OSError:
                    return
                talked.append(time.monotonic())
                stop.wait(0.01)

        talker = threading.Thread(target=keep_talking, daemon=True)
        talker.start()
        alice.send_line("GO")
        alice.expect(r"^LEFT Sam dropped$", timeout=result_wait(TOWARDS_THE_STALLED, BIG))
        talked_after_drop = len(talked)
        # A moment more of talking, to a relay that no longer reads him.
        wait_until(lambda: len(talked) >= talked_after_drop + 20, "Sam to keep talking")
        stop.set()
        talker.join(WAIT)
        result = result_of(alice, TOWARDS_THE_STALLED, BIG)

        # Sam reads at last: what was on its way, then the reason, then the end.
        sam.sock.settimeout(WAIT)
        received = bytearray()
        read_by = time.monotonic() + WAIT
        while True:
            assert time.monotonic() < read_by, f"the relay kept the connection open after {len(received):,} bytes"
            try:
                data = sam.sock.recv(1 << 20)
            except OSError as error:
                raise AssertionError(f"after {len(received):,} bytes: {error!r} instead of the relay's "
                                     "CLOSE") from None
            if not data:
                break
            received += data
            sam.core.receive_data(data)
        alice.send_line("BYE")
        assert alice.wait() == 0
    got = [e for e in sam.core.take_events() if isinstance(e, ChatMessage) and not e.own]
    told = sam.core.outcome.message if sam.core.outcome else None
    print(f"\nnever reads: Sam sent {len(talked)} messages ({len(talked) - talked_after_drop} after Alice saw "
          f"him dropped) and read nothing while Alice sent {TOWARDS_THE_STALLED} x {BIG // 1000} kB; dropped after a "
          f"{STALL_TIMEOUT:g} s stall, he then read {len(received):,} bytes ({len(got)} of Alice's messages) "
          f"and {told!r}")
    assert close_reason(frames_of(bytes(received))) == CloseReason.TOO_SLOW
    assert told and "stopped reading" in told, sam.core.outcome
    assert_clean(result)
    # What the relay read from him before it stopped reached Alice, whole and in order.
    assert result["received"]["Sam"] > 0, result
    assert result["duplicates"]["Sam"] == result["out_of_order"]["Sam"] == 0, result
