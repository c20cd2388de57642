"""The terminal front end: ``securex --cli`` (or ``python client.py --cli``).

One line per event on stdout, a contract scripts rely on (README, "Terminal
contract")::

    [14:03:20] * Joined the room at 192.168.1.23:5050 (AES-256-GCM). Your safety code: K4F2 9XQ7 M3TB 6PLA
    [14:03:20] * In the room (2/5): Alice (you) K4F2 9XQ7 M3TB 6PLA, Bob NOWP ONH4 SYZZ KECU
    [14:03:22] Bob: hello                        a message (newlines shown as ⏎)
    [14:03:25] * Carol joined                    membership
    [14:03:40] * Carol left                      an authenticated goodbye
    [14:03:41] * Carol's connection dropped      no goodbye
    [14:03:42] ! 2 messages from Bob were not received     warnings; "!!" for possible attacks

Every line the client writes itself starts with ``*`` or ``!`` after the time;
no member's line can, because no name may start with either.

Threads: the main thread takes events from the session's bounded queue and
prints them through ``dispatch``; a reader thread turns stdin lines into work
for the main thread (an input queue); neither touches the socket.
"""

from __future__ import annotations

import contextlib

import os
import queue
import signal
import sys
import threading
from datetime import datetime
from collections.abc import Callable
from pathlib import Path
from typing import TextIO, TypeVar

from crypto_utils import passphrase_warning
from securex.commands import Action, help_lines, parse_input, refusal
from securex.console import CANONICAL_LINE_LIMIT, Console
from securex.errors import (EXIT_USAGE, MessageTooLongError, SecureXError, SendQueueFullError, WrongPassphraseError,
                            exit_status)
from securex.events import (ChatMessage, Closed, Connected, ConnectionLost, DeliveryChanged, Event, EventHandler,
                            FileFinished, FileOffered, FileProgress, Joined, Member, MemberJoined, MemberLeft,
                            MembersChanged, Notice, Reconnecting, Severity, dispatch)
from securex.session.files import PREPARING_NOTE_BYTES, why_not_sendable
from securex.session.runner import EVENT_QUEUE_SIZE, ChatSession, SessionOptions
from securex.text import human_size, one_line

T = TypeVar("T")

INPUT_QUEUE_SIZE = 1000
POLL_SECONDS = 0.1
_MARK = {Severity.INFO: "*", Severity.WARNING: "!", Severity.ALERT: "!!"}


def ask(prompt: str, flag: str, what: str, check: Callable[[str], T]) -> T:
    """Ask the person at the terminal for ``what`` until ``check`` takes the answer (it
    returns the value, or raises ValueError or SecureXError saying what is wrong, and
    the question comes again at once); without a terminal, say which flag to pass."""
    if not sys.stdin.isatty():
        raise SecureXError(f"No terminal to ask for {what}: pass {flag}.")
    with contextlib.suppress(ImportError):    # arrow keys edit the answer instead of typing escapes
        import readline  # noqa: F401
    while True:
        answer = input(prompt).strip()
        if not answer:
            print("It cannot be empty.", file=sys.stderr)
            continue
        try:
            return check(answer)
        except (ValueError, SecureXError) as error:
            print(f"{error} Try again.", file=sys.stderr)


def member_list(members: tuple[Member, ...]) -> str:
    return ", ".join(f"{m.label}{' (you)' if m.you else ''} {m.safety_code}" for m in members)


