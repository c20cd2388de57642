"""Chat members for the end-to-end phases: each a real ``ChatSession`` (the client's
own runner, RoomCore and network thread, built by ``helpers.CoreClient``) in a
child process of its own, driven by the benchmark over a pipe.

A member takes one command at a time and answers ``("ok", value)`` or
``("error", text)``; a command that starts something timed first answers
``("ready", None)`` and then waits for the room's shared ``go`` event, so every
member starts at once. Events reach the member's own handler thread through
``securex.events.dispatch``, as in any front end; it stamps each message it
receives with ``time.monotonic_ns()`` (CLOCK_MONOTONIC: one clock for every
process on the machine, so a sender's stamp and a receiver's compare).

Texts carry what a receiver needs to check them: ``name:number:`` padded to the
size measured (throughput), or ``number:send-time-ns:`` (latency).
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from multiprocessing.connection import Connection

import bench_setup  # noqa: F401  (the project on sys.path)
import crypto_utils
from bench_flooder import sequence_faults, text_for
from bench_pipes import unpack_reply
from helpers import WAIT, CoreClient
from securex.errors import SendQueueFullError
from securex.events import ChatMessage, Closed, EventHandler, Joined, MembersChanged, Notice, Severity, dispatch
from securex.session.identity import load_identity

RUN_TIMEOUT = 120.0       # no timed command may take longer
SEND_RETRY = 0.001        # the session's command queue was full: try again this much later


class MemberError(RuntimeError):
    pass


class ChatMember:
    """The parent's handle on one member process."""

    def __init__(self, port: int, name: str, go) -> None:
        context = multiprocessing.get_context("fork")
        self.name = name
        self._pipe, child_end = context.Pipe()
        self.process = context.Process(target=_member_main, args=(child_end, port, name, go), daemon=True)
        self.process.start()
        child_end.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, command: str, **arguments) -> None:
        self._pipe.send((command, arguments))

    def reply(self, expected: str = "ok", timeout: float = WAIT):
        if not self._pipe.poll(timeout):
            raise MemberError(f"{self.name} did not answer within {timeout:g} s")
        return unpack_reply(self._pipe, expected, self.name, MemberError)

    def call(self, command: str, timeout: float = WAIT, **arguments):
        self.send(command, **arguments)
        return self.reply(timeout=timeout)

    def stop(self) -> None:
        """Leave the room (if in it) and end the process; kill it if it does not answer."""
        if self.process.is_alive():
            try:
                self.call("leave")
                self.send("exit")
                self.process.join(WAIT)
            except (MemberError, OSError):
                pass
        if self.process.is_alive():
            self.process.kill()
            self.process.join(WAIT)


@contextmanager
def chat_room(port: int, size: int, prefix: str = "m") -> Iterator[tuple[list[ChatMember], object]]:
    """``size`` members joined one after another, each once everyone before it sees
    it; yields them and the ``go`` event their timed commands wait for."""
    go = multiprocessing.get_context("fork").Event()
    with ExitStack() as stack:
        members: list[ChatMember] = []
        for index in range(size):
            member = ChatMember(port, f"{prefix}{index}", go)
            stack.callback(member.stop)
            members.append(member)
            member.call("join")
            for present in members:
                present.call("wait_room", size=index + 1)
        yield members, go


def start_together(members: list[ChatMember], go, command: str, **arguments) -> float:
    """Send a timed command to every member, wait until all are ready, start them;
    the monotonic time of the start."""
    go.clear()
    for member in members:
        member.send(command, **arguments)
    for member in members:
        member.reply("ready", RUN_TIMEOUT)
    started = time.monotonic()
    go.set()
    return started


# -- the member process ---------------------------------------------------------------------

def _member_main(pipe: Connection, port: int, name: str, go) -> None:
    member = _Member(port, name, pipe, go)
    try:
        while True:
            command, arguments = pipe.recv()
            if command == "exit":
                return
            try:
                pipe.send(("ok", getattr(member, command)(**arguments)))
            except Exception as error:
                pipe.send(("error", f"{name}: {type(error).__name__}: {error}"))
    except (EOFError, OSError):
        pass     # the benchmark went away
    finally:
        member.leave()


