"""Shared test machinery: real relays on port 0, real clients, bounded waits.

Every wait here has a deadline, so a hang fails the test instead of CI. Nothing
here sleeps for a fixed time: waits poll a queue or a condition.

* ``running_server``   a RelayServer on 127.0.0.1, port 0, serving in a thread
* ``CoreClient``       a real ChatSession in this process, with waits on its events
* ``RawConnection``    a hand-driven relay-protocol peer, for what real clients never send
* ``Process``          a child Python process with collected output (``server_process``, ``cli_client``)
"""

from __future__ import annotations

import itertools
import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from securex import protocol
from securex.events import ChatMessage, Closed, Event, Joined, MembersChanged
from securex.relay.engine import RelayServer
from securex.session.runner import EVENT_QUEUE_SIZE, ChatSession, SessionOptions

ROOT = Path(__file__).resolve().parent.parent
PASSPHRASE = "tulip-harbor-quartz-violin-meadow"
WAIT = 10.0          # seconds any single expectation may take before the test fails
CONFIG_BASE = Path(tempfile.mkdtemp(prefix="securex-test-config-"))   # never the real ~/.config
IN_CI = os.environ.get("CI", "").lower() == "true"

E = TypeVar("E", bound=Event)
_config_numbers = itertools.count()


def skip_unless_ci(reason: str) -> None:
    """Skip on a developer's machine that lacks something; under CI=true the same
    absence is a failure, so a broken CI image cannot pass by skipping tests."""
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def fresh_config_dir(label: str) -> Path:
    """A config directory of its own (identity keys, known codes) for one client."""
    return CONFIG_BASE / f"{label}-{next(_config_numbers)}"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT, poll: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


# -- relays ----------------------------------------------------------------------

@contextmanager
def running_server(server_class: type[RelayServer] = RelayServer, **options) -> Iterator[RelayServer]:
    """A relay on 127.0.0.1, port 0 unless given, serving in a thread."""
    options.setdefault("port", 0)
    server = server_class("127.0.0.1", **options)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(WAIT)


# -- clients in this process ---------------------------------------------------------

class CoreClient:
    """A ChatSession plus its event queue, with waits that fail fast."""

    def __init__(self, port: int, name: str, passphrase: str = PASSPHRASE, *,
                 config_dir: Path | None = None, **options) -> None:
        self.events: queue.Queue[Event] = queue.Queue(maxsize=EVENT_QUEUE_SIZE)
        self.seen: list[Event] = []
        self.name = name
        self.config_dir = config_dir or fresh_config_dir(name)
        self.session = ChatSession(SessionOptions("127.0.0.1", port, name, passphrase,
                                                  config_dir=self.config_dir, **options), self.events)

    def start(self) -> CoreClient:
        self.session.start()
        return self

    def join(self) -> Joined:
        """Start and wait until in the room; raise if the session ended instead."""
        self.start()
        event = self.wait_for((Joined, Closed))
        if isinstance(event, Closed):
            raise AssertionError(f"{self.name} could not join: {event.reason}")
        return event

    def wait_for(self, kinds, predicate: Callable[[Event], bool] = lambda e: True,
                 timeout: float = WAIT) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.name}: no {kinds} within {timeout} s; saw {self.seen[-12:]}")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(event)
            if isinstance(event, kinds) and predicate(event):
                return event

    def expect(self, kinds, predicate: Callable[[Event], bool] = lambda e: True, timeout: float = WAIT) -> Event:
        """An event already seen that matches, or else the next one that does."""
        for event in self.drain():
            if isinstance(event, kinds) and predicate(event):
                return event
        return self.wait_for(kinds, predicate, timeout)

    def wait_message(self, text: str, timeout: float = WAIT) -> ChatMessage:
        return self.wait_for(ChatMessage, lambda e: e.text == text and not e.own, timeout)

    def wait_members(self, *labels: str, timeout: float = WAIT) -> MembersChanged:
        """Until the room is exactly us plus these members (by label)."""
        want = sorted(labels)
        return self.wait_for(MembersChanged, lambda e: sorted(m.label for m in e.members[1:]) == want, timeout)

    def members_now(self) -> list[str]:
        """The labels of the others in the room, as the latest event said."""
        latest = [e for e in self.drain() if isinstance(e, MembersChanged)]
        return sorted(m.label for m in latest[-1].members[1:]) if latest else []

    def drain(self) -> list[Event]:
        """Every event queued right now (no waiting)."""
        while True:
            try:
                self.seen.append(self.events.get_nowait())
            except queue.Empty:
                return self.seen

    def texts_seen(self) -> list[str]:
        return [e.text for e in self.drain() if isinstance(e, ChatMessage) and not e.own]

    def close(self) -> None:
        self.session.leave()
        deadline = time.monotonic() + WAIT
        while self.session.is_alive and time.monotonic() < deadline:
            self.drain()     # keep its queue moving so it can post Closed
            self.session.join(0.05)