class TerminalFrontEnd(EventHandler):
    """Prints events as the contract says; remembers what ``/who`` shows."""

    def __init__(self, session: ChatSession, console: Console | None = None, err: TextIO = sys.stderr) -> None:
        self.session = session
        self.console = console or Console()
        self.err = err
        self.members: MembersChanged | None = None
        self.exit_status: int | None = None
        self.joined = False
        self._transfers: set[tuple[str, str, str]] = set()

    def line(self, text: str, at: datetime | None = None) -> None:
        stamp = (at or datetime.now()).strftime("[%H:%M:%S]")
        self.console.line(f"{stamp} {text}")

    def note(self, text: str, severity: Severity = Severity.INFO) -> None:
        self.line(f"{_MARK[severity]} {text}")

    # -- events -------------------------------------------------------------------

    def on_connected(self, event: Connected) -> None:
        verb = "Reconnected to" if event.reconnected else "Connected to"
        self.line(f"* {verb} {event.server}; checking the passphrase with the members present...", event.at)

    def on_joined(self, event: Joined) -> None:
        self.joined = True
        verb = "Back in the room" if event.reconnected else "Joined the room"
        self.line(f"* {verb} at {event.server} ({event.cipher}). Your safety code: {event.you.safety_code} "
                  "(compare codes out loud to be sure who is who)", event.at)

    def on_members_changed(self, event: MembersChanged) -> None:
        first = self.members is None
        self.members = event
        if first:
            self.show_members(event.at)

    def on_member_joined(self, event: MemberJoined) -> None:
        self.line(f"* {event.member.label} joined ({event.member.safety_code})", event.at)

    def on_member_left(self, event: MemberLeft) -> None:
        how = "'s connection dropped" if event.dropped else " left"
        self.line(f"* {event.member.label}{how}", event.at)

    def on_chat_message(self, event: ChatMessage) -> None:
        late = " (late)" if event.late else " (sent while you were away)" if event.caught_up else ""
        if event.written_earlier is not None:
            late = f" (written {event.written_earlier:%H:%M})"
        self.line(f"{event.sender.label}: {one_line(event.text)}{late}", event.shown_at)
        if event.pending:
            self.note("Queued: not in the room right now; it will be sent when the room is back.")

    def on_delivery_changed(self, event: DeliveryChanged) -> None:
        """Receipts: the terminal says only what went wrong (the core's notices name
        members a message is slow to reach or will not reach)."""

    # -- files ---------------------------------------------------------------------------

    def on_file_offered(self, event: FileOffered) -> None:
        if event.problem:       # accepting it failed; it can be accepted again
            self.line(f"! {event.problem} Once that is put right, /accept {event.file_id} again, or "
                      f"/decline {event.file_id}.", event.at)
            return
        answer = (f"accepting it into {event.accepting_into} (--accept-files)" if event.accepting_into is not None else
                  f"/accept {event.file_id} or /decline {event.file_id}")
        self.line(f"* {event.sender.label} offers {event.name} ({human_size(event.size)}), id {event.file_id}: "
                  + answer, event.at)

    def on_file_progress(self, event: FileProgress) -> None:
        key = (event.file_id, event.direction, event.peer)
        if event.stage == "offered":        # the first offer, or again to one whose Secure X restarted
            if key in self._transfers:
                self._transfers.discard(key)
                self.console.status(None)
            self.line(f"* Offering {event.name} ({human_size(event.total)}) to {event.peer}, id {event.file_id}; "
                      f"waiting for them to accept (/cancel {event.file_id} to stop)", event.at)
            return
        started = key in self._transfers
        self._transfers.add(key)
        verb, preposition = ("Receiving", "from") if event.direction == "in" else ("Sending", "to")
        if not started:     # a start line; on a terminal, then a status line updated in place
            self.line(f"* {verb} {event.name} ({human_size(event.total)}) {preposition} {event.peer}, "
                      f"id {event.file_id}", event.at)
        percent = 100 * event.done // event.total if event.total else 100
        if event.stage in ("paused", "waiting"):
            why = "until the connection is back" if event.stage == "paused" else "(nothing has moved for a while)"
            self.console.status(f"  {verb} {event.name} {preposition} {event.peer}: {event.stage} at {percent}% "
                                f"{why}")
            return
        left = f", {(event.total - event.done) / event.rate:.0f} s left" if event.rate else ""
        self.console.status(f"  {verb} {event.name} {preposition} {event.peer}: {percent}%, "
                            f"{human_size(int(event.rate))}/s{left}")

    def on_file_finished(self, event: FileFinished) -> None:
        self.console.status(None)
        self.line(f"{'*' if event.ok or event.by_choice else '!'} {event.message}", event.at)

    def on_notice(self, event: Notice) -> None:
        self.line(f"{_MARK[event.severity]} {one_line(event.text)}", event.at)

    def on_connection_lost(self, event: ConnectionLost) -> None:
        """One line per try at most: the drop, then each try that fails."""
        if event.failed_attempts == 0:
            self.line(f"! {event.reason} Reconnecting in {_seconds(event.retry_in)} s (Ctrl+C to quit).", event.at)
        else:
            self.line(f"! Not back yet (try {event.failed_attempts}): {event.reason} "
                      f"Next try in {_seconds(event.retry_in)} s.", event.at)

    def on_reconnecting(self, event: Reconnecting) -> None:
        """Said by the line before (when) and the line after (how it went)."""

    def on_closed(self, event: Closed) -> None:
        if event.unsent:
            self.note(f"{event.unsent} message{'s' if event.unsent != 1 else ''} typed while not in the room "
                      f"{'were' if event.unsent != 1 else 'was'} never sent.", Severity.WARNING)
        self.console.status(None)
        for sentence in event.unfinished:
            self.note(sentence, Severity.WARNING)
        if event.error is None:
            self.note(event.reason)      # the last line keeps the contract: time, mark, one line
        else:
            print(f"Error: {event.reason}", file=self.err, flush=True)
            if isinstance(event.error, WrongPassphraseError) and event.error.may_join_anyway:
                print("To join anyway, run again with --join-anyway.", file=self.err, flush=True)
        self.exit_status = exit_status(event.error)

    # -- what the user typed ----------------------------------------------------------

    def show_members(self, at: datetime | None = None) -> None:
        if self.members is None:
            if not self.joined:     # once joined, the list is on its way: it is printed when it comes
                self.note("Not in the room yet: the members are listed once you are in.")
            return
        count = f"{len(self.members.members)}/{self.members.capacity}"
        self.line(f"* In the room ({count}): {member_list(self.members.members)}", at)

    def on_input(self, line: str | None) -> None:
        """A line from stdin (None: end of input, which leaves)."""
        if line is None:
            self.session.leave()
            return
        if self.console.lines_may_be_cut and len(line) >= CANONICAL_LINE_LIMIT:
            self.note(f"That line reached the terminal's limit of {CANONICAL_LINE_LIMIT:,} characters, so its end "
                      "was cut off; nothing was sent. Send it in parts, or as a file with /send.", Severity.WARNING)
            return
        parsed = parse_input(line)
        if parsed.action == Action.QUIT:
            self.session.leave()
        elif parsed.action == Action.WHO:
            self.show_members()
        elif parsed.action == Action.HELP:
            for text in help_lines():
                self.note(text)
        elif parsed.action in (Action.UNKNOWN, Action.REFUSED, Action.MISSING_ARGUMENT):
            self.note(refusal(parsed), Severity.WARNING)
        elif parsed.action == Action.SEND_FILE:
            path = Path(parsed.argument).expanduser()
            problem = why_not_sendable(path)
            if problem:
                self.note(problem, Severity.WARNING)
            else:
                self.session.send_file(path)
                with contextlib.suppress(OSError):
                    if (size := path.stat().st_size) >= PREPARING_NOTE_BYTES:
                        self.note(f"Preparing {path.name} ({human_size(size)}) to offer it: computing its "
                                  "SHA-256...")
        elif parsed.action == Action.ACCEPT_FILE:
            self.session.accept_file(parsed.argument)
        elif parsed.action == Action.DECLINE_FILE:
            self.session.decline_file(parsed.argument)
        elif parsed.action == Action.CANCEL_FILE:
            self.session.cancel_file(parsed.argument)
        elif parsed.action == Action.TRUST:
            self.session.trust_code(parsed.argument)
        else:
            try:
                self.session.send_text(parsed.text)
            except (MessageTooLongError, SendQueueFullError) as error:
                self.note(str(error), Severity.WARNING)


