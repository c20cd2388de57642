"""Faults: the relay killed and restarted, stopped with Ctrl+C or SIGTERM, and hammered
with connection churn while a room chats; connections that never finish joining, and
the caps on joining connections.

Relays are real subprocesses (``python server.py``) wherever a signal or /proc is
involved; everything talks over loopback.

    SECUREX_CHURN_CONNECTIONS   connections opened during the churn test (default 300)

Figures are printed; see them with ``pytest -s tests/test_faults.py``.
"""

from __future__ import annotations

import itertools
import os
import re
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack
from typing import ClassVar

import pytest

from helpers import (ROOT, WAIT, CoreClient, Process, RawConnection, cli_client, close_reason, core_clients,
                     python_env, running_server, server_process, wait_until)
from securex import protocol
from securex.events import ChatMessage, Closed, ConnectionLost, Joined, MemberLeft, Notice, Reconnecting, Severity
from securex.protocol import CloseReason, FrameType

CHURN_CONNECTIONS = int(os.environ.get("SECUREX_CHURN_CONNECTIONS", "300"))
CHURN_THREADS = 6
NOTICE_WITHIN = 3.0       # seconds for a client to notice that the relay is gone


def relay_and_member(stack: ExitStack, name: str) -> tuple[Process, int, CoreClient]:
    """``server.py`` in a process, and one member in the room; both ended with ``stack``."""
    server, port = stack.enter_context(server_process())
    member = CoreClient(port, name)
    stack.callback(member.close)
    member.join()
    return server, port, member


# -- the relay killed and restarted -------------------------------------------------------------

def test_relay_killed_and_restarted_on_the_same_port_the_room_re_forms_by_itself():
    with ExitStack() as stack:
        server, port, alice = relay_and_member(stack, "Alice")
        bob = stack.enter_context(cli_client(port, "Bob"))
        alice.wait_members("Bob")

        killed_at = time.time()
        server.proc.send_signal(signal.SIGKILL)
        server.wait()
        lost = alice.wait_for(ConnectionLost, timeout=NOTICE_WITHIN)
        noticed = lost.at.timestamp() - killed_at
        bob.expect(r"! The connection to 127\.0\.0\.1:\d+ was lost\. Reconnecting in [\d.]+ s", timeout=NOTICE_WITHIN)

        # Nobody listens: the first retry is refused and the wait before the next grows.
        second = alice.wait_for(ConnectionLost)
        assert second.retry_in > lost.retry_in, (lost.retry_in, second.retry_in)
        alice.wait_for(Reconnecting)

        _restarted, same_port = stack.enter_context(server_process("--port", str(port)))
        assert same_port == port
        restarted_at = time.time()
        back = alice.wait_for(Joined, timeout=WAIT)
        reconnected = back.at.timestamp() - restarted_at
        assert back.reconnected
        bob.expect(r"\* Back in the room at 127\.0\.0\.1:\d+", timeout=WAIT)
        # Each failed try is one line that says the server is not back, never "check the address".
        tries = [line for line in bob.lines if "Not back yet" in line]
        assert tries and all(re.search(r"! Not back yet \(try \d+\): 127\.0\.0\.1:\d+ cannot be reached yet "
                                       r"\(nothing is listening there now\)\. Next try in [\d.]+ s\.$", line)
                             for line in tries), tries
        assert not [line for line in bob.lines if "Check the address" in line or "Reconnecting (attempt" in line]
        alice.wait_members("Bob")
        alice.session.send_text("still here after the restart")
        bob.expect(r"Alice: still here after the restart$")
        bob.send_line("so am I")
        alice.wait_message("so am I")
        assert "Traceback" not in bob.output
    print(f"\nrestart: noticed the kill after {noticed:.2f} s, retried after {lost.retry_in:g} and "
          f"{second.retry_in:g} s, back in the room {reconnected:.2f} s after the restart")


def test_the_relay_log_tells_a_goodbye_from_a_dropped_connection():
    # A tester saw a member killed with SIGKILL logged as "left (goodbye)".
    with ExitStack() as stack:
        server, port, carol = relay_and_member(stack, "Carol")
        with cli_client(port, "Alice") as alice:
            carol.wait_members("Alice")
            alice.send_line("/quit")
            assert alice.wait() == 0
        server.expect(r"connection [0-9a-f]{8} left \(goodbye\); 1/5 in the room", stderr=True)
        with cli_client(port, "Bob") as bob:
            carol.wait_members("Bob")
            bob.proc.send_signal(signal.SIGKILL)
            server.expect(r"connection [0-9a-f]{8} dropped \(no goodbye\); 1/5 in the room", stderr=True)