class _Member(EventHandler):
    def __init__(self, port: int, name: str, pipe: Connection, go) -> None:
        self.name, self._pipe, self._go = name, pipe, go
        self.client = CoreClient(port, name)
        self._changed = threading.Condition()
        self.joined: Joined | None = None
        self.joined_at = 0.0
        self.room_size = 0
        self.received: list[tuple[str, str, int]] = []     # (sender, text, arrival ns)
        self.arrived: Counter[str] = Counter()              # texts received per sender, taken or not
        self._taken: Counter[str] = Counter()               # of those, handed out by ``latencies``
        self.warnings: list[str] = []
        self.closed: str | None = None
        self._started = False

    # -- events, on the handler thread --------------------------------------------------

    def _handle_events(self) -> None:
        while True:
            event = self.client.events.get()
            with self._changed:
                dispatch(self, event)
                self._changed.notify_all()
            if isinstance(event, Closed):
                return

    def on_joined(self, event: Joined) -> None:
        self.joined, self.joined_at = event, time.perf_counter()

    def on_members_changed(self, event: MembersChanged) -> None:
        self.room_size = len(event.members)

    def on_chat_message(self, event: ChatMessage) -> None:
        if not event.own:
            self.received.append((event.sender.label, event.text, time.monotonic_ns()))
            self.arrived[event.sender.label] += 1

    def on_notice(self, event: Notice) -> None:
        if event.severity != Severity.INFO:
            self.warnings.append(event.text)

    def on_closed(self, event: Closed) -> None:
        self.closed = event.reason

    def _wait(self, condition, what: str, timeout: float = WAIT) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: condition() or self.closed is not None, timeout):
                raise TimeoutError(f"no {what} within {timeout:g} s")
            if not condition():
                raise RuntimeError(f"the session ended: {self.closed}")

    def _ready_then_wait_for_go(self) -> None:
        self._pipe.send(("ready", None))
        if not self._go.wait(RUN_TIMEOUT):
            raise TimeoutError("no signal to start")

    # -- commands -----------------------------------------------------------------------------

    def join(self, cold: bool = False) -> dict:
        """Start the session and wait until in the room. ``cold``: as a program that has
        just started (scrypt not yet computed; the identity key already on disk)."""
        if cold:
            load_identity(self.name, self.client.config_dir)
            crypto_utils.passphrase_to_w.cache_clear()
        threading.Thread(target=self._handle_events, daemon=True).start()
        started = time.perf_counter()
        self.client.start()
        self._started = True
        self._wait(lambda: self.joined is not None, "Joined event")
        assert self.joined is not None
        return {"seconds": self.joined_at - started, "verified": self.joined.verified,
                "present": self.joined.present}

    def wait_room(self, size: int) -> None:
        self._wait(lambda: self.room_size == size, f"room of {size}")

    def flood(self, count: int, text_size: int, window: int) -> dict:
        """Send ``count`` texts as fast as the session takes them, staying at most
        ``window`` texts ahead of what arrives from each other member; then wait
        for everyone's texts and check them."""
        peers = self.room_size - 1
        expected = peers * count
        self._ready_then_wait_for_go()
        for number in range(count):
            self._wait(lambda n=number: (n - window) * peers <= len(self.received), "texts from the others",
                       RUN_TIMEOUT)
            self._send(text_for(self.name, number, text_size))
        self._wait(lambda: len(self.received) >= expected, f"{expected} texts", RUN_TIMEOUT)
        with self._changed:
            received, warnings = list(self.received), list(self.warnings)
        by_sender: dict[str, list[int]] = {}
        wrong = 0
        for sender, text, _ in received:
            number = int(text.split(":")[1])
            by_sender.setdefault(sender, []).append(number)
            wrong += text != text_for(sender, number, text_size)
        check = sequence_check(by_sender, peers, count)
        check.update(done_at=received[expected - 1][2] / 1e9, wrong=wrong, warnings=warnings[:3])
        return check

    def send_paced(self, count: int, period: float, text_size: int) -> int:
        """One text every ``period`` seconds, each carrying the monotonic time (ns)
        just before it was handed to the session."""
        self._ready_then_wait_for_go()
        start = time.monotonic() + 0.05
        for number in range(count):
            delay = start + number * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._send(f"{number}:{time.monotonic_ns()}:".ljust(text_size, "x"))
        return count

    def latencies(self, sender: str, count: int) -> dict:
        """Send-to-screen times (ns) of the next ``count`` paced texts from ``sender``
        (taken out of what was received, so the next run starts after them), and
        their check."""
        # A cheap condition: it runs on every event, holding the lock the handler stamps under.
        self._wait(lambda: self.arrived[sender] - self._taken[sender] >= count, f"{count} texts", RUN_TIMEOUT)
        with self._changed:
            taken = [i for i, (s, _, _) in enumerate(self.received) if s == sender][:count]
            mine = [self.received[i][1:] for i in taken]
            for i in reversed(taken):
                del self.received[i]
            self._taken[sender] += count
            warnings, self.warnings = self.warnings, []
        numbers = [int(text.split(":")[0]) for text, _ in mine]
        check = sequence_check({sender: numbers}, 1, count)
        check.update(samples=[at - int(text.split(":")[1]) for text, at in mine], warnings=warnings[:3])
        return check

    def leave(self) -> None:
        if self._started:
            self._started = False
            self.client.close()

    def _send(self, text: str) -> None:
        while True:
            try:
                self.client.session.send_text(text)
                return
            except SendQueueFullError:
                time.sleep(SEND_RETRY)


def sequence_check(by_sender: dict[str, list[int]], senders: int, count: int) -> dict:
    """Lost, duplicated and reordered texts over every sender (each sent 0..count-1)."""
    totals = [(senders - len(by_sender)) * count, 0, 0]
    for numbers in by_sender.values():
        totals = [t + f for t, f in zip(totals, sequence_faults(numbers, count), strict=True)]
    return dict(zip(("lost", "duplicated", "reordered"), totals, strict=True))