def _read_input(console: Console, lines: queue.Queue[str | None]) -> None:
    while True:
        line = console.read_line()
        lines.put(line)
        if line is None:
            return


def tolerate_any_encoding() -> None:
    """On a terminal that cannot show some characters (an ASCII or Latin-1 locale),
    print a replacement character instead of crashing: chat text is anyone's to choose."""
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")


class Interrupts:
    """Ctrl+C and SIGTERM: the first leaves cleanly, a second ends the program at once.
    Installed explicitly, so they work even when started with SIGINT ignored
    (as a background job or under nohup)."""

    def __init__(self, session: ChatSession, console: Console) -> None:
        self.session = session
        self.console = console
        self.count = 0
        self.unannounced = False    # the main loop says "Leaving..." (never print in a handler)

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self.handle)

    def handle(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count > 1:
            self.console.restore()
            os._exit(128 + signum)   # the user insists: no clean-up beyond the terminal's settings
        self.unannounced = True
        self.session.leave()


def run(options: SessionOptions) -> int:
    """Chat in this terminal until the session ends; returns the exit status."""
    tolerate_any_encoding()
    warning = passphrase_warning(options.passphrase)
    if warning:
        print(f"Warning: {warning}", file=sys.stderr)
    events: queue.Queue[Event] = queue.Queue(maxsize=EVENT_QUEUE_SIZE)
    try:
        session = ChatSession(options, events)
    except ValueError as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_USAGE
    console = Console()
    front = TerminalFrontEnd(session, console)
    interrupts = Interrupts(session, console)
    interrupts.install()
    lines: queue.Queue[str | None] = queue.Queue(maxsize=INPUT_QUEUE_SIZE)
    reader = threading.Thread(target=_read_input, args=(console, lines), name="stdin", daemon=True)
    session.start()
    while front.exit_status is None:
        try:
            event = events.get(timeout=POLL_SECONDS)
        except queue.Empty:
            event = None
        if interrupts.unannounced:
            interrupts.unannounced = False
            front.note("Leaving the room... (Ctrl+C again to quit at once)")
        if event is not None:
            dispatch(front, event)
        if front.joined and not reader.is_alive() and reader.ident is None:
            reader.start()   # typing is read once there is a room to send to
        while front.exit_status is None:
            try:
                front.on_input(lines.get_nowait())
            except queue.Empty:
                break
    session.join(timeout=2.0)
    console.restore()
    return front.exit_status


__all__ = ["TerminalFrontEnd", "ask", "run"]


def _seconds(delay: float) -> str:
    """A wait as people read it: 0.5, 2, 80 (never 79.7304)."""
    return f"{delay:.1g}" if delay < 1 else f"{round(delay)}"