def test_the_relay_log_counts_each_departure_when_two_leave_at_once():
    # Seen in a user test: two members quitting together were both logged "0/5 in the room".
    with ExitStack() as stack:
        server, port, carol = relay_and_member(stack, "Carol")
        with cli_client(port, "Alice") as alice, cli_client(port, "Bob") as bob:
            carol.wait_members("Alice", "Bob")
            for member in (alice, bob):
                member.send_line("/quit")
            assert alice.wait() == bob.wait() == 0
            carol.wait_members()

        def departures() -> list[int]:
            return sorted(int(match.group(1)) for line in list(server.errors)
                          if (match := re.search(r"left \(goodbye\); (\d)/5 in the room", line)))

        wait_until(lambda: len(departures()) == 2, "both departures in the log")
        assert departures() == [1, 2]


# -- the relay stopped with Ctrl+C or SIGTERM -----------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl+C", "SIGTERM"])
def test_relay_stop_tells_every_client_and_everyone_exits_0(signum):
    with ExitStack() as stack:
        server, port, carol = relay_and_member(stack, "Carol")
        clis = [stack.enter_context(cli_client(port, name)) for name in ("Alice", "Bob")]

        server.proc.send_signal(signum)
        stopped_at = time.monotonic()
        for cli in clis:
            assert cli.wait() == 0, cli.output
            cli.expect(r"^\[\d\d:\d\d:\d\d\] \* The server shut down\.$")
            assert "Traceback" not in cli.output
        closed = carol.wait_for(Closed)
        assert closed.error is None and closed.reason == "The server shut down."
        assert server.wait() == 0
        took = time.monotonic() - stopped_at
        server.expect(r"Shutting down; telling every member\.")
        server.expect(r"^Server stopped\.$")
        server.expect(r"connection [0-9a-f]{8} closed: the server is shutting down", stderr=True)
        assert "0/5 in the room" not in server.output
        assert "Traceback" not in server.output
    print(f"\nstop ({signal.Signals(signum).name}): relay and 3 clients done in {took:.2f} s")


