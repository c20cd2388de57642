"""Shared test machinery: real relays on port 0, real clients, bounded waits.

Every wait here has a deadline, so a hang fails the test instead of CI. Nothing
here sleeps for a fixed time: waits poll a queue or a condition.

* ``running_server``   a RelayServer on 127.0.0.1, port 0, serving in a thread
* ``CoreClient``       a real ChatSession in this process, with waits on its events
* ``RawConnection``    a hand-driven relay-protocol peer, for what real clients never send
* ``Process``          a child Python process with collected output (``server_process``, ``cli_client``)
"""

from __future__ import annotations

import base64
import itertools
import os
import queue
import random
import re
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
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
                 config_dir: Path | None = None, queue_size: int = EVENT_QUEUE_SIZE, **options) -> None:
        self.events: queue.Queue[Event] = queue.Queue(maxsize=queue_size)
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

    def expect_members(self, *labels: str, timeout: float = WAIT) -> MembersChanged:
        """Like wait_members, counting a list already seen."""
        want = sorted(labels)
        return self.expect(MembersChanged, lambda e: sorted(m.label for m in e.members[1:]) == want, timeout)

    def wait_to_see(self, *labels: str, timeout: float = WAIT) -> MembersChanged:
        """Until the room includes these members (others may be there too)."""
        want = set(labels)
        return self.wait_for(MembersChanged, lambda e: want <= {m.label for m in e.members[1:]}, timeout)

    def members_now(self) -> list[str]:
        """The labels of the others in the room, as the latest event said."""
        latest = [e for e in self.drain() if isinstance(e, MembersChanged)]
        return sorted(m.label for m in latest[-1].members[1:]) if latest else []

    def collect_in_background(self) -> threading.Event:
        """Move events into ``seen`` from a thread, as a front end would, until the
        returned event is set (for tests that do something else meanwhile)."""
        stop = threading.Event()

        def collect() -> None:
            while not stop.is_set():
                try:
                    self.seen.append(self.events.get(timeout=0.05))
                except queue.Empty:
                    continue
        threading.Thread(target=collect, daemon=True).start()
        return stop

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
def tiny_tmpfs(folder: Path, size: str = "1m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``folder`` (a real file system that fills up), or
    the test skipped where mounting needs a root this process is not."""
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                           capture_output=True, timeout=10).returncode != 0:
        pytest.skip(f"mounting a {size} tmpfs needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, timeout=10)


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
            client.wait_to_see(*[c.name for c in clients[:-1]])   # its list comes just after "Joined"
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

    def __init__(self, args: list[str], env: dict[str, str], stdin=subprocess.PIPE,
                 preexec_fn: Callable[[], object] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdin=stdin,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, encoding="utf-8", bufsize=1, preexec_fn=preexec_fn)
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
def cli_client(port: int, name: str, *args: str, passphrase: str = PASSPHRASE,
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
        self._ids = (i.to_bytes(protocol.ID_BYTES, "big") for i in itertools.count(1))
        self.routed: list[tuple[bytes, bytes, bytes]] = []   # every (sender, to, frame), for replays
        self.ghosts: list[bytes] = []    # ids a lying relay lists in every roster, though nobody is there

    def connect(self, core) -> bytes:
        member_id = next(self._ids)
        for old_id, old in list(self.cores.items()):
            if old is core:     # it reconnects; its old connection lingers, dead, until dropped
                self.cores[old_id] = _DeadConnection()
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

    def pump(self, rounds: int = 50) -> bool:
        """Move frames until nobody has anything to say (or ``rounds`` passes);
        say whether anything moved at all."""
        anything = False
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
                return anything
            anything = True
        return anything

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
        elif kind == protocol.FrameType.FANOUT:
            fanout = protocol.parse_fanout(frame)
            routed = protocol.encode_frame(protocol.FrameType.ROUTED, sender + fanout.body)
            for to in fanout.recipients:
                if to in self.cores and to != sender:
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


class _DeadConnection:
    """What is left of a connection whose client went away without the relay noticing."""

    def data_to_send(self) -> bytes:
        return b""

    def receive_data(self, data: bytes) -> None:
        pass

    def tick(self) -> None:
        pass

    def connection_lost(self) -> None:
        pass


def sim_core(name: str, w: int = 424242, *, clock: FakeClock, seed: int | None = None, **options):
    """A RoomCore with a deterministic identity for ``name`` and a fixed passphrase scalar."""
    from securex.session.core import RoomCore
    from securex.session.handshake import LocalIdentity

    seed_bytes = (seed if seed is not None else sum(name.encode())).to_bytes(32, "big")
    return RoomCore(LocalIdentity.from_seed(name, seed_bytes), w, server="sim:5050", clock=clock,
                    wall_clock=lambda: 1_700_000_000 + clock.now, **options)


# -- a wiretap on the network between clients and relay -----------------------------------

# A frame the relay may rewrite on its way to the server; returns the bytes to forward.
Tamper = Callable[[protocol.Frame], bytes]


class Forwarder:
    """A TCP forwarder on 127.0.0.1 (port 0) in front of the relay: clients connect to
    ``port``; each connection gets its own upstream connection to the relay, handed to
    ``_connected`` (which starts whatever carries the bytes, with ``_start``). The
    test doubles below differ only in how they carry, and whom they let in."""

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._start(self._accept_loop)

    def _start(self, target: Callable[..., None], *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _admit(self) -> bool:
        """Whether to carry a new connection (False: close it at once)."""
        return True

    def _connected(self, client: socket.socket, upstream: socket.socket) -> None:
        raise NotImplementedError

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._admit():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.server_port), timeout=WAIT)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            self._connected(client, upstream)

    def _close_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(WAIT)
        self._close_all()


@dataclass
class RecordedConnection:
    """Every byte of one client connection, per direction, as it crossed the relay."""

    to_server: bytearray = field(default_factory=bytearray)
    to_client: bytearray = field(default_factory=bytearray)


class RecordingRelay(Forwarder):
    """A forwarder that keeps a copy of each direction of each connection, copied by
    two threads per connection.

    With ``tamper``, the client-to-server stream is cut into frames and each frame is
    replaced by what ``tamper`` returns: an active attacker on the network.
    """

    def __init__(self, server_port: int, tamper: Tamper | None = None) -> None:
        self._tamper = tamper
        self.connections: list[RecordedConnection] = []
        super().__init__(server_port)

    def _connected(self, client: socket.socket, upstream: socket.socket) -> None:
        record = RecordedConnection()
        with self._lock:
            self.connections.append(record)
        for sock in (client, upstream):
            sock.settimeout(0.1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._start(self._pump, client, upstream, record.to_server, self._tamper)
        self._start(self._pump, upstream, client, record.to_client, None)

    def _pump(self, source: socket.socket, sink: socket.socket, record: bytearray,
              tamper: Tamper | None) -> None:
        decoder = protocol.FrameDecoder() if tamper else None
        while not self._stopping.is_set():
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            if decoder is not None:
                data = b"".join(tamper(frame) for frame in decoder.feed(data))
            with self._lock:
                record += data
            try:
                sink.sendall(data)
            except OSError:
                break
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            with suppress(OSError):
                sock.shutdown(how)

    def streams(self) -> list[tuple[str, bytes]]:
        """(label, bytes) for each direction of each connection recorded so far."""
        with self._lock:
            return [(f"connection {i} {direction}", bytes(data))
                    for i, conn in enumerate(self.connections)
                    for direction, data in (("to server", conn.to_server), ("to client", conn.to_client))]

@contextmanager
def recording_relay(server_port: int, tamper: Tamper | None = None) -> Iterator[RecordingRelay]:
    relay = RecordingRelay(server_port, tamper)
    try:
        yield relay
    finally:
        relay.stop()


# -- what to look for ---------------------------------------------------------

MIN_NEEDLE_BYTES = 6    # shorter patterns could turn up in random ciphertext by chance


def _base64_cores(raw: bytes) -> list[bytes]:
    """The base64 characters that depend only on ``raw``, for each of the three ways
    it can sit against the 3-byte groups of a longer base64 text."""
    cores = []
    for shift in range(3):
        encoded = base64.b64encode(bytes(shift) + raw)
        start = 4 if shift else 0                              # first group mixes in the prefix
        end = len(encoded) - (4 if (shift + len(raw)) % 3 else 0)  # last group is padded
        core = encoded[start:end]
        if len(core) >= 8:
            cores += [core, core.translate(bytes.maketrans(b"+/", b"-_"))]
    return cores


def encodings_of(secret: str) -> dict[str, bytes]:
    """Every common way ``secret`` could be written into a byte stream."""
    found: dict[str, bytes] = {}
    for form in ("NFC", "NFD"):
        text = unicodedata.normalize(form, secret)
        raw = text.encode("utf-8")
        for codec in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
            found[f"{form} {codec}"] = text.encode(codec)
        found[f"{form} hex"] = raw.hex().encode()
        found[f"{form} HEX"] = raw.hex().upper().encode()
        for i, core in enumerate(_base64_cores(raw)):
            found[f"{form} base64 #{i}"] = core
        quoted = urllib.parse.quote(text, safe="").encode()
        found[f"{form} url-encoded"] = quoted
        found[f"{form} url-encoded lower"] = re.sub(rb"%[0-9A-F]{2}", lambda m: m[0].lower(), quoted)
        found[f"{form} form-encoded"] = urllib.parse.quote_plus(text, safe="").encode()
    return found


def find_leaks(streams: list[tuple[str, bytes]], secrets: list[str]) -> list[str]:
    """Which secret, in which encoding, shows up in which stream."""
    leaks = []
    for secret in secrets:
        for encoding, needle in encodings_of(secret).items():
            assert len(needle) >= MIN_NEEDLE_BYTES, f"{secret!r} is too short to search for reliably"
            leaks += [f"{secret!r} as {encoding} in {label}" for label, data in streams if needle in data]
    return leaks


def frames_of(stream: bytes) -> list[protocol.Frame]:
    decoder = protocol.FrameDecoder()
    frames = decoder.feed(stream)
    assert decoder.pending_bytes == 0, "the recording ends in the middle of a frame"
    return frames


# -- a member the test drives by hand ------------------------------------------------------------

class ScriptedMember:
    """A real RoomCore on a real socket, pumped by the test thread: the test decides
    when bytes go out and how the writes are cut, reads the core's state (its keys
    included), and can make it send what an honest client never would."""

    def __init__(self, port: int, name: str, passphrase: str = PASSPHRASE) -> None:
        import crypto_utils
        from securex.session.core import RoomCore
        from securex.session.handshake import LocalIdentity

        self.core = RoomCore(LocalIdentity.from_seed(name, os.urandom(32)), crypto_utils.passphrase_to_w(passphrase),
                             server=f"127.0.0.1:{port}")
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.events: list[Event] = []
        self.core.connection_made()

    def pump(self, until: Callable[[], bool], what: str, timeout: float = WAIT,
             write: Callable[[bytes], None] | None = None) -> None:
        """Move bytes both ways until ``until()`` holds; ``write`` sends our bytes."""
        write = write or self.sock.sendall
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.02)
        while True:
            data = self.core.data_to_send()
            if data:
                write(data)
            self.events += self.core.take_events()
            if until():
                return
            if time.monotonic() > deadline or self.core.outcome is not None:
                raise AssertionError(f"no {what} within {timeout} s: {self.core.outcome}; {self.events[-8:]}")
            try:
                received = self.sock.recv(65536)
            except TimeoutError:
                received = None
            if received == b"":
                raise AssertionError("the relay closed the connection")
            if received:
                self.core.receive_data(received)
            self.core.tick()

    def join(self) -> None:
        self.pump(lambda: self.core.in_room, "join")

    def peer(self, name: str):
        return next(p for p in self.core.peers.values() if p.name == name)

    def close(self) -> None:
        self.sock.close()


# -- hosts on one LAN: network namespaces ---------------------------------------------------------
# Real machines for the LAN tests: network namespaces joined by veth pairs, private addresses,
# no default route. Root and iproute2 only (CI has both); the namespaces, and everything
# started in them, are removed when ``netns_lan`` ends, however it ends.

# ``Process`` runs ``python ARGS``; this makes that python become ``ip netns exec NS python ARGS``
# (the same pid, so ``Process.kill`` still reaches the real program).
NETNS_EXEC = ("import os, sys; "
              "os.execvp('ip', ['ip', 'netns', 'exec', sys.argv[1], sys.executable, *sys.argv[2:]])")
_netns_numbers = itertools.count()


def run_ip(*args: str) -> str:
    """``ip ARGS``; its output, or RuntimeError with its complaint."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=WAIT)
    if done.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


