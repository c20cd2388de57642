"""Faults (issue 4, part 5): the server killed and restarted, stopped with Ctrl+C or
SIGTERM, and hammered with connection churn while a room chats; handshakes that
never finish and the cap on pending connections.

Servers are real subprocesses (``python server.py``) wherever a signal or
/proc is involved; everything talks over loopback.

    SECUREX_CHURN_CONNECTIONS   connections opened during the churn test (default 300)

Figures are printed; see them with ``pytest -s tests/test_faults.py``.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import struct
import threading
import time
from collections import Counter
from contextlib import ExitStack
from typing import ClassVar

import pytest

from securex import protocol
from securex.session.runner import (ChatMessage, Closed, Connected, ConnectionLost, MemberJoined, MemberLeft,
                          MembersChanged, Notice)
from crypto_utils import derive_room_keys, new_session_id
from helpers import (PASSPHRASE, WAIT, CoreClient, RawClient, cli_client, core_clients,
                     running_server, server_process)
from securex.protocol import CloseReason, FrameType

CHURN_CONNECTIONS = int(os.environ.get("SECUREX_CHURN_CONNECTIONS", "300"))
CHURN_THREADS = 6
NOTICE_WITHIN = 3.0       # seconds for a client to notice that the server is gone


def close_reason(frames: list[protocol.Frame]) -> CloseReason | None:
    closes = [f for f in frames if f.type == FrameType.CLOSE]
    return protocol.parse_close(closes[-1])[0] if closes else None


# -- the server killed and restarted ------------------------------------------

def test_server_killed_and_restarted_on_the_same_port_clients_reconnect_by_themselves():
    with ExitStack() as stack:
        server, port = stack.enter_context(server_process())
        alice = CoreClient(port, "Alice")
        stack.callback(alice.close)
        alice.join()
        bob = stack.enter_context(cli_client(port, "Bob"))
        alice.wait_for(MemberJoined, lambda e: e.name == "Bob")

        killed_at = time.time()
        server.proc.send_signal(signal.SIGKILL)
        server.wait()
        lost = alice.wait_for(ConnectionLost, timeout=NOTICE_WITHIN)
        noticed = lost.at.timestamp() - killed_at
        bob.expect(r"^\[\d\d:\d\d:\d\d\] ! .*Reconnecting in [\d.]+ s", timeout=NOTICE_WITHIN)

        # Nobody listens: each retry is refused and the wait before the next one grows.
        delays = [lost.retry_in]
        while len(delays) < 3:
            delays.append(alice.wait_for(ConnectionLost).retry_in)
        assert delays == sorted(delays) and delays[0] < delays[-1], delays
        bob.expect(r"! Reconnecting \(attempt 2\)")

        _restarted, same_port = stack.enter_context(server_process("--port", str(port)))
        assert same_port == port
        restarted_at = time.time()
        back = alice.wait_for(Connected, timeout=WAIT)
        reconnected = back.at.timestamp() - restarted_at
        assert back.reconnected
        bob.expect(r"^\[\d\d:\d\d:\d\d\] Reconnected at 127\.0\.0\.1:\d+", timeout=WAIT)

        alice.wait_for(MembersChanged, lambda e: "Bob" in e.names)   # Bob is back too
        alice.session.send_text("still here after the restart")
        bob.expect(r"Alice: still here after the restart$")
        bob.send_line("so am I")
        alice.wait_message("so am I")
        assert "Traceback" not in bob.output
    print(f"\nrestart: a client noticed the kill after {noticed:.2f} s, retried after "
          f"{', '.join(f'{d:g}' for d in delays)} s, and was back {reconnected:.2f} s after the restart")


# -- the server stopped with Ctrl+C or SIGTERM --------------------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl+C", "SIGTERM"])
def test_server_stop_tells_every_client_and_everyone_exits_0(signum):
    with ExitStack() as stack:
        server, port = stack.enter_context(server_process())
        carol = CoreClient(port, "Carol")
        stack.callback(carol.close)
        carol.join()
        clis = [stack.enter_context(cli_client(port, name)) for name in ("Alice", "Bob")]

        server.proc.send_signal(signum)
        stopped_at = time.monotonic()
        for cli in clis:
            assert cli.wait() == 0, cli.output
            cli.expect(r"^The server shut down\.$")
            assert "Traceback" not in cli.output
        closed = carol.wait_for(Closed)
        assert closed.error is None and closed.reason == "The server shut down."
        assert server.wait() == 0
        took = time.monotonic() - stopped_at
        server.expect(r"Shutting down; telling every member\.")
        server.expect(r"^Server stopped\.$")
        assert "Traceback" not in server.output
    print(f"\nstop ({signal.Signals(signum).name}): server and 3 clients done in {took:.2f} s")


# -- connection churn while a room chats --------------------------------------

def proc_status(pid: int) -> tuple[int, int]:
    """(threads, resident KiB) of a process, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0])


