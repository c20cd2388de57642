"""Shared test machinery: real servers on port 0, real clients, bounded waits.

Every wait here has a deadline, so a hang fails the test instead of CI.
"""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from securex import protocol
from securex.session.runner import ChatMessage, ChatSession, Closed, Connected, Event
from crypto_utils import derive_room_keys, new_session_id
from securex.relay.engine import RelayServer

ROOT = Path(__file__).resolve().parent.parent
PASSPHRASE = "tulip-harbor-quartz-violin-meadow"
WAIT = 10.0          # seconds any single expectation may take before the test fails

E = TypeVar("E", bound=Event)
IN_CI = os.environ.get("CI", "").lower() == "true"


def skip_unless_ci(reason: str) -> None:
    """Skip on a developer's machine that lacks something; under CI=true the same
    absence is a failure, so a broken CI image cannot pass by skipping tests."""
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


@contextmanager
def running_server(**options) -> Iterator[RelayServer]:
    """A RelayServer on 127.0.0.1, port 0 unless given, serving in a thread."""
    options.setdefault("port", 0)
    server = RelayServer("127.0.0.1", **options)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(WAIT)


class CoreClient:
    """A ChatSession plus its event queue, with waits that fail fast."""

    def __init__(self, port: int, name: str, passphrase: str = PASSPHRASE, **options) -> None:
        self.events: queue.Queue[Event] = queue.Queue()
        self.seen: list[Event] = []
        self.session = ChatSession("127.0.0.1", port, name, passphrase, self.events, **options)
        self.name = name

    def start(self) -> CoreClient:
        self.session.start()
        return self

    def join(self) -> Connected:
        """Start and wait until joined; raise the session's error if refused."""
        self.start()
        event = self.wait_for((Connected, Closed))
        if isinstance(event, Closed):
            raise AssertionError(f"{self.name} could not join: {event.reason}")
        return event

    def wait_for(self, kinds, predicate: Callable[[Event], bool] = lambda e: True,
                 timeout: float = WAIT) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.name}: no {kinds} within {timeout} s; saw {self.seen[-10:]}")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(event)
            if isinstance(event, kinds) and predicate(event):
                return event

    def wait_message(self, text: str, timeout: float = WAIT) -> ChatMessage:
        return self.wait_for(ChatMessage, lambda e: e.text == text and not e.own, timeout)

    def close(self) -> None:
        self.session.leave()
        self.session.join(WAIT)


@contextmanager
def core_clients(port: int, *names: str, **options) -> Iterator[list[CoreClient]]:
    """Join each named client in turn; leave them all at the end."""
    clients: list[CoreClient] = []
    try:
        for name in names:
            client = CoreClient(port, name, **options)
            clients.append(client)
            client.join()
        yield clients
    finally:
        for client in clients:
            client.close()


class RawClient:
    """A hand-driven protocol peer: for garbage, half frames and handshakes
    that a real client would never send."""

    def __init__(self, port: int, timeout: float = WAIT) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.decoder = protocol.FrameDecoder()
        self.frames: list[protocol.Frame] = []

    def read_frame(self) -> protocol.Frame:
        while not self.frames:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self.frames.extend(self.decoder.feed(data))
        return self.frames.pop(0)

    def read_until(self, frame_type: protocol.FrameType) -> protocol.Frame:
        while True:
            frame = self.read_frame()
            if frame.type == frame_type:
                return frame

    def read_until_closed(self) -> list[protocol.Frame]:
        """Every frame until the server closes the connection."""
        frames = []
        while True:
            try:
                frames.append(self.read_frame())
            except (ConnectionError, OSError):
                return frames

    def handshake(self, passphrase: str = PASSPHRASE, session_id: bytes | None = None):
        """Join the room as a real client would; returns (keys, session_id, ACCEPTED frame)."""
        challenge = protocol.parse_challenge(self.read_until(protocol.FrameType.CHALLENGE))
        keys = derive_room_keys(passphrase, challenge.room_salt)
        session_id = session_id or new_session_id()
        self.sock.sendall(protocol.encode_join(session_id, keys.key_check))
        return keys, session_id, self.read_frame()

    def close(self) -> None:
        self.sock.close()


def python_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
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
            process.expect(r"Joined the room")
        yield process
    finally:
        process.kill()
