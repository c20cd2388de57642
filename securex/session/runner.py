"""The session runner: one network thread moving bytes between a socket and the core.

``ChatSession.start()`` starts the thread. It loads this name's identity key,
derives the passphrase scalar once (scrypt), then connects, serves the link and
reconnects with back-off when it drops. All protocol decisions are made by the
sans-IO ``RoomCore``; this thread only:

* reads and writes the socket without ever blocking on either (select over a
  non-blocking socket), so a relay that slows our sending never stops us
  reading, and a send that makes no progress for SEND_STALL ends the link;
* takes the front end's typed commands from a bounded queue (a socketpair
  wakes the select at once);
* puts the core's events on the front end's bounded queue, blocking while it
  is full, so a slow front end slows the relay down rather than growing memory.

Front ends call ``send_text``, ``leave`` and ``reconnect_now`` from their own
thread; those only queue commands and never touch the socket.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import queue
import select
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import crypto_utils
from securex.session.file_worker import FileWorker, partial_owner
from securex.session.files import DEFAULT_MAX_FILE_BYTES
from securex.errors import (MessageTooLongError, RefusedError, RoomFullError, SecureXError, SendQueueFullError,
                            describe_connect_error, describe_reconnect_error)
from securex.events import Closed, ConnectionLost, Event, Reconnecting
from securex.session.core import LinkEnd, LinkOutcome, RoomCore
from securex.session.handshake import LocalIdentity
from securex.session.identity import claim_identity, load_identity, load_known_codes, save_known_codes
from securex.session.peer_wire import MAX_TEXT_BYTES
from securex.session.send_buffer import SendBuffer
from securex.text import validate_name

log = logging.getLogger(__name__)

EVENT_QUEUE_SIZE = 1000       # what a front end should give as its queue's maxsize
COMMAND_QUEUE_SIZE = 1000
MAX_POLL_SECONDS = 1.0
SEND_STALL = 15.0             # queued bytes that make no progress for this long: the link is dead
LEAVE_TIMEOUT = 2.0           # a goodbye that cannot be sent within this is given up
MAX_BACKOFF = 30.0
BULK_AHEAD = 256 * 1024       # file data queued in the socket buffer ahead of chat, at most
QUIET_BEFORE_WORK_AHEAD = 0.002   # the link this quiet: do what can be done ahead (core.prepare_ahead)
DEFAULT_DOWNLOADS = Path.home() / "Downloads" / "Secure X"


@dataclass(frozen=True)
class SessionOptions:
    host: str
    port: int
    name: str
    passphrase: str = field(repr=False)
    auto_reconnect: bool = True
    connect_timeout: float = 5.0
    scrypt_n: int = crypto_utils.SCRYPT_N
    config_dir: Path | None = None
    downloads: Path = DEFAULT_DOWNLOADS          # where accepted files go
    auto_accept: Path | None = None              # accept every offer into this folder (scripts)
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    join_anyway: bool = False                    # enter even if the members present share another passphrase
    # The server shutting down is the end of the session (the terminal's contract), or, in
    # the desktop app, one more reason to try again: it may be restarting.
    retry_after_shutdown: bool = False

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"


class CommandKind(enum.Enum):
    SEND_TEXT = "send a message"
    RECONNECT_NOW = "skip the back-off"
    SEND_FILE = "offer a file"
    ACCEPT_FILE = "accept a file offer"
    DECLINE_FILE = "decline a file offer"
    CANCEL_FILE = "cancel a transfer"
    TRUST_CODE = "trust a member's new safety code"


@dataclass(frozen=True)
class Command:
    kind: CommandKind
    text: str = ""            # the message, the path, or the transfer's id
    directory: Path | None = None


class ChatSession:
    """A member's session with one room, across reconnects."""

    def __init__(self, options: SessionOptions, events: queue.Queue[Event]) -> None:
        # ValueError with a message for the user; the name is used as others will see it.
        self.options = replace(options, name=validate_name(options.name))
        self._events = events
        self._commands: queue.Queue[Command] = queue.Queue(maxsize=COMMAND_QUEUE_SIZE)
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._leaving = threading.Event()
        self._detached = threading.Event()
        self._thread = threading.Thread(target=self._run, name="securex network", daemon=True)

    # -- the front end's side (any thread; never blocks on the network) ----------------------

    def start(self) -> None:
        self._thread.start()

    def send_text(self, text: str) -> None:
        """Queue a message. Raises MessageTooLongError or SendQueueFullError (nothing is
        queued, nothing blocks) so the front end can say so and keep the draft."""
        size = len(text.encode("utf-8"))
        if size > MAX_TEXT_BYTES:
            raise MessageTooLongError(f"Message not sent: it is {size:,} bytes; the limit is {MAX_TEXT_BYTES:,}.")
        if text.strip():
            self._queue_command(Command(CommandKind.SEND_TEXT, text))

    def leave(self) -> None:
        """Leave cleanly; a ``Closed`` event follows. Never blocks, whatever is queued."""
        self._leaving.set()
        self._wake()

    def send_file(self, path: Path) -> None:
        """Offer a file to the room (hashing and reading happen off every UI thread)."""
        self._queue_command(Command(CommandKind.SEND_FILE, str(path)))

    def accept_file(self, file_id: str, directory: Path | None = None) -> None:
        self._queue_command(Command(CommandKind.ACCEPT_FILE, file_id, directory))

    def decline_file(self, file_id: str) -> None:
        self._queue_command(Command(CommandKind.DECLINE_FILE, file_id))

    def cancel_file(self, file_id: str) -> None:
        self._queue_command(Command(CommandKind.CANCEL_FILE, file_id))

    def _queue_command(self, command: Command) -> None:
        """Hand a command to the network thread; SendQueueFullError if its queue is full."""
        try:
            self._commands.put_nowait(command)
        except queue.Full:
            raise SendQueueFullError() from None
        self._wake()

    def trust_code(self, name: str) -> None:
        """Remember the safety code of the member called ``name`` (who is here) as theirs."""
        self._queue_command(Command(CommandKind.TRUST_CODE, name))

    def reconnect_now(self) -> None:
        """Skip the rest of the back-off wait."""
        with contextlib.suppress(queue.Full):   # one already queued does the same
            self._commands.put_nowait(Command(CommandKind.RECONNECT_NOW))
        self._wake()

    def detach(self) -> None:
        """The front end will read no more events (its window is gone): drop them
        instead of waiting for room in its queue, and leave."""
        self._detached.set()
        self.leave()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):   # a full wake-up pipe already wakes the thread
            self._wake_write.send(b"\0")

    # -- the network thread -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._run_session()
        except Exception as error:   # the last line of defence: a message, never a traceback
            log.exception("the network thread failed")
            self._post(Closed(f"Secure X hit an internal error ({type(error).__name__}). Please report it.",
                              SecureXError(str(error))))
        finally:
            for sock in (self._wake_read, self._wake_write):
                sock.close()

    def _run_session(self) -> None:
        options = self.options
        try:
            me = load_identity(options.name, options.config_dir)
            in_use = claim_identity(options.name, options.config_dir)
        except SecureXError as error:
            self._post(Closed(str(error), error))
            return
        try:
            self._serve_identity(me)
        finally:
            in_use.release()

    def _serve_identity(self, me: LocalIdentity) -> None:
        options = self.options
        core = RoomCore(me, crypto_utils.passphrase_to_w(options.passphrase, n=options.scrypt_n),
                        server=options.server, known_codes=load_known_codes(options.config_dir),
                        downloads=options.downloads, auto_accept=options.auto_accept,
                        max_file_bytes=options.max_file_bytes, join_anyway=options.join_anyway)
        self._worker = FileWorker(self._wake, recycle=core.frame_pool.give_back, owner=partial_owner(me.public_key))
        try:
            self._serve_session(core)
        finally:
            self._worker.stop()

    def _serve_session(self, core: RoomCore) -> None:
        options = self.options
        attempt = 0
        while True:
            outcome, reached_room = self._connect_and_serve(core)
            self._save_known_codes(core)
            unsent, unfinished = len(core.pending), tuple(core.files.unfinished())
            if outcome.end == LinkEnd.LEFT or self._leaving.is_set():
                self._post(Closed("You left the room.", None, unsent, unfinished))
                return
            if outcome.end == LinkEnd.SHUTDOWN and not (options.retry_after_shutdown and options.auto_reconnect):
                self._post(Closed(outcome.message, None, unsent, unfinished))
                return
            joined = core.joined_before
            retry = options.auto_reconnect and (outcome.end in (LinkEnd.RETRY, LinkEnd.SHUTDOWN) or (joined and (
                outcome.end == LinkEnd.LOST or isinstance(outcome.error, RoomFullError))))
            if not retry:
                # --no-reconnect: a room that says "later" (busy, refusing newcomers) is an error too.
                error = outcome.error or (RefusedError(outcome.message) if outcome.end == LinkEnd.RETRY else None)
                self._post(Closed(outcome.message, error, unsent, unfinished))
                return
            attempt = 0 if reached_room else attempt
            delay = max(outcome.retry_after, min(MAX_BACKOFF, 0.5 * 2 ** attempt))
            attempt += 1
            self._post(ConnectionLost(outcome.message, delay, attempt - 1))
            if not self._wait_to_retry(core, delay):
                self._post(Closed("You left the room.", None, len(core.pending), tuple(core.files.unfinished())))
                return
            self._post(Reconnecting(attempt))

    def _wait_to_retry(self, core: RoomCore, delay: float) -> bool:
        """Wait out the back-off, taking commands meanwhile. False if the user left."""
        deadline = time.monotonic() + delay
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self._wake_read], [], [], remaining)
            if readable:
                for command in self._take_commands():
                    if command.kind == CommandKind.RECONNECT_NOW:
                        return not self._leaving.is_set()
                    self._apply(core, command)    # messages are kept until the room is back
                self._move_file_work(core)
                self._post_all(core.take_events())
                if self._leaving.is_set():
                    return False
        return not self._leaving.is_set()

    def _connect_and_serve(self, core: RoomCore) -> tuple[LinkOutcome, bool]:
        """Connect and serve the link: (how it ended, whether it got into the room)."""
        options = self.options
        try:
            sock = socket.create_connection((options.host, options.port), timeout=options.connect_timeout)
        except OSError as error:
            describe = describe_reconnect_error if core.joined_before else describe_connect_error
            failure = describe(error, options.host, options.port, options.connect_timeout)
            return LinkOutcome(LinkEnd.LOST, str(failure), failure), False   # exit 5, in its own words
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            outcome = self._serve(sock, core)
            return outcome, core.reached_room
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _serve(self, sock: socket.socket, core: RoomCore) -> LinkOutcome:
        core.connection_made()
        outgoing = SendBuffer()
        leave_by: float | None = None
        quiet = False           # nothing came in the last QUIET_BEFORE_WORK_AHEAD: work ahead goes on
        last_progress = time.monotonic()
        while core.outcome is None:
            for command in self._take_commands():
                self._apply(core, command)
            self._move_file_work(core)
            if self._leaving.is_set() and leave_by is None:
                core.leave()
                leave_by = time.monotonic() + LEAVE_TIMEOUT
            outgoing.extend(core.data_parts(bulk_room=BULK_AHEAD - len(outgoing)))
            if outgoing:     # out before the front end hears of it: others see a text sooner
                sent = outgoing.send_some(sock)
                if sent is None:
                    break
                if sent:
                    last_progress = time.monotonic()
            self._post_all(core.take_events())
            self._save_known_codes(core)
            if core.outcome is not None:
                break
            now = time.monotonic()
            if leave_by is not None and now > leave_by:
                break    # the goodbye could not be sent in time: close anyway
            timeout = min(MAX_POLL_SECONDS, max(0.0, core.next_deadline() - now))
            if core.has_bulk and not outgoing:
                timeout = 0.0
            if leave_by is not None:
                timeout = min(timeout, max(0.0, leave_by - now))
            work_ahead = core.work_ahead
            if work_ahead:      # once quiet, a channel at a time with a look at the socket between
                timeout = min(timeout, 0.0 if quiet else QUIET_BEFORE_WORK_AHEAD)
            try:
                readable, writable, _ = select.select([sock, self._wake_read], [sock] if outgoing else [], [],
                                                      timeout)
            except (OSError, ValueError):
                break
            quiet = work_ahead and not readable and not writable
            if quiet:
                # Quiet for a moment: not in the way of whatever comes next (nor of the
                # front end's thread, taking what was just handed over).
                core.prepare_ahead()
            if sock in readable:
                try:
                    count = sock.recv_into(core.receive_buffer())
                except BlockingIOError:
                    count = None
                except OSError:
                    count = 0
                if count == 0:
                    break   # the relay closed the connection
                if count:
                    core.received(count)
                    self._post_all(core.take_events())    # what arrived, before its receipts are sealed
            if sock in writable and outgoing:
                sent = outgoing.send_some(sock)
                if sent is None:
                    break
                if sent:
                    last_progress = now
            if not outgoing:
                last_progress = now
            elif now - last_progress > SEND_STALL:
                core.outcome = LinkOutcome.lost(f"Could not send anything to {self.options.server} "
                                                f"for {SEND_STALL:g} s: the connection is lost.")
                break
            core.tick()
        outcome = core.outcome
        if outcome is None:
            outcome = (LinkOutcome(LinkEnd.LEFT, "You left the room.") if self._leaving.is_set()
                       else LinkOutcome.lost(f"The connection to {self.options.server} was lost."))
            core.outcome = outcome
        core.connection_lost()
        self._post_all(core.take_events())
        return outcome

    def _save_known_codes(self, core: RoomCore) -> None:
        """As soon as a code is first seen or trusted: a client killed later must not
        forget it (the next look-alike would go unremarked). A small file, rarely."""
        if core.known_codes.changed:
            core.known_codes.changed = False
            save_known_codes(core.known_codes.codes, self.options.config_dir)

    @staticmethod
    def _apply(core: RoomCore, command: Command) -> None:
        if command.kind == CommandKind.SEND_TEXT:
            core.send_text(command.text)
        elif command.kind == CommandKind.SEND_FILE:
            core.offer_file(Path(command.text))
        elif command.kind == CommandKind.ACCEPT_FILE:
            core.accept_file(command.text, command.directory)
        elif command.kind == CommandKind.DECLINE_FILE:
            core.decline_file(command.text)
        elif command.kind == CommandKind.CANCEL_FILE:
            core.cancel_file(command.text)
        elif command.kind == CommandKind.TRUST_CODE:
            core.trust_code(command.text)

    def _move_file_work(self, core: RoomCore) -> None:
        """Hand the core's disk work to the file worker; hand back what it finished."""
        for result in self._worker.take_results():
            core.file_result(result)
        for job in core.take_file_jobs():
            self._worker.submit(job)

    def _take_commands(self) -> list[Command]:
        with contextlib.suppress(OSError):
            while self._wake_read.recv(4096):
                pass
        commands = []
        while True:
            try:
                commands.append(self._commands.get_nowait())
            except queue.Empty:
                return commands

    # -- events ------------------------------------------------------------------------------

    def _post_all(self, events: list[Event]) -> None:
        for event in events:
            self._post(event)

    def _post(self, event: Event) -> None:
        """Hand an event to the front end, waiting while its queue is full (back-pressure),
        unless the front end has gone away."""
        while not self._detached.is_set():
            try:
                self._events.put(event, timeout=0.25)
                return
            except queue.Full:
                continue