def wait_for_threads(pid: int, target: int, timeout: float) -> int:
    """Poll until the process is back to ``target`` threads. There is no event
    for "a server thread ended", so this polls /proc, bounded, every 0.1 s."""
    deadline = time.monotonic() + timeout
    while True:
        threads, _ = proc_status(pid)
        if threads <= target or time.monotonic() > deadline:
            return threads
        time.sleep(0.1)


class Churner:
    """Opens and drops connections of every kind, counting what the server said."""

    KINDS = ("close at once", "half a frame", "garbage", "oversized length", "join and leave",
             "join and vanish", "wrong passphrase", "silent")
    EXPECTED: ClassVar[dict[str, set[CloseReason | None]]] = {
        "close at once": {None},
        "half a frame": {None},
        "garbage": {CloseReason.PROTOCOL},
        "oversized length": {CloseReason.PROTOCOL},
        "join and leave": {CloseReason.GOODBYE},
        "join and vanish": {None},
        "wrong passphrase": {CloseReason.WRONG_PASSPHRASE},
        "silent": {CloseReason.HANDSHAKE_TIMEOUT},
    }

    def __init__(self, port: int, key_check: bytes) -> None:
        self.port, self.key_check = port, key_check
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.unexpected: list[str] = []
        self.slowest: dict[str, float] = {}
        self._lock = threading.Lock()

    def kind_of(self, n: int) -> str:
        # One in 31 is silent (it holds a pending slot until the handshake timeout);
        # 31 is prime to the thread count, so the silent ones are spread over the threads.
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
                # FULL: two churners already hold the room's free places, so this
                # one was refused before its handshake; the server is fine.
                if not isinstance(reason, str) and reason not in self.EXPECTED[kind] | {CloseReason.FULL}:
                    self.unexpected.append(f"{kind}: {name}")

    def one(self, kind: str) -> CloseReason | str | None:
        raw = RawClient(self.port)
        try:
            if kind == "close at once":
                return None
            challenge = raw.read_frame()
            if challenge.type == FrameType.CLOSE:
                return protocol.parse_close(challenge)[0]      # BUSY or FULL: the server is fine
            if kind == "half a frame":
                raw.sock.sendall(protocol.encode_join(new_session_id(), self.key_check)[:20])
                return None
            if kind == "garbage":
                raw.sock.sendall(os.urandom(64))
            elif kind == "oversized length":
                raw.sock.sendall(struct.pack(">I", protocol.MAX_FRAME_BYTES + 1) + b"\x10")
            elif kind in ("join and leave", "join and vanish"):
                raw.sock.sendall(protocol.encode_join(new_session_id(), self.key_check))
                answer = raw.read_frame()
                if answer.type == FrameType.CLOSE:
                    return protocol.parse_close(answer)[0]
                if kind == "join and vanish":
                    return None
                raw.sock.sendall(protocol.encode_frame(FrameType.LEAVE))
            elif kind == "wrong passphrase":
                raw.sock.sendall(protocol.encode_join(new_session_id(), bytes(32)))
            return close_reason(raw.read_until_closed())
        finally:
            raw.close()