@contextmanager
def core_clients(port: int, *names: str, **options) -> Iterator[list[CoreClient]]:
    """Join each named client in turn, each waiting until the others see it; leave
    them all at the end."""
    clients: list[CoreClient] = []
    try:
        for name in names:
            client = CoreClient(port, name, **options)
            clients.append(client)
            client.join()
            for other in clients[:-1]:
                other.wait_members(*[c.name for c in clients if c is not other])
        yield clients
    finally:
        for client in clients:
            client.close()


# -- a raw relay-protocol peer -------------------------------------------------------------

class RawConnection:
    """A hand-driven relay-protocol peer: for garbage, half frames, floods and
    messages that a real client would never send."""

    def __init__(self, port: int, timeout: float = WAIT) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.decoder = protocol.FrameDecoder()
        self.frames: list[protocol.Frame] = []
        self.welcome: protocol.Welcome | None = None

    def read_frame(self) -> protocol.Frame:
        while not self.frames:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the relay closed the connection")
            self.frames.extend(self.decoder.feed(data))
        return self.frames.pop(0)

    def read_until(self, frame_type: protocol.FrameType) -> protocol.Frame:
        while True:
            frame = self.read_frame()
            if frame.type == frame_type:
                return frame

    def read_until_closed(self) -> list[protocol.Frame]:
        """Every frame until the relay closes the connection."""
        frames = []
        while True:
            try:
                frames.append(self.read_frame())
            except (ConnectionError, OSError):
                return frames

    def hello(self) -> protocol.Welcome:
        """WELCOME, then HELLO: now listed in the room (not ready)."""
        self.welcome = protocol.parse_welcome(self.read_until(protocol.FrameType.WELCOME))
        self.send(protocol.encode_hello())
        return self.welcome

    def ready(self, verified: list[bytes] = ()) -> None:
        self.send(protocol.encode_status(True, list(verified)))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


def close_reason(frames: list[protocol.Frame]) -> protocol.CloseReason | None:
    closes = [f for f in frames if f.type == protocol.FrameType.CLOSE]
    return protocol.parse_close(closes[-1]) if closes else None


# -- child processes ---------------------------------------------------------------------

def python_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8",
               SECUREX_CONFIG_DIR=str(fresh_config_dir("process")))
    env.pop("SECUREX_PASSPHRASE", None)
    env.update(extra)
    return env


class Process:
    """A child Python process whose output lines are collected by a thread, so
    tests can wait for a line without ever blocking on a pipe."""

    def __init__(self, args: list[str], env: dict[str, str], stdin=subprocess.PIPE) -> None:
        self.proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdin=stdin,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, encoding="utf-8", bufsize=1)
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._changed = threading.Condition()
        for stream, sink in ((self.proc.stdout, self.lines), (self.proc.stderr, self.errors)):
            threading.Thread(target=self._collect, args=(stream, sink), daemon=True).start()

    def _collect(self, stream, sink: list[str]) -> None:
        for line in stream:
            with self._changed:
                sink.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def expect(self, pattern: str, timeout: float = WAIT, *, stderr: bool = False) -> re.Match:
        """Wait for a line matching ``pattern`` (searched anywhere in the line)."""
        regex = re.compile(pattern)
        sink = self.errors if stderr else self.lines
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in sink:
                    match = regex.search(line)
                    if match:
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no line matching {pattern!r} within {timeout} s.\n"
                                         f"stdout: {self.lines[-15:]}\nstderr: {self.errors[-15:]}")
                self._changed.wait(remaining)

    def send_line(self, text: str) -> None:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        self.proc.stdin.close()

    def wait(self, timeout: float = WAIT) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)

    @property
    def output(self) -> str:
        return "\n".join(self.lines + self.errors)


@contextmanager
def server_process(*args: str) -> Iterator[tuple[Process, int]]:
    """``python server.py --host 127.0.0.1 --port 0`` as a child; yields it and its port."""
    process = Process(["server.py", "--host", "127.0.0.1", "--port", "0", *args], python_env())
    try:
        port = int(process.expect(r"Secure X server on [\d.]+:(\d+)").group(1))
        yield process, port
    finally:
        process.kill()


@contextmanager
def cli_client(port: int, name: str, passphrase: str = PASSPHRASE, *args: str,
               join: bool = True) -> Iterator[Process]:
    """``python client.py --cli`` as a child, passphrase in the environment."""
    process = Process(["client.py", "--cli", "--host", "127.0.0.1", "--port", str(port),
                       "--name", name, *args], python_env(SECUREX_PASSPHRASE=passphrase))
    try:
        if join:
            process.expect(r"\* Joined the room")
        yield process
    finally:
        process.kill()


# -- an in-memory relay for sans-IO cores -------------------------------------------------------