def test_ctrl_c_with_nobody_reading_the_output_still_tells_every_member_and_exits_0():
    """Found by a tester: Ctrl+C in ``server.py | tee log`` stops tee too; the server's
    "Shutting down" line met a broken pipe, a traceback came out, members were never told
    (they kept reconnecting) and the server exited 1."""
    process = subprocess.Popen([sys.executable, "server.py", "--host", "127.0.0.1", "--port", "0", "--no-announce"],
                               cwd=ROOT, env=python_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        banner = b""
        deadline = time.monotonic() + WAIT
        while b"Press Ctrl+C" not in banner:
            assert time.monotonic() < deadline, banner
            if select.select([process.stdout], [], [], 0.1)[0]:
                banner += os.read(process.stdout.fileno(), 4096)
        port = int(re.search(rb"Secure X server on [\d.]+:(\d+)", banner).group(1))
        with core_clients(port, "Carol") as (carol,):
            process.stdout.close()                      # the reader (tee) is gone
            process.send_signal(signal.SIGINT)
            closed = carol.wait_for(Closed)
            assert closed.error is None and closed.reason == "The server shut down."
        assert process.wait(WAIT) == 0
        assert b"Traceback" not in process.stderr.read()
    finally:
        process.kill()
        process.wait(WAIT)
        process.stderr.close()


# -- connection churn while a room chats ------------------------------------------------------------

def proc_status(pid: int) -> tuple[int, int]:
    """(threads, resident KiB) of a process, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0])


def wait_for_threads(pid: int, target: int, timeout: float) -> int:
    """Poll until the process is back to ``target`` threads. There is no event for
    "a relay thread ended", so this polls /proc, bounded, every 0.1 s."""
    deadline = time.monotonic() + timeout
    while True:
        threads, _ = proc_status(pid)
        if threads <= target or time.monotonic() > deadline:
            return threads
        time.sleep(0.1)


class Churner:
    """Opens and drops connections of every kind, counting what the relay said."""

    KINDS = ("close at once", "half a frame", "garbage", "oversized length", "hello and leave",
             "hello and vanish", "route to nobody", "silent")
    EXPECTED: ClassVar[dict[str, set[CloseReason | None]]] = {
        "close at once": {None},
        "half a frame": {None},
        "garbage": {CloseReason.PROTOCOL},
        "oversized length": {CloseReason.PROTOCOL},
        "hello and leave": {CloseReason.GOODBYE},
        "hello and vanish": {None},
        "route to nobody": {CloseReason.GOODBYE},
        "silent": {CloseReason.HANDSHAKE_TIMEOUT},
    }

    def __init__(self, port: int) -> None:
        self.port = port
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.unexpected: list[str] = []
        self.slowest: dict[str, float] = {}
        self._lock = threading.Lock()

    def kind_of(self, n: int) -> str:
        # One in 31 is silent (it holds a place until the joining deadline); 31 is
        # prime to the thread count, so the silent ones are spread over the threads.
        return "silent" if n % 31 == 30 else self.KINDS[n % (len(self.KINDS) - 1)]

    def run(self, numbers) -> None:
        for n in numbers:
            kind = self.kind_of(n)
            started = time.monotonic()
            try:
                reason = self.one(kind)
            except OSError as error:      # a reset is a fine answer to a connection we broke
                reason = type(error).__name__
            took = time.monotonic() - started
            with self._lock:
                name = reason.name if isinstance(reason, CloseReason) else str(reason)
                self.outcomes[(kind, name)] += 1
                self.slowest[kind] = max(self.slowest.get(kind, 0.0), took)
                # FULL and BUSY: other churners hold the free places or this address's
                # joining slots, so this one was turned away at once; the relay is fine.
                allowed = self.EXPECTED[kind] | {CloseReason.FULL, CloseReason.BUSY}
                if not isinstance(reason, str) and reason not in allowed:
                    self.unexpected.append(f"{kind}: {name}")

    def one(self, kind: str) -> CloseReason | str | None:
        raw = RawConnection(self.port)
        try:
            if kind == "close at once":
                return None
            first = raw.read_frame()
            if first.type == FrameType.CLOSE:
                return protocol.parse_close(first)      # BUSY or FULL
            if kind == "half a frame":
                raw.send(protocol.encode_hello()[:3])
                return None
            if kind == "garbage":
                raw.send(os.urandom(64))
            elif kind == "oversized length":
                raw.send(struct.pack(">I", protocol.MAX_FRAME_BYTES + 1) + b"\x10")
            elif kind in ("hello and leave", "hello and vanish", "route to nobody"):
                raw.send(protocol.encode_hello())
                if kind == "hello and vanish":
                    return None
                if kind == "route to nobody":
                    raw.send(protocol.encode_route(b"N" * protocol.ID_BYTES, b"\x10" + os.urandom(40)))
                raw.send(protocol.encode_frame(FrameType.LEAVE))
            return close_reason(raw.read_until_closed())
        finally:
            raw.close()


def test_connection_churn_leaves_the_room_undisturbed_and_the_relay_back_at_baseline():
    names = ("Alice", "Bob", "Carol")
    with server_process("--handshake-timeout", "1", "--max-clients", "16") as (server, port), \
            core_clients(port, *names) as room:
        pid = server.proc.pid
        threads_before, rss_before = proc_status(pid)      # main + accept + 2 per member

        # Warm up once (first-use allocations, malloc arenas), then take the baseline.
        Churner(port).run(range(30))
        assert wait_for_threads(pid, threads_before, WAIT) == threads_before
        threads_base, rss_base = proc_status(pid)

        samples: list[tuple[int, int]] = []
        stop = threading.Event()

        def sample() -> None:      # no event to wait on: sample /proc every 50 ms
            while not stop.wait(0.05):
                samples.append(proc_status(pid))

        sent = Counter()

        def chat() -> None:        # every member keeps talking throughout the churn
            for i in itertools.count():
                for member in room:
                    member.session.send_text(f"{member.name} {i}")
                    sent[member.name] += 1
                if stop.wait(0.02):
                    return

        churner = Churner(port)
        collectors = [member.collect_in_background() for member in room]   # the members' front ends
        workers = [threading.Thread(target=churner.run, args=(range(t, CHURN_CONNECTIONS, CHURN_THREADS),))
                   for t in range(CHURN_THREADS)]
        background = [threading.Thread(target=sample), threading.Thread(target=chat)]
        started = time.monotonic()
        for thread in background + workers:
            thread.start()
        for thread in workers:
            thread.join(60)
        churn_seconds = time.monotonic() - started
        stop.set()
        for thread in background:
            thread.join(WAIT)
        assert not any(t.is_alive() for t in workers), "churn did not finish in 60 s"

        # Every chat message arrived, in order; no warning; no member left.
        for member, collecting in zip(room, collectors, strict=True):
            others = [other.name for other in room if other is not member]
            last = {name: f"{name} {sent[name] - 1}" for name in others}
            wait_until(lambda member=member, last=last: set(last.values()) <= {
                e.text for e in list(member.seen) if isinstance(e, ChatMessage)}, f"{member.name} to get everything")
            collecting.set()
            expected = dict.fromkeys(others, 0)
            for event in list(member.seen):
                if isinstance(event, Notice) and event.severity != Severity.INFO:
                    pytest.fail(f"{member.name} got a warning during churn: {event.text}")
                if isinstance(event, MemberLeft):
                    pytest.fail(f"{member.name} saw {event.member.name} leave")
                if not isinstance(event, ChatMessage) or event.own:
                    continue
                sender, index = event.text.split()
                assert int(index) == expected[sender], f"{member.name}: {event.text} out of order"
                expected[sender] += 1
            assert expected == {name: sent[name] for name in others}
        threads_after = wait_for_threads(pid, threads_base, 15)
        _, rss_after = proc_status(pid)
        peak_threads = max(t for t, _ in samples)
        peak_rss = max(r for _, r in samples)

    print(f"\nchurn: {CHURN_CONNECTIONS} connections from {CHURN_THREADS} threads in {churn_seconds:.2f} s "
          f"while {len(names)} members sent {sum(sent.values())} messages; relay threads "
          f"{threads_before} before warm-up, baseline {threads_base}, peak {peak_threads}, after {threads_after}; "
          f"RSS {rss_before} KiB before warm-up, baseline {rss_base} KiB, peak {peak_rss} KiB, after {rss_after} KiB "
          f"({rss_after - rss_base:+d} KiB)")
    print("churn outcomes: " + ", ".join(f"{k}->{r}: {c}" for (k, r), c in sorted(churner.outcomes.items())))
    assert not churner.unexpected, churner.unexpected[:10]
    assert sum(churner.outcomes.values()) == CHURN_CONNECTIONS
    assert threads_after == threads_base, f"{threads_after} threads, baseline {threads_base}"
    assert rss_after - rss_base < max(4096, rss_base // 10), f"RSS {rss_base} -> {rss_after} KiB"


# -- connections that never finish joining, and the caps ------------------------------------------------

@pytest.mark.parametrize("how", ["silent", "trickling PINGs", "trickling a HELLO byte by byte", "never ready"])
def test_a_connection_that_never_finishes_joining_is_dropped_with_a_reason(how):
    with server_process("--handshake-timeout", "1") as (_server, port), \
            core_clients(port, "Alice", "Bob") as (alice, bob):
        raw = RawConnection(port)
        assert raw.read_frame().type == FrameType.WELCOME
        started = time.monotonic()
        hello = protocol.encode_hello() * 3     # 18 bytes, 0.3 s apart: long past the deadline
        if how == "never ready":
            raw.send(protocol.encode_hello())
        frames: list[protocol.Frame] = []
        for i in itertools.count():
            if time.monotonic() - started > 5:
                break
            try:
                if how == "trickling PINGs":
                    raw.send(protocol.encode_frame(FrameType.PING))
                elif how == "trickling a HELLO byte by byte":
                    raw.send(hello[i:i + 1] if i < 5 else b"")
                raw.sock.settimeout(0.3)
                frame = raw.read_frame()
                if frame.type == FrameType.CLOSE:
                    frames.append(frame)
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        raw.sock.settimeout(WAIT)
        frames += raw.read_until_closed()
        took = time.monotonic() - started
        alice.session.send_text("unbothered")
        bob.wait_message("unbothered")
    print(f"\njoining ({how}): dropped after {took:.2f} s with --handshake-timeout 1")
    assert close_reason(frames) == CloseReason.HANDSHAKE_TIMEOUT, frames
    assert took >= 0.9, f"dropped after {took:.2f} s, before its --handshake-timeout of 1 s"


def test_one_address_holding_its_joining_slots_delays_a_newcomer_from_it_but_not_others():
    """A client turned away as busy tries again by itself, and gets in once a slot frees."""
    with running_server(max_clients=5, max_pending_per_address=2, handshake_timeout=1.0) as server:
        holders = [RawConnection(server.port) for _ in range(2)]
        for raw in holders:
            raw.hello()                                    # joining, and never finishing
        newcomer = CoreClient(server.port, "Alice")
        newcomer.start()
        busy = newcomer.wait_for(ConnectionLost)
        assert "busy" in busy.reason
        for raw in holders:
            assert close_reason(raw.read_until_closed()) == CloseReason.HANDSHAKE_TIMEOUT
            raw.close()
        newcomer.wait_for(Joined, timeout=WAIT)
        wait_until(lambda: server.registry.pending_count == 0, "the newcomer to finish joining")
        newcomer.close()