def test_connection_churn_leaves_the_room_undisturbed_and_the_server_back_at_baseline():
    names = ("Alice", "Bob", "Carol")
    with server_process("--handshake-timeout", "1") as (server, port), \
            core_clients(port, *names) as room:
        pid = server.proc.pid
        probe = RawClient(port)
        salt = protocol.parse_challenge(probe.read_frame()).room_salt
        probe.close()
        key_check = derive_room_keys(PASSPHRASE, salt).key_check
        threads_before, rss_before = proc_status(pid)      # main + accept + 2 per member

        # Warm up once (first-use allocations, malloc arenas), then take the baseline.
        warm = Churner(port, key_check)
        warm.run(range(30))
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

        churner = Churner(port, key_check)
        workers = [threading.Thread(target=churner.run, args=(range(t, CHURN_CONNECTIONS, CHURN_THREADS),))
                   for t in range(CHURN_THREADS)]
        helpers_ = [threading.Thread(target=sample), threading.Thread(target=chat)]
        started = time.monotonic()
        for thread in helpers_ + workers:
            thread.start()
        for thread in workers:
            thread.join(60)
        churn_seconds = time.monotonic() - started
        stop.set()
        for thread in helpers_:
            thread.join(WAIT)
        assert not any(t.is_alive() for t in workers), "churn did not finish in 60 s"

        # Every chat message arrived, in order; no notice; no member left.
        for member in room:
            expected = {other.name: 0 for other in room if other is not member}
            while any(expected[name] < sent[name] for name in expected):
                event = member.wait_for((ChatMessage, Notice, MemberLeft))
                if isinstance(event, Notice):
                    pytest.fail(f"{member.name} got a notice during churn: {event.text}")
                if isinstance(event, MemberLeft):
                    assert event.name not in names, f"{member.name} saw {event.name} leave"
                    continue
                if event.own:
                    continue
                sender, index = event.text.split()
                assert int(index) == expected[sender], f"{member.name}: {event.text} out of order"
                expected[sender] += 1
        threads_after = wait_for_threads(pid, threads_base, 15)
        _, rss_after = proc_status(pid)
        peak_threads = max(t for t, _ in samples)
        peak_rss = max(r for _, r in samples)
        for member in room:
            member.session.send_text(f"{member.name} still here")
        for member in room:
            waiting = {f"{other.name} still here" for other in room if other is not member}
            while waiting:
                waiting.discard(member.wait_for(ChatMessage, lambda e: not e.own).text)

    print(f"\nchurn: {CHURN_CONNECTIONS} connections from {CHURN_THREADS} threads in {churn_seconds:.2f} s "
          f"while {len(names)} members sent {sum(sent.values())} messages; server threads "
          f"{threads_before} before warm-up, baseline {threads_base}, peak {peak_threads}, after {threads_after}; "
          f"RSS {rss_before} KiB before warm-up, baseline {rss_base} KiB, peak {peak_rss} KiB, after {rss_after} KiB "
          f"({rss_after - rss_base:+d} KiB)")
    print("churn outcomes: " + ", ".join(f"{k}->{r}: {c}" for (k, r), c in sorted(churner.outcomes.items())))
    print("churn slowest per kind: " + ", ".join(f"{k} {t:.2f} s" for k, t in churner.slowest.items()))
    assert not churner.unexpected, churner.unexpected[:10]
    assert sum(churner.outcomes.values()) == CHURN_CONNECTIONS
    assert threads_after == threads_base, f"{threads_after} threads, baseline {threads_base}"
    assert rss_after - rss_base < max(4096, rss_base // 10), f"RSS {rss_base} -> {rss_after} KiB"


# -- handshakes that never finish, and the pending cap ------------------------

@pytest.mark.parametrize("how", ["silent", "trickling PINGs", "trickling a JOIN byte by byte"])
def test_handshake_that_never_finishes_is_dropped_with_a_reason(how):
    with server_process("--handshake-timeout", "1") as (_server, port), \
            core_clients(port, "Alice", "Bob") as (alice, bob):
        raw = RawClient(port)
        assert raw.read_frame().type == FrameType.CHALLENGE
        started = time.monotonic()
        join = protocol.encode_join(new_session_id(), bytes(32))
        frames: list[protocol.Frame] = []
        for i in itertools.count():
            if time.monotonic() - started > 5:
                break
            try:
                if how == "trickling PINGs":
                    raw.sock.sendall(protocol.encode_frame(FrameType.PING))
                elif how == "trickling a JOIN byte by byte":
                    raw.sock.sendall(join[i:i + 1])     # 46 bytes, 0.3 s apart: never complete
                raw.sock.settimeout(0.3)
                frames.append(raw.read_frame())
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
    print(f"\nhandshake ({how}): dropped after {took:.2f} s with --handshake-timeout 1")
    assert close_reason(frames) == CloseReason.HANDSHAKE_TIMEOUT, frames
    assert 0.9 <= took < 3.0, f"dropped after {took:.2f} s with --handshake-timeout 1"


def test_pending_connections_never_take_a_members_place():
    with running_server(max_clients=2, max_pending=3, handshake_timeout=30) as server:
        pending = [RawClient(server.port) for _ in range(2)]
        for raw in pending:
            assert raw.read_frame().type == FrameType.CHALLENGE
        with core_clients(server.port, "Alice", "Bob") as (alice, bob):
            # The room is full with two half-open connections still waiting: they
            # did not count, and now that they try to join they are told it is full.
            keys = derive_room_keys(PASSPHRASE, server.registry.room_salt)
            for raw in pending:
                raw.sock.sendall(protocol.encode_join(new_session_id(), keys.key_check))
                assert close_reason(raw.read_until_closed()) == CloseReason.FULL
                raw.close()
            alice.session.send_text("two of two")
            bob.wait_message("two of two")
        assert server.registry.pending_count == 0


def test_pending_cap_refuses_newcomers_until_pending_handshakes_time_out():
    with running_server(max_clients=2, max_pending=2, handshake_timeout=1.0) as server:
        pending = [RawClient(server.port) for _ in range(2)]
        for raw in pending:
            assert raw.read_frame().type == FrameType.CHALLENGE
        extra = RawClient(server.port)
        assert close_reason(extra.read_until_closed()) == CloseReason.BUSY
        extra.close()
        early = CoreClient(server.port, "Early").start()
        refused = early.wait_for((Connected, Closed))
        assert isinstance(refused, Closed) and re.search(r"busy", refused.reason), refused
        for raw in pending:
            assert close_reason(raw.read_until_closed()) == CloseReason.HANDSHAKE_TIMEOUT
            raw.close()
        with core_clients(server.port, "Alice", "Bob") as (alice, bob):
            alice.session.send_text("in at last")
            bob.wait_message("in at last")
        assert server.registry.pending_count == 0