class NetnsLan:
    """Named hosts (network namespaces) and what runs in them."""

    def __init__(self, hosts: dict[str, str]) -> None:
        self.hosts = hosts                     # role ("server", "client") -> namespace name
        self.processes: list[Process] = []

    def connect(self, interface: str, a: str, a_address: str, b: str, b_address: str, prefix: int = 24, *,
                multicast_route: bool = True) -> None:
        """A cable between hosts ``a`` and ``b``: a veth pair, an address at each end and, unless
        told not to, the multicast route that programs naming no interface (dig) need."""
        run_ip("-n", self.hosts[a], "link", "add", interface, "type", "veth",
               "peer", "name", interface, "netns", self.hosts[b])
        for role, address in ((a, a_address), (b, b_address)):
            run_ip("-n", self.hosts[role], "addr", "add", f"{address}/{prefix}", "dev", interface)
            run_ip("-n", self.hosts[role], "link", "set", interface, "up")
            if multicast_route and "224.0.0.0/4" not in run_ip("-n", self.hosts[role], "route", "show"):
                run_ip("-n", self.hosts[role], "route", "add", "224.0.0.0/4", "dev", interface)

    def run(self, role: str, *args: str, env: dict[str, str] | None = None) -> Process:
        """``python ARGS`` on host ``role``, stopped when the LAN goes."""
        process = Process(["-c", NETNS_EXEC, self.hosts[role], *args], env or python_env())
        self.processes.append(process)
        return process

    def command(self, role: str, *command: str, timeout: float = WAIT,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Any program on host ``role``, to completion (bounded by ``timeout``)."""
        return subprocess.run(["ip", "netns", "exec", self.hosts[role], *command], capture_output=True,
                              text=True, timeout=timeout, env=env)


@contextmanager
def netns_lan(*roles: str) -> Iterator[NetnsLan]:
    """One network namespace per role, each with only ``lo`` up; ``connect`` cables them."""
    import shutil

    if os.geteuid() != 0:
        skip_unless_ci("creating network namespaces needs root (CI runs as root)")
    if shutil.which("ip") is None:
        skip_unless_ci("needs the `ip` command from iproute2")
    suffix = f"{os.getpid()}-{next(_netns_numbers)}"
    lan = NetnsLan({role: f"sx-{role[:6]}-{suffix}" for role in roles})
    created: list[str] = []
    try:
        for namespace in lan.hosts.values():
            try:
                run_ip("netns", "add", namespace)
            except RuntimeError as error:
                skip_unless_ci(f"`ip netns` is unavailable here: {error}")
            created.append(namespace)
            run_ip("-n", namespace, "link", "set", "lo", "up")
        yield lan
    finally:
        for process in lan.processes:
            process.kill()
        for namespace in created:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=WAIT)


# -- a network that keeps failing ------------------------------------------------------------

class ChaosProxy(Forwarder):
    """A TCP proxy in front of the relay that resets every connection after a random
    time in ``lifetime`` seconds (RST, not a clean close), while ``active`` is set:
    Wi-Fi at its worst. Clear ``active`` and connections live until closed.

    With ``lifetime=None`` it resets only when told (``reset_now``), and
    ``hold_after(n)`` lets through only ``n`` more bytes towards the members, then holds
    the rest (a link that stalls), so a test can act at a known point of a transfer."""

    def __init__(self, server_port: int, lifetime: tuple[float, float] | None = (0.7, 2.5), seed: int = 7) -> None:
        self._lifetime = lifetime
        self._random = random.Random(seed)
        self._linger = struct.pack("ii", 1, 0)     # close with RST
        self.active = threading.Event()
        self.active.set()
        self.resets = 0
        self._generation = 0                        # bumped by reset_now
        self._budget: int | None = None             # bytes still allowed towards members
        super().__init__(server_port)

    def reset_now(self) -> None:
        """Reset every connection open now (new ones are carried as usual)."""
        with self._lock:
            self._generation += 1

    def hold_after(self, budget: int | None) -> None:
        """Carry at most ``budget`` more bytes towards members (None: no limit)."""
        with self._lock:
            self._budget = budget

    def _connected(self, client: socket.socket, upstream: socket.socket) -> None:
        with self._lock:
            life = self._random.uniform(*self._lifetime) if self._lifetime else float("inf")
            generation = self._generation
        self._start(self._carry, client, upstream, time.monotonic() + life, generation)

    def _carry(self, client: socket.socket, upstream: socket.socket, reset_at: float, generation: int) -> None:
        pairs = {client: upstream, upstream: client}
        try:
            while not self._stopping.is_set():
                with self._lock:
                    reset = self._generation != generation
                    budget = self._budget
                if reset or (self.active.is_set() and time.monotonic() >= reset_at):
                    for sock in (client, upstream):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, self._linger)
                    with self._lock:
                        self.resets += 1
                    return
                sources = [client] if budget is not None and budget <= 0 else list(pairs)
                readable, _, _ = select.select(sources, [], [], 0.05)
                for sock in readable:
                    limit = 65536
                    if sock is upstream and budget is not None:
                        limit = max(1, min(limit, budget))
                    data = sock.recv(limit)
                    if not data:
                        return
                    if sock is upstream:
                        with self._lock:
                            if self._budget is not None:
                                self._budget -= len(data)
                    pairs[sock].sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