class FakeClock:
    """Time for sans-IO code: it moves only when a test moves it."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# Interception hook: (sender id, recipient id, the ROUTED frame) -> the frames to deliver instead.
Intercept = Callable[[bytes, bytes, bytes], list[bytes]]


class SimRelay:
    """The relay's behaviour in memory, for ``RoomCore`` instances driven in-process:
    WELCOME, ROSTER on every change (ready and confirmed flags), ROUTE to ROUTED,
    LEAVE answered by CLOSE goodbye. ``intercept`` sees every routed frame and may
    change, drop, duplicate or add to it; ``inject`` puts any bytes in a member's way."""

    def __init__(self, capacity: int = 5, intercept: Intercept | None = None) -> None:
        self.capacity = capacity
        self.intercept = intercept or (lambda sender, to, frame: [frame])
        self.cores: dict[bytes, object] = {}             # member id -> RoomCore, in order of arrival
        self._decoders: dict[bytes, protocol.FrameDecoder] = {}
        self._inbox: dict[bytes, list[bytes]] = {}
        self._ready: set[bytes] = set()
        self._claims: dict[bytes, set[bytes]] = {}
        self._ids = (bytes([i]) * ID for i in itertools.count(1) for ID in (protocol.ID_BYTES,))
        self.routed: list[tuple[bytes, bytes, bytes]] = []   # every (sender, to, frame), for replays
        self.ghosts: list[bytes] = []    # ids a lying relay lists in every roster, though nobody is there

    def connect(self, core) -> bytes:
        member_id = next(self._ids)
        core.connection_made()
        self.cores[member_id] = core
        self._decoders[member_id] = protocol.FrameDecoder()
        self._inbox[member_id] = [protocol.encode_welcome(self.capacity, member_id, b"relayrun")]
        self._claims[member_id] = set()
        return member_id

    def drop(self, member_id: bytes) -> None:
        """The connection dies: no goodbye, the others see it go from the roster."""
        core = self.cores.pop(member_id)
        self._inbox.pop(member_id)
        self._ready.discard(member_id)
        self._claims.pop(member_id)
        core.connection_lost()
        self._send_roster()

    def inject(self, member_id: bytes, data: bytes) -> None:
        self._inbox[member_id].append(data)

    def roster(self) -> bytes:
        confirmed = {a for a, claimed in self._claims.items() if any(a in self._claims.get(b, ()) for b in claimed)}
        return protocol.encode_roster([protocol.RosterEntry(m, m in self._ready, m in confirmed)
                                       for m in self.cores if m in self._claims]
                                      + [protocol.RosterEntry(g, True, True) for g in self.ghosts])

    def _send_roster(self) -> None:
        frame = self.roster()
        for member_id in self.cores:
            self._inbox[member_id].append(frame)

    def pump(self, rounds: int = 50) -> None:
        """Move frames until nobody has anything to say (or ``rounds`` passes)."""
        for _ in range(rounds):
            moved = False
            for member_id, core in list(self.cores.items()):
                data = core.data_to_send()
                if data:
                    moved = True
                    for frame in self._decoders[member_id].feed(data):
                        self._handle(member_id, frame)
            for member_id, core in list(self.cores.items()):
                inbox = self._inbox.get(member_id)
                while inbox:
                    moved = True
                    core.receive_data(inbox.pop(0))
            if not moved:
                return

    def tick(self, clock: FakeClock, seconds: float) -> None:
        """Time passes; the relay pings everyone (as the real one does when idle)."""
        clock.advance(seconds)
        for _member_id, core in list(self.cores.items()):
            core.receive_data(protocol.encode_frame(protocol.FrameType.PING))
            core.tick()
        self.pump()

    def _handle(self, sender: bytes, frame: protocol.Frame) -> None:
        kind = frame.type
        if kind == protocol.FrameType.HELLO:
            self._send_roster()
        elif kind == protocol.FrameType.STATUS:
            status = protocol.parse_status(frame)
            if status.ready:
                self._ready.add(sender)
            self._claims[sender] = set(status.verified)
            self._send_roster()
        elif kind == protocol.FrameType.ROUTE:
            to = frame.payload[:protocol.ID_BYTES]
            if to in self.cores and to != sender:
                routed = protocol.routed_from_route(sender, frame.payload)
                self.routed.append((sender, to, routed))
                self._inbox[to].extend(self.intercept(sender, to, routed))
        elif kind == protocol.FrameType.LEAVE:
            self._inbox[sender].append(protocol.encode_close(protocol.CloseReason.GOODBYE, "Goodbye."))
            core = self.cores.pop(sender)
            inbox = self._inbox.pop(sender)
            self._ready.discard(sender)
            self._claims.pop(sender)
            for data in inbox:
                core.receive_data(data)
            self._send_roster()


def sim_core(name: str, w: int = 424242, *, clock: FakeClock, seed: int | None = None, **options):
    """A RoomCore with a deterministic identity for ``name`` and a fixed passphrase scalar."""
    from securex.session.core import RoomCore
    from securex.session.handshake import LocalIdentity

    seed_bytes = (seed if seed is not None else sum(name.encode())).to_bytes(32, "big")
    return RoomCore(LocalIdentity.from_seed(name, seed_bytes), w, server="sim:5050", clock=clock,
                    wall_clock=lambda: 1_700_000_000 + clock.now, **options)
