"""The client core: one member's view of the room, as a state machine. Sans-IO.

``RoomCore`` is fed the bytes the relay sends (``receive_data``), the user's
commands (``send_text``, ``leave``) and the time (``tick``); it hands back the
bytes to send (``data_to_send``), events for the front end (``take_events``),
when it next needs the time (``next_deadline``) and, once the connection should
end, ``outcome``. It owns no socket, thread or file, so tests drive it with
byte strings and a fake clock. ``runner.py`` moves bytes between it and a socket.

The relay is a router, not an authority. Its roster says which connections
exist; a member appears in *our* room only after a SPAKE2 run and an identity
proof with *us* (``handshake.py``). Joining::

    WAITING  --WELCOME-->  send HELLO
             --ROSTER-->   JOINING: a PAKE run (as A) with every member listed
    JOINING  --every run ended (or JOIN_TIMEOUT)-->  verdict (``verdict.py``):
               some verified               -> IN_ROOM; the others named as unverified
               none; a confirmed one differs -> wrong passphrase (fatal)
               none; only unconfirmed ones   -> IN_ROOM alone (nobody can tell who is right)
               nobody present                -> IN_ROOM alone ("you are the first")
    IN_ROOM  --LEAVE-->  GOODBYE to each peer, LEAVE to the relay  -> LEAVING

Any member answers a newcomer's PAKE_A (as B) in any state, unless the room is
backing off after failed guesses (``guard.py``).

Messages: a text is numbered once per run of this program (``next_msg_no``) and
sealed separately for each verified peer, carrying our view of the room. A
receiver shows each number once, reports gaps ("2 messages from Bob were not
received"), checks the sender's view against its own, and learns from a
peer's GOODBYE or KEEPALIVE which numbers it should have had.
"""

from __future__ import annotations

import enum
import itertools
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import crypto_utils
from crypto_utils import CIPHER_NAME, Bytes, RandBytes
from securex import protocol
from securex.errors import (ConnectionLostError, DecryptionError, ProtocolError, RefusedError, RoomFullError,
                            SecureXError, WrongPassphraseError)
from securex.events import (ChatMessage, Connected, DeliveryChanged, Event, Joined, Member, MemberJoined,
                            MemberLeft, MembersChanged, Notice, Severity)
from securex.protocol import CLIENT_IDLE_TIMEOUT, PING_SECONDS, CloseReason, FrameType
from securex.session import peer_wire
from securex.session.delivery import GivenUp, NoLongerKept, Outbox, PendingQueue, Sent
from securex.session.files import DEFAULT_MAX_FILE_BYTES, MAX_BULK_QUEUED, FileTransfers, Job, Result
from securex.session.guard import JoinGuard, OwnRejections
from securex.session.handshake import Failure, LocalIdentity, PairHandshake, State, Step
from securex.session.members import Peer, ReceivedLogs, labels, view_difference
from securex.session.peer_wire import (Ack, AppMessage, BodyKind, CaughtUp, FailedJoin, FileMessage, Goodbye, Identity,
                                       KeepAlive, RefuseReason, Text)
from securex.session.trust import KnownCodes, TrustNotice
from securex.session.verdict import Outcome, RunResult, join_verdict
from securex.text import display_safe, name_key

ENTRY_DEADLINE = 30.0       # from connecting to being in the room, however the relay trickles bytes
RUN_TIMEOUT = 10.0          # a PAKE run that has not ended by then is abandoned
JOIN_TIMEOUT = 15.0         # the join verdict comes at the latest this long after the roster
KEEPALIVE_SECONDS = 5.0     # an encrypted keep-alive to a peer we have sent nothing for this long
PEER_SILENCE = 20.0         # nothing from a peer the relay still lists: we say so
VIEW_SETTLE = 3.0           # views younger than this are still changing; not compared
MAX_RETRY_SECONDS = 600.0
NOTICE_REPEAT_SECONDS = 10.0   # the same kind of "dropped" notice at most this often
MAX_SEEN_ATTEMPTS = 256
MAX_PROGRAM_RUNS = 256
# Receipts to one member at most this often: a burst of texts costs each receiver one
# ACK to seal and the sender one to open, not one per text (the tick comes as soon).
RECEIPT_INTERVAL = 0.02


class Phase(enum.Enum):
    WAITING = "waiting for the relay"
    JOINING = "checking the passphrase with the members present"
    IN_ROOM = "in the room"
    LEAVING = "leaving"


class LinkEnd(enum.Enum):
    LEFT = "we said goodbye"
    SHUTDOWN = "the relay shut down"
    LOST = "the connection was lost: try again"
    RETRY = "the relay is busy: try again shortly"
    FATAL = "there is no point trying again"


@dataclass(frozen=True)
class LinkOutcome:
    end: LinkEnd
    message: str
    error: SecureXError | None = None
    retry_after: float = 0.0     # for RETRY: the least time to wait before trying again

    @classmethod
    def lost(cls, message: str) -> LinkOutcome:
        """A lost link is an error however it was noticed (exit status 5)."""
        return cls(LinkEnd.LOST, message, ConnectionLostError(message))


@dataclass
class Run:
    """A PAKE run in progress with one connection."""
    handshake: PairHandshake
    started_at: float


class RoomCore:
    def __init__(self, me: LocalIdentity, w: int, *, server: str, known_codes: dict[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
                 randbytes: RandBytes = secrets.token_bytes, downloads: Path | None = None,
                 auto_accept: Path | None = None, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                 join_anyway: bool = False) -> None:
        # File chunks are received into these buffers, which the file worker hands back.
        self.frame_pool = protocol.FramePool()
        self.me = me
        self.join_anyway = join_anyway       # the user insists on this passphrase (see verdict.py)
        self.server = server
        self.known_codes = KnownCodes(known_codes)
        self._w = w
        self._clock = clock
        self._wall_clock = wall_clock
        self._randbytes = randbytes
        self.run_id = randbytes(peer_wire.RUN_ID_BYTES)
        self.next_msg_no = 0
        self.guard = JoinGuard()
        self.own_rejections = OwnRejections()
        self._seen_attempts: dict[bytes, None] = {}       # newcomers' nonces we saw a PAKE_A with
        # Identity key -> the run id it last verified with: another one is a new start of its program.
        self._program_runs: dict[bytes, bytes] = {}
        self._notice_times: dict[str, tuple[float, int]] = {}   # kind -> (last shown, suppressed since)
        self._received = ReceivedLogs(keep=self._still_owed)
        self.outbox = Outbox()
        self.pending = PendingQueue()
        self.files = FileTransfers(self, clock, max_file_bytes=max_file_bytes, auto_accept=auto_accept,
                                   downloads=downloads, randbytes=randbytes)
        self._local_ids = itertools.count(1)
        self._events: list[Event] = []
        self.joined_before = False
        # Identity keys (and labels) verified when the link was lost: their return is no "joined".
        self._present_before: dict[bytes, str] = {}
        self._reported_missing: set[bytes] = set()   # of those, not there when we were back: "is back"
        self.outcome: LinkOutcome | None = None
        self.phase = Phase.WAITING
        self.reached_room = False                    # this link got past the join verdict
        self._reset_link()

    # -- the connection ---------------------------------------------------------------

    def _reset_link(self) -> None:
        now = self._clock()
        # Frames queued for a link that ended are its business: the next link starts
        # with HELLO (what a member is owed is kept in the outbox, not here).
        self._out: list[bytes] = []
        # File chunks, sent after everything else: each a FANOUT header and the sealed
        # chunk, kept apart so the chunk is never copied into a frame of its own.
        self._bulk_out: deque[tuple[bytes, Bytes]] = deque()
        self._decoder = protocol.FrameDecoder(pool=self.frame_pool)
        self.my_id = b""
        self.capacity = 0
        self.roster: dict[bytes, protocol.RosterEntry] = {}
        self._runs: dict[bytes, Run] = {}
        self.peers: dict[bytes, Peer] = {}
        self._targets: dict[bytes, RunResult | None] = {}
        self._to_try: list[bytes] = []          # members present not asked yet (see _start_runs)
        self._retrying: set[bytes] = set()      # of those, members asked again after a refusal
        # A connection that took over from another of the same identity -> the one it replaced.
        self._replaced: dict[bytes, Peer] = {}
        self._retry_at: dict[bytes, float] = {}
        self._join_deadline = 0.0
        self._view_changed_at = now
        self._status_sent: tuple[bool, frozenset[bytes]] | None = None
        self._heard_at = self._sent_at = self._link_started = now
        self._refusal_noted = False
        self._attempt = crypto_utils.new_nonce(self._randbytes)   # our nonce as A, for every run of this link
        self._members_posted: tuple[tuple[Member, ...], int] | None = None
        self._held: list[Event] = []     # members' messages that came while joining (see _post_in_room)

    def connection_made(self) -> None:
        """A new TCP connection to the relay is open."""
        self._reset_link()
        self.phase = Phase.WAITING
        self.outcome = None
        self.reached_room = False

    def connection_lost(self) -> None:
        """The connection is gone (whatever the reason); forget everything tied to it.
        A run where we had shown our confirmation and got none back is a guess spent,
        even though the link, not the guesser, ended it."""
        self._release_held()      # received and counted: shown even though the join did not finish
        if self.outcome is None:
            self._end(LinkEnd.LOST, f"The connection to {self.server} was lost.")
        now = self._clock()
        for run in self._runs.values():
            if run.handshake.role == crypto_utils.ROLE_B and not run.handshake.confirmed:
                self.guard.record(run.handshake.nonce, run.handshake.attempt, now)
        for peer in self.peers.values():     # unreachable from here now: they are owed what we send
            self.outbox.member_dropped(peer.verified.identity.public_key, now)
            # Transfers with them wait too (a tester saw "12 s left" all through an outage).
            self.files.member_away(peer.verified.identity.public_key)
        self._present_before = {peer.verified.identity.public_key: peer.member.label for peer in self.peers.values()}
        self._reset_link()

    # -- inputs -----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the relay, as they arrived."""
        self._receive(lambda: self._decoder.feed(data))

    def receive_buffer(self) -> memoryview:
        """Where the next bytes from the relay may be read into (``recv_into``), then
        ``received(count)``: a file chunk lands in place, with no copy."""
        return self._decoder.get_buffer()

    def received(self, count: int) -> None:
        """``count`` bytes from the relay were read into the last ``receive_buffer()``."""
        self._receive(lambda: self._decoder.buffer_updated(count))

    def _receive(self, decode: Callable[[], list[protocol.Frame]]) -> None:
        self._heard_at = self._clock()
        try:
            frames = decode()
        except ProtocolError as error:
            self._end(LinkEnd.LOST, f"The server sent data that is not Secure X protocol ({error}).")
            return
        for frame in frames:
            if self.outcome is not None:
                return
            try:
                self._on_frame(frame)
            except ProtocolError as error:
                self._end(LinkEnd.LOST, f"The server broke the protocol ({error}).")
        # The receipts for this read are sealed in data_to_send: the front end can be
        # handed the messages first (take_events), which is what a reader waits for.

    def send_text(self, text: str) -> bool:
        """Send a message to every verified member, or keep it until the room is back.
        False (with a notice) only when too much is already waiting."""
        local_id = next(self._local_ids)
        if self.in_room:
            self._send_now(local_id, text, announce=True)
            return True
        if not self.pending.room_for(text):
            self._notice(f"Message not sent: {len(self.pending)} messages are already waiting for the room to "
                         "be back.", Severity.WARNING)
            return False
        typed_at = self._wall_clock()
        self.pending.add(local_id, text, typed_at)
        self._post(ChatMessage(self._me_member(), display_safe(text), own=True,
                               sent_at=datetime.fromtimestamp(typed_at), message_id=local_id, pending=True))
        return True

    def _send_now(self, local_id: int, text: str, *, announce: bool, typed_at: float | None = None) -> None:
        """``typed_at``: when a message kept while the room was away was typed (its time
        stamp: the others show when it was written, not when the link came back)."""
        now = self._clock()
        sent_at = typed_at if typed_at is not None else self._wall_clock()
        message = Text(self.next_msg_no, int(sent_at * 1000), int((now - self._view_changed_at) * 1000),
                       tuple(sorted(self._view())), text)
        plaintext = peer_wire.encode_text(message)    # ValueError if too long: checked by the caller
        self.next_msg_no += 1
        for peer in self.peers.values():
            self._send_app(peer, plaintext)
        sent = Sent(local_id, message.msg_no, plaintext, text[:40], now)
        self._report_given_up(self.outbox.record(sent, [(p.verified.identity.public_key, p.member.label)
                                                        for p in self.peers.values()]))
        if announce:
            self._post(ChatMessage(self._me_member(), display_safe(text), own=True,
                                   sent_at=datetime.fromtimestamp(message.sent_at_ms / 1000), message_id=local_id))
        self._post_delivery(sent)

    def leave(self) -> None:
        """Say an authenticated goodbye to every peer, then ask the relay to close."""
        if self.phase == Phase.LEAVING or self.outcome is not None:
            return
        self._send_receipts(flush=True)     # what we received is not reported lost for want of an ACK
        self.files.leaving()
        goodbye = peer_wire.encode_app(Goodbye(self.next_msg_no))
        for peer in self.peers.values():
            self._send_app(peer, goodbye)
        self._send(protocol.encode_frame(FrameType.LEAVE))
        self.phase = Phase.LEAVING

    def tick(self) -> None:
        """Let timers fire: run timeouts, the join verdict, keep-alives, silence."""
        now = self._clock()
        if self.outcome is not None:
            return
        if now - self._heard_at > CLIENT_IDLE_TIMEOUT:
            self._end(LinkEnd.LOST, f"No answer from {self.server} for {CLIENT_IDLE_TIMEOUT:g} s: the connection "
                                    "is lost." if self.my_id else
                                    f"Something at {self.server} accepted the connection but has not answered as "
                                    f"a Secure X server for {CLIENT_IDLE_TIMEOUT:g} s: check the address and port "
                                    "the server printed.")
            return
        if self.phase in (Phase.WAITING, Phase.JOINING) and now - self._link_started > ENTRY_DEADLINE:
            # A relay that trickles a byte every few seconds never looks idle.
            self._end(LinkEnd.LOST, f"{self.server} did not let this client into the room within "
                                    f"{ENTRY_DEADLINE:g} s.")
            return
        for member_id, run in list(self._runs.items()):
            if now - run.started_at > RUN_TIMEOUT:
                self._on_step(member_id, run, run.handshake.abandon())
        for member_id, retry_at in list(self._retry_at.items()):
            if now >= retry_at:       # it refused for a while: ask again, within our rejections left
                del self._retry_at[member_id]
                self._retrying.add(member_id)
                self._to_try.append(member_id)
        if self._to_try:
            self._start_runs()
            self._check_join_done()
            if self.outcome is not None:
                return
        if self.phase == Phase.JOINING and now >= self._join_deadline:
            for member_id, result in self._targets.items():
                if result is None:
                    self._targets[member_id] = RunResult.SILENT
            self._give_verdict()
        if self.phase in (Phase.IN_ROOM, Phase.JOINING):
            for peer in self.peers.values():
                if now - peer.sent_at >= KEEPALIVE_SECONDS:
                    self._send_app(peer, peer_wire.encode_app(KeepAlive(
                        self.next_msg_no, int((now - self._view_changed_at) * 1000), tuple(sorted(self._view())))))
                if now - peer.heard_at > PEER_SILENCE and not peer.silence_reported:
                    peer.silence_reported = True
                    self._notice(f"Nothing heard from {peer.member.label} for {PEER_SILENCE:g} s although the "
                                 "server lists them: the server may be holding back their messages.",
                                 Severity.WARNING)
        self._announce_failures(now)
        self.files.tick()
        given_up, slow = self.outbox.expire(now)
        self._report_given_up(given_up)
        for message, name in slow:
            self._notice(f"Not yet delivered to {name} after {int(now - message.sent_at)} s: "
                         f"\"{display_safe(message.preview, keep_newlines=False)}\"", Severity.WARNING)
        if self.phase != Phase.WAITING and now - self._sent_at >= PING_SECONDS:
            self._send(protocol.encode_frame(FrameType.PING))

    # -- outputs ----------------------------------------------------------------------------

    def data_to_send(self, bulk_room: int | None = None) -> bytes:
        """Everything to send: control and chat first, then file chunks, of which only
        about ``bulk_room`` bytes (all, if None), so chat never queues behind a file."""
        return b"".join(self.data_parts(bulk_room))

    def data_parts(self, bulk_room: int | None = None) -> list[Bytes]:
        """``data_to_send`` as pieces to send one after another (a file chunk is one
        piece, not copied into a larger one)."""
        self._send_receipts()
        for keys, body in self.files.take_bulk():
            member_ids = [peer.member_id for peer in self.peers.values() if peer.verified.identity.public_key in keys]
            if member_ids:
                self._bulk_out.append((protocol.fanout_header(member_ids, len(body)), body))
        if self.files.throttled and len(self._bulk_out) < MAX_BULK_QUEUED // 2:
            self.files.throttled = False        # room again: what the windows allow can be sealed
            self.files.resume_sending()
        parts: list[Bytes] = [*self._out]
        self._out = []
        room = bulk_room
        while self._bulk_out and (room is None or room > 0):
            header, body = self._bulk_out.popleft()
            parts += (header, body)
            if room is not None:
                room -= len(header) + len(body)
        if parts:
            self._sent_at = self._clock()
        return parts

    @property
    def has_bulk(self) -> bool:
        """File chunks are waiting to be sent (the runner should not sleep long)."""
        return bool(self._bulk_out)

    # -- files (the commands return a message for the user, or None) ----------------------------

    def offer_file(self, path: Path) -> None:
        self.files.offer(path, [peer.verified.identity.public_key for peer in self.peers.values()])

    def accept_file(self, short: str, directory: Path | None = None) -> None:
        self._file_answer(self.files.accept(short, directory))

    def decline_file(self, short: str) -> None:
        self._file_answer(self.files.decline(short))

    def cancel_file(self, short: str) -> None:
        self._file_answer(self.files.cancel(short))

    def take_file_jobs(self) -> list[Job]:
        return self.files.take_jobs()

    def file_result(self, result: Result) -> None:
        self.files.on_result(result)

    def _file_answer(self, problem: str | None) -> None:
        if problem:
            self._notice(problem, Severity.WARNING)

    # -- the files' Port --------------------------------------------------------------------------

    def send_app(self, key: bytes, plaintext: bytes) -> bool:
        for peer in self.peers.values():
            if peer.verified.identity.public_key == key:
                self._send_app(peer, plaintext)
                return True
        return False

    def member(self, key: bytes) -> Member | None:
        for peer in self.peers.values():
            if peer.verified.identity.public_key == key:
                return peer.member
        return None

    def post(self, event: Event) -> None:
        self._post_in_room(event)     # an offer made again as we rejoin comes after "Joined"

    def bulk_queued(self) -> int:
        return len(self._bulk_out)

    def take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    @property
    def work_ahead(self) -> bool:
        """``prepare_ahead`` has something to do."""
        return any(peer.verified.channel.unprepared for peer in self.peers.values())

    def prepare_ahead(self) -> None:
        """Work that can be done before it is needed, for the runner to do once the
        link has been quiet for a moment: a channel's next ciphers, so that a text sent
        or received then costs only its encryption (``PairChannel.prepare``). One
        channel per call, so what arrives meanwhile waits for two set-ups at most,
        not a whole room's."""
        for peer in self.peers.values():
            if peer.verified.channel.unprepared:
                peer.verified.channel.prepare()
                return

    def next_deadline(self) -> float:
        """When ``tick`` should next run (monotonic clock)."""
        deadlines = [self._heard_at + CLIENT_IDLE_TIMEOUT]
        if self.phase != Phase.WAITING:       # what tick pings on (not before the relay has said hello)
            deadlines.append(self._sent_at + PING_SECONDS)
        if self.phase in (Phase.WAITING, Phase.JOINING):
            deadlines.append(self._link_started + ENTRY_DEADLINE)
        deadlines += [run.started_at + RUN_TIMEOUT for run in self._runs.values()]
        deadlines += self._retry_at.values()
        if self.phase == Phase.JOINING:
            deadlines.append(self._join_deadline)
        for peer in self.peers.values():
            deadlines.append(peer.sent_at + KEEPALIVE_SECONDS)
            if peer.unacknowledged and self.phase != Phase.JOINING:
                deadlines.append(peer.receipt_sent_at + RECEIPT_INTERVAL)
            if not peer.silence_reported:
                deadlines.append(peer.heard_at + PEER_SILENCE)
        for at in (self.guard.next_notice_at(), self.outbox.next_expiry(), self.files.next_deadline()):
            if at is not None:
                deadlines.append(at)
        return min(deadlines)

    @property
    def in_room(self) -> bool:
        return self.phase == Phase.IN_ROOM and self.outcome is None

    def members(self) -> tuple[Member, ...]:
        """Who is in our room: us first, then every verified member."""
        return (self._me_member(), *(peer.member for peer in self.peers.values()))

    # -- frames from the relay ----------------------------------------------------------------

    def _on_frame(self, frame: protocol.Frame) -> None:
        kind = frame.type
        if kind == FrameType.ROUTED:
            routed = protocol.routed_view(frame)
            self._on_routed(routed.member_id, routed.body)
        elif kind == FrameType.ROSTER:
            if not self.my_id:
                raise ProtocolError("ROSTER before WELCOME")
            self._on_roster(protocol.parse_roster(frame, self.capacity))
        elif kind == FrameType.WELCOME:
            self._on_welcome(protocol.parse_welcome(frame))
        elif kind == FrameType.CLOSE:
            self._on_close(protocol.parse_close(frame))
        elif kind != FrameType.PING:
            raise ProtocolError(f"unexpected {kind.name} frame")

    def _on_welcome(self, welcome: protocol.Welcome) -> None:
        if self.my_id:
            raise ProtocolError("a second WELCOME")
        if welcome.version != protocol.PROTOCOL_VERSION:
            older = welcome.version < protocol.PROTOCOL_VERSION
            self._end(LinkEnd.FATAL, f"The server at {self.server} speaks Secure X protocol version "
                                     f"{welcome.version}; this client speaks {protocol.PROTOCOL_VERSION}. "
                                     + ("Update the server: run server.py from Secure X 2." if older
                                        else "Update Secure X on this computer."),
                      RefusedError())
            return
        if not 1 <= welcome.capacity <= protocol.MAX_CLIENTS_LIMIT:
            raise ProtocolError(f"a room for {welcome.capacity} members")
        self.my_id, self.capacity = welcome.your_id, welcome.capacity
        self._send(protocol.encode_hello())
        self._post(Connected(self.server, self._me_member(), self.joined_before))

    def _on_roster(self, entries: list[protocol.RosterEntry]) -> None:
        roster = {entry.member_id: entry for entry in entries}
        if self.my_id not in roster:
            raise ProtocolError("the ROSTER does not list us")
        first = not self.roster
        gone = [member_id for member_id in self.roster if member_id not in roster]
        self.roster = roster
        for member_id in gone:
            self._on_gone(member_id)
        if first:
            self._begin_joining([member_id for member_id in roster if member_id != self.my_id])
        elif gone or self.phase != Phase.JOINING:
            self._post_members()

    def _on_close(self, reason: CloseReason | None) -> None:
        server = self.server
        if reason == CloseReason.GOODBYE and self.phase == Phase.LEAVING:
            self._end(LinkEnd.LEFT, "You left the room.")
        elif reason == CloseReason.SHUTDOWN:
            self._end(LinkEnd.SHUTDOWN, "The server shut down.")
        elif reason == CloseReason.FULL:
            self._end(LinkEnd.FATAL, f"The room at {server} is full. Try again when someone leaves.",
                      RoomFullError(f"The room at {server} is full. Try again when someone leaves."))
        elif reason == CloseReason.BUSY:
            self._end(LinkEnd.RETRY, f"The server at {server} is busy with other people joining.")
        elif reason == CloseReason.VERSION:
            self._end(LinkEnd.FATAL, f"The server at {server} speaks another version of the Secure X protocol. "
                                     "Update Secure X (client and server).", RefusedError())
        else:
            # The relay's own words are not shown: it could say anything.
            why = {CloseReason.TOO_SLOW: "this connection stopped reading",
                   CloseReason.IDLE: "it heard nothing from this client for too long",
                   CloseReason.HANDSHAKE_TIMEOUT: "joining took too long",
                   CloseReason.PROTOCOL: "it says this client broke the protocol",
                   CloseReason.GOODBYE: "it closed the connection"}.get(reason, "for a reason this version "
                                                                                   "does not know")
            self._end(LinkEnd.LOST, f"The server closed the connection: {why}.")

    # -- joining ---------------------------------------------------------------------------

    def _begin_joining(self, present: list[bytes]) -> None:
        self.phase = Phase.JOINING
        self._join_deadline = self._clock() + JOIN_TIMEOUT
        self._targets = {member_id: None for member_id in present}
        self._to_try = list(present)
        self._start_runs()
        self._check_join_done()

    def _start_runs(self) -> None:
        """Start runs with the members still to try (those present as we join, and those
        to ask again after a refusal), as far as our rejections left go: each run may end
        in one (a guess at our passphrase tested), so no more may be open than could still
        be rejected, however many members the relay lists. The rest wait for an open run
        to end; with none open and none left, they are not asked."""
        open_runs = sum(1 for run in self._runs.values()
                        if run.handshake.role == crypto_utils.ROLE_A and not run.handshake.confirmed)
        room = self.own_rejections.remaining(self._clock()) - open_runs
        while self._to_try and room > 0:
            member_id = self._to_try.pop(0)
            retry = member_id in self._retrying
            self._retrying.discard(member_id)
            if (member_id in self.roster and member_id not in self.peers and member_id not in self._runs
                    and (retry or self._targets.get(member_id, RunResult.GONE) is None)):
                self._start_run(member_id)
                room -= 1
                open_runs += 1
        if self._to_try and not open_runs:      # none left, and no open run can free any
            for member_id in self._to_try:
                if self._targets.get(member_id, RunResult.GONE) is None:
                    self._targets[member_id] = RunResult.UNTRIED
            self._to_try = []
            self._retrying.clear()

    def _start_run(self, member_id: bytes) -> None:
        handshake, body = PairHandshake.as_newcomer(self._w, self.me, self._message_state, self._attempt,
                                                    self._randbytes)
        self._runs[member_id] = Run(handshake, self._clock())
        self._route(member_id, body)

    def _check_join_done(self) -> None:
        if self.phase == Phase.JOINING and all(result is not None for result in self._targets.values()):
            self._give_verdict()

    def _give_verdict(self) -> None:
        now = self._clock()
        refused_for = max(1.0, max(self._retry_at.values(), default=0.0) - now)
        results = {member_id: result or RunResult.SILENT for member_id, result in self._targets.items()}
        verdict = join_verdict(results, {m for m, entry in self.roster.items() if entry.confirmed},
                               rejected_too_often=RunResult.UNTRIED in results.values(), refused_for=refused_for,
                               join_anyway=self.join_anyway, back=self.joined_before)
        if verdict.outcome == Outcome.WRONG_PASSPHRASE:
            self._end(LinkEnd.FATAL, verdict.message,
                      WrongPassphraseError(verdict.message, may_join_anyway=verdict.may_join_anyway))
            return
        if verdict.outcome == Outcome.REFUSED:
            self._end(LinkEnd.RETRY, verdict.message, retry_after=refused_for)
            return
        self.phase = Phase.IN_ROOM
        self.reached_room = True
        self._runs = {m: run for m, run in self._runs.items() if run.handshake.role == crypto_utils.ROLE_B}
        self._send_status()
        self._post(Joined(self.server, CIPHER_NAME, self._me_member(), verdict.verified, verdict.present,
                          self.joined_before))
        for text, severity in verdict.notices:
            self._notice(text, severity)
        if self.joined_before:
            now_present = {peer.verified.identity.public_key for peer in self.peers.values()}
            missing = [key for key in self._present_before if key not in now_present]
            self._reported_missing = set(missing)
            if missing:
                names = ", ".join(sorted(self._present_before[key] for key in missing))
                self._notice(f"Waiting for {names} to come back ({'was' if len(missing) == 1 else 'were'} here "
                             "before you were disconnected).")
        self.joined_before = True
        self._post_members()
        for typed in self.pending.take_all():    # typed while we were away
            self._send_now(typed.local_id, typed.text, announce=False, typed_at=typed.typed_at)
        self._release_held()

    # -- routed bodies -------------------------------------------------------------------------

    def _on_routed(self, member_id: bytes, body: bytes | memoryview) -> None:
        try:
            kind, payload = peer_wire.split_body(body)
        except ProtocolError:
            self._limited_notice("malformed", "Dropped a malformed message relayed by the server.")
            return
        if kind == BodyKind.RECORD:
            self._on_record(member_id, payload)
        elif kind == BodyKind.PAKE_A:
            self._on_pake_a(member_id, payload)
        elif kind == BodyKind.BULK:
            peer = self.peers.get(member_id)
            if peer is None:
                return
            try:
                chunk = peer_wire.parse_bulk(payload)
            except ProtocolError:
                self._limited_notice("bulk", f"Dropped a malformed file chunk from {peer.member.label}.")
                return
            self.files.on_bulk(peer.verified.identity.public_key, chunk)
        else:
            run = self._runs.get(member_id)
            if run is not None:
                self._on_step(member_id, run, run.handshake.receive(kind, payload))

    def _on_pake_a(self, member_id: bytes, payload: bytes) -> None:
        """A newcomer's first flight. We answer only connections the relay lists, one
        run per connection, and only within the guard's budget (failures recorded plus
        runs in flight): each answer lets the newcomer check one guess against it."""
        attempt = payload[:crypto_utils.SESSION_NONCE_BYTES]
        if attempt == self._attempt:      # evidence of a hostile relay, wherever it claims it came from
            self._limited_notice("reflection", "The server sent this client's own join message back to it; "
                                 "ignored (a reflection attack, or a broken server).", Severity.ALERT)
            return
        if member_id == self.my_id or member_id not in self.roster or member_id in self.peers:
            return
        if self.phase == Phase.JOINING and self.roster[member_id].confirmed:
            # A member in the room answers newcomers; it never starts a run with one. This
            # is the relay posing as one, to have us answer (each answer tests a guess).
            return
        existing = self._runs.get(member_id)
        if existing is not None:
            if existing.handshake.role == crypto_utils.ROLE_B or self.my_id < member_id:
                return   # a duplicate, or both sides started: the lower id's run goes on
            del self._runs[member_id]   # ours gives way; no guess was spent on it
            self._start_runs()          # a place for the next member to ask
        self._seen_attempts[attempt] = None
        while len(self._seen_attempts) > MAX_SEEN_ATTEMPTS:
            del self._seen_attempts[next(iter(self._seen_attempts))]
        in_flight = sum(1 for run in self._runs.values()
                        if run.handshake.role == crypto_utils.ROLE_B and not run.handshake.confirmed)
        wait = self.guard.refusal(self._clock(), in_flight)
        if wait:
            self._route(member_id, peer_wire.encode_refuse(RefuseReason.BACKOFF, int(wait * 1000)))
            return
        try:
            handshake, reply = PairHandshake.as_member(self._w, self.me, self._message_state, payload,
                                                       self._randbytes)
        except (ProtocolError, DecryptionError):
            return   # not a valid share: nothing was revealed, nothing to count
        self._runs[member_id] = Run(handshake, self._clock())
        self._route(member_id, reply)

    def _on_step(self, member_id: bytes, run: Run, step: Step) -> None:
        for body in step.send:
            self._route(member_id, body)
        if step.verified is not None:
            del self._runs[member_id]
            self._on_verified(member_id, step)
        elif step.failure is not None:
            del self._runs[member_id]
            self._on_failed(member_id, run, step)
        if self._to_try and self.outcome is None:
            self._start_runs()          # a run ended, or can no longer end in a rejection
            self._check_join_done()

    def _on_verified(self, member_id: bytes, step: Step) -> None:
        assert step.verified is not None
        verified = step.verified
        identity = verified.identity
        now = self._clock()
        # A connection verified afresh is no longer one to go back to for anyone.
        self._replaced = {new: old for new, old in self._replaced.items() if old.member_id != member_id}
        for old_id, old in list(self.peers.items()):
            if old.verified.identity.public_key == identity.public_key:
                # A fresh run with a fresh signature proves it is live: it reconnected
                # before the relay noticed its old connection had died. Move over quietly,
                # keeping the old one while the relay lists it (see _on_gone).
                del self.peers[old_id]
                self._present_before[identity.public_key] = old.member.label
                if old_id in self.roster:
                    self._replaced[member_id] = old
        name = identity.name
        peer = Peer(member_id, verified, Member(name, verified.safety_code, name), heard_at=now, sent_at=now)
        self.peers[member_id] = peer
        self._view_changed_at = now
        # Before anything else on the new channel: what it missed, in order.
        missed = self.outbox.member_back(identity.public_key, name)
        for plaintext in missed:
            self._send_app(peer, plaintext)
        if missed:
            self._send_app(peer, peer_wire.encode_app(CaughtUp(len(missed))))
        if member_id in self._replaced:
            # A second program of theirs, or theirs restarted before the relay noticed: which
            # one shows when one of the two connections goes (_on_gone).
            self.files.member_back(identity.public_key)
        else:
            self.files.member_back(identity.public_key, restarted=self._program_restarted(identity))
        self.files.resume_sending()
        self._relabel()
        self._check_known_code(peer)
        if member_id in self._targets:
            self._targets[member_id] = RunResult.VERIFIED
            self._check_join_done()
        else:
            if identity.public_key not in self._present_before:
                self._post_in_room(MemberJoined(peer.member))   # arrived as we joined: after "Joined"
            elif identity.public_key in self._reported_missing:
                self._notice(f"{peer.member.label} is back.")
            self._present_before.pop(identity.public_key, None)
            self._reported_missing.discard(identity.public_key)
            if self.phase != Phase.JOINING:     # joining: the verdict lists everyone, after "Joined"
                self._post_members()
        self._send_status()

    def _on_failed(self, member_id: bytes, run: Run, step: Step) -> None:
        failure, handshake = step.failure, run.handshake
        if handshake.role == crypto_utils.ROLE_A:
            if failure == Failure.REFUSED:
                wait = min(MAX_RETRY_SECONDS, max(1.0, step.retry_after_ms / 1000))
                self._retry_at[member_id] = self._clock() + wait
                if not self._refusal_noted:
                    self._refusal_noted = True
                    self._notice(f"A member present is refusing new members for {wait:.0f} s after failed "
                                 "passphrase attempts; it will be asked again then.", Severity.WARNING)
            elif failure == Failure.MISMATCH:
                # Whoever answered learnt whether its guess at our passphrase was right.
                self.own_rejections.record(self._clock())
            result = {Failure.MISMATCH: RunResult.MISMATCH, Failure.REFUSED: RunResult.REFUSED,
                      Failure.ABANDONED: RunResult.SILENT}.get(failure, RunResult.SILENT)
            if failure == Failure.REFLECTED:
                message = (f"You are already in this room: a member there proved your own identity key "
                           f"({self.me.name}). That is Secure X running as you on another computer, or someone "
                           "has a copy of your key. Close the other one, or join under another name.")
                self._end(LinkEnd.FATAL, message, RefusedError(message))
                return
            if member_id in self._targets and self._targets[member_id] is None:
                self._targets[member_id] = result
                self._check_join_done()
            return
        # We are B. Our PAKE_B carried cB, against which the newcomer could check its
        # guess: any run that ends before cA proved the passphrase is one guess spent,
        # however it ended (mismatch, silence, a refusal, garbage).
        if not handshake.confirmed:
            self._count_failure(FailedJoin(handshake.attempt, handshake.nonce))
            if not self.peers:
                self._notice("Someone tried to join with a different passphrase. If you expected someone, "
                             "check the passphrase together: one of you typed it wrong.", Severity.WARNING)
            report = peer_wire.encode_app(FailedJoin(handshake.attempt, handshake.nonce))
            for peer in self.peers.values():
                self._send_app(peer, report)
        if failure == Failure.REFLECTED:
            self._notice(f"Another Secure X with your own identity key ({self.me.name}) tried to join this room: "
                         "you on another computer, or someone with a copy of your key. It was not let in; "
                         "you are still in the room.", Severity.ALERT)

    def _count_failure(self, failure: FailedJoin) -> None:
        now = self._clock()
        if self.guard.record(failure.run, failure.attempt, now):
            self._announce_failures(now)

    def _announce_failures(self, now: float) -> None:
        text = self.guard.notice_due(now)
        if text:
            self._notice(text, Severity.WARNING)

    def _on_gone(self, member_id: bytes) -> None:
        """The relay no longer lists this connection."""
        run = self._runs.get(member_id)
        if run is not None:
            self._on_step(member_id, run, run.handshake.abandon())
        if self._targets.get(member_id) is None and member_id in self._targets:
            self._targets[member_id] = RunResult.GONE
            self._check_join_done()
        self._retry_at.pop(member_id, None)
        for new_id, old in list(self._replaced.items()):
            if old.member_id == member_id:     # the connection taken over from went: the newer is theirs
                del self._replaced[new_id]
                newer = self.peers.get(new_id)
                if newer is not None and self._program_restarted(newer.verified.identity):
                    self.files.member_back(newer.verified.identity.public_key, restarted=True)
        earlier = self._replaced.pop(member_id, None)
        peer = self.peers.pop(member_id, None)
        if peer is None:
            return
        self._view_changed_at = self._clock()
        if earlier is not None and not peer.goodbye and earlier.member_id not in self.peers:
            self._restore(earlier)
            return
        if peer.goodbye:
            given_up = self.outbox.member_left(peer.verified.identity.public_key)
            self._report_given_up([given_up] if given_up else [])
            self.files.member_left(peer.verified.identity.public_key)
        else:
            self.outbox.member_dropped(peer.verified.identity.public_key, self._clock())
            self.files.member_away(peer.verified.identity.public_key)
        self._post(MemberLeft(peer.member, dropped=not peer.goodbye))
        self._relabel()
        trusted = self.known_codes.trusted_code(peer.name)
        if peer.verified.safety_code == trusted and all(p.verified.safety_code != trusted
                                                        for p in self.peers.values()):
            # The one with the code we know has gone: those left with its name must not pass for it unwarned.
            for namesake in [p for p in self.peers.values() if name_key(p.name) == name_key(peer.name)]:
                self._check_known_code(namesake)
        self._send_status()

    def _program_restarted(self, identity: Identity) -> bool:
        """Note the run id ``identity`` verified with; whether it differs from the last
        one (its program started again and knows nothing of what was under way)."""
        earlier = self._program_runs.pop(identity.public_key, None)
        self._program_runs[identity.public_key] = identity.run_id
        while len(self._program_runs) > MAX_PROGRAM_RUNS:
            del self._program_runs[next(iter(self._program_runs))]
        return earlier not in (None, identity.run_id)

    def _two_sessions(self, replaced: Peer) -> bool:
        """Whether the connection that took over from ``replaced`` is another program
        (another run id), not the same one reconnected."""
        identity = replaced.verified.identity
        return any(peer.verified.identity.public_key == identity.public_key
                   and peer.verified.identity.run_id != identity.run_id for peer in self.peers.values())

    def _restore(self, earlier: Peer) -> None:
        """The connection that took over from ``earlier`` (same identity) went while the
        relay still lists ``earlier``: it was a second Secure X of that member, which
        gave up on meeting the first (or a reconnection that died again). The first is
        their connection again, quietly; what went to the other is sent again."""
        key = earlier.verified.identity.public_key
        self.peers[earlier.member_id] = earlier
        self._present_before.pop(key, None)
        for plaintext in self.outbox.member_back(key, earlier.member.name):
            self._send_app(earlier, plaintext)         # it drops the numbers it has
        self.files.member_restored(key)
        self._relabel()
        self._post_members()
        self._send_status()

    # -- the channel ---------------------------------------------------------------------------

    def _on_record(self, member_id: bytes, payload: bytes) -> None:
        peer = self.peers.get(member_id)
        # A connection another of the same identity took over from, still listed: what
        # it says is that member's (a message sent just before a reconnect, or the key
        # in two places at once), and its channel is as good as ever.
        replaced = None if peer is not None else next(
            (old for old in self._replaced.values() if old.member_id == member_id), None)
        peer = peer or replaced
        if peer is None:
            self._limited_notice("unverified", "Dropped an encrypted message from a connection that is not a "
                                               "verified member.")
            return
        try:
            message = peer_wire.parse_app(peer.verified.channel.open_record(payload))
        except DecryptionError:
            self._limited_notice(f"forged {peer.member_id.hex()}",
                                 f"Dropped a message claiming to be from {peer.member.label}: it failed "
                                 "authentication, or was replayed or reordered.")
            return
        except ProtocolError:
            self._limited_notice(f"malformed {peer.member_id.hex()}",
                                 f"Dropped a malformed message from {peer.member.label}.")
            return
        peer.heard_at = self._clock()
        peer.silence_reported = False
        if replaced is not None and self._two_sessions(replaced):
            self._limited_notice(f"two {replaced.verified.identity.public_key.hex()}",
                                 f"{replaced.member.label} is writing from two connections at once with the same "
                                 "identity key (a second computer with a copy of the key?). Both are shown; what "
                                 "you write goes to the newer one.")
        self._on_app(peer, message)

    def _on_app(self, peer: Peer, message: AppMessage) -> None:
        identity = peer.verified.identity
        log = self._received.get(identity.public_key, identity.run_id)
        if isinstance(message, Text):
            peer.unacknowledged.add(message.msg_no)    # a receipt even for a duplicate: its ACK was lost
            if log.has(message.msg_no):
                return   # delivered before: shown once
            skipped, late = log.add(message.msg_no, peer.expect_from)
            self._report_missing(peer, skipped)
            if message.msg_no >= peer.expect_from:     # a resent message carries the view of back then
                self._check_view(peer, message.view_age_ms, message.view)
            sent_at = datetime.fromtimestamp(min(message.sent_at_ms, 2**41) / 1000)
            self._post_in_room(ChatMessage(peer.member, display_safe(message.text), own=False, sent_at=sent_at,
                                           late=late, caught_up=message.msg_no < peer.expect_from))
        elif isinstance(message, (Goodbye, KeepAlive)):
            self._report_missing(peer, log.missing_until(message.next_msg_no, peer.expect_from))
            if isinstance(message, Goodbye):
                peer.goodbye = True
            else:
                self._check_view(peer, message.view_age_ms, message.view)
        elif isinstance(message, FailedJoin):
            # Counted only for an attempt we saw too (an honest newcomer tries every
            # member): a member cannot invent failures to keep newcomers out.
            if message.attempt in self._seen_attempts:
                self._count_failure(message)
        elif isinstance(message, Ack):
            if message.run_id == self.run_id:   # receipts for an earlier run of ours settle nothing now
                for sent in self.outbox.acknowledged(identity.public_key, message.ranges):
                    self._post_delivery(sent)
        elif isinstance(message, FileMessage):
            self.files.on_message(identity.public_key, message)
        elif isinstance(message, CaughtUp) and message.resent:
            self._post_in_room(Notice(f"Caught up: {message.resent} message{'s' if message.resent != 1 else ''} "
                                      f"from {peer.member.label} sent while you were away.", Severity.INFO))

    def _send_receipts(self, flush: bool = False) -> None:
        """One ACK per peer for everything received since its last, once RECEIPT_INTERVAL
        has passed since that one (at once if ``flush``). None while joining: what
        arrives then is held, not shown, and a receipt says it was shown (a session
        that never gets in, such as a member's second one, must not settle it)."""
        if self.phase == Phase.JOINING and not flush:
            return
        now = self._clock()
        for peer in self.peers.values():
            if peer.unacknowledged and (flush or now >= peer.receipt_sent_at + RECEIPT_INTERVAL):
                peer.receipt_sent_at = now
                numbers, peer.unacknowledged = sorted(peer.unacknowledged), set()
                ranges: list[tuple[int, int]] = []
                for n in numbers:
                    if ranges and n == ranges[-1][1] + 1:
                        ranges[-1] = (ranges[-1][0], n)
                    else:
                        ranges.append((n, n))
                for start in range(0, len(ranges), peer_wire.MAX_ACK_RANGES):
                    ack = Ack(peer.verified.identity.run_id, tuple(ranges[start:start + peer_wire.MAX_ACK_RANGES]))
                    self._send_app(peer, peer_wire.encode_app(ack))

    def _post_delivery(self, sent: Sent) -> None:
        self._post(DeliveryChanged(sent.local_id, sent.state.name.lower(), tuple(self.outbox.names(sent.delivered)),
                                   tuple(self.outbox.names(sent.waiting)), tuple(self.outbox.names(sent.given_up))))

    def _report_given_up(self, given_up: list[GivenUp | NoLongerKept]) -> None:
        for item in given_up:
            if isinstance(item, NoLongerKept):
                self._notice(f"Over {item.limit:,} of your messages are waiting for {item.name}'s receipts; the "
                             f"oldest are no longer kept to be sent again should {item.name}'s connection drop.")
                continue
            self._notice(f"{item.count} message{'s' if item.count != 1 else ''} of yours will not reach "
                         f"{item.name}: {item.why}.", Severity.WARNING)
            for sent in item.messages:
                self._post_delivery(sent)

    def _report_missing(self, peer: Peer, count: int) -> None:
        if count > 0:
            self._notice(f"{count} message{'s' if count != 1 else ''} from {peer.member.label} "
                         f"{'were' if count != 1 else 'was'} not received.", Severity.WARNING)

    def _check_view(self, peer: Peer, view_age_ms: int, view: tuple[bytes, ...]) -> None:
        now = self._clock()
        if view_age_ms < VIEW_SETTLE * 1000 or now - self._view_changed_at < VIEW_SETTLE:
            return   # one of the two views is still changing: joins take a moment to reach everyone
        theirs, mine = frozenset(view), frozenset(self._view())
        if theirs == mine or (theirs, mine) in peer.reported_views:
            return
        peer.reported_views.add((theirs, mine))
        names = {p.verified.tag: p.member.label for p in self.peers.values()}
        self._notice(f"{peer.member.label} sees a different set of members: "
                     f"{view_difference(peer.member.label, theirs, mine, names)}. The server may be showing "
                     "people different rooms; compare who you see out loud.", Severity.ALERT)

    # -- helpers ---------------------------------------------------------------------------------

    def _message_state(self) -> tuple[bytes, int]:
        return self.run_id, self.next_msg_no

    def _still_owed(self, public_key: bytes) -> bool:
        """A member here, or away and owed a catch-up: its received log must stay."""
        return public_key in self.outbox.recipients or any(
            peer.verified.identity.public_key == public_key for peer in self.peers.values())

    def _view(self) -> set[bytes]:
        return {self.me.tag} | {peer.verified.tag for peer in self.peers.values()}

    def _me_member(self) -> Member:
        return Member(self.me.name, self.me.safety_code, self.me.name, you=True)

    def _relabel(self) -> None:
        peers = list(self.peers.values())
        names = [(self.me.name, self.me.safety_code)] + [(p.name, p.verified.safety_code) for p in peers]
        for peer, label in zip(peers, labels(names, self.known_codes.unfamiliar)[1:], strict=True):
            if peer.member.label != label:
                peer.member = Member(peer.name, peer.verified.safety_code, label)

    def _check_known_code(self, peer: Peer) -> None:
        said = self.known_codes.check(peer, self.peers.values(), self.me.name, self.me.safety_code,
                                      self.me.public_key, joining=self.phase == Phase.JOINING)
        if said is not None:
            self._say(said)

    def trust_code(self, name: str) -> None:
        """The user compared safety codes with the member called ``name`` (see trust.py)."""
        self._say(self.known_codes.trust(name, self.peers.values(), self.me.name))
        self._relabel()          # trusted now: its label loses the code, if no namesake is here
        self._post_members()

    def _say(self, said: TrustNotice) -> None:
        if said.repeat_kind is not None:
            self._limited_notice(said.repeat_kind, said.text, said.severity)
        else:
            self._notice(said.text, said.severity)

    def _send_status(self) -> None:
        status = (self.phase == Phase.IN_ROOM, frozenset(self.peers))
        if status != self._status_sent:
            self._status_sent = status
            self._send(protocol.encode_status(status[0], sorted(status[1])))

    def _post_members(self) -> None:
        members = (self.members(), self.capacity)
        if members != self._members_posted:    # roster news about unverified connections changes nothing here
            self._members_posted = members
            self._post(MembersChanged(*members))

    def _send_app(self, peer: Peer, plaintext: bytes) -> None:
        peer.sent_at = self._clock()
        self._route(peer.member_id, peer.verified.channel.seal_record(plaintext))

    def _route(self, member_id: bytes, body: bytes) -> None:
        self._send(protocol.encode_route(member_id, body))

    def _send(self, frame: bytes) -> None:
        self._out.append(frame)
        self._sent_at = self._clock()

    def _post(self, event: Event) -> None:
        self._events.append(event)

    def _post_in_room(self, event: Event) -> None:
        """What members say: held while we are still joining (a member we verified early
        sends what we missed at once), so it comes after "Joined", as it reads."""
        if self.phase == Phase.JOINING:
            self._held.append(event)
        else:
            self._post(event)

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for event in held:
            self._post(event)

    def _notice(self, text: str, severity: Severity = Severity.INFO) -> None:
        self._post(Notice(text, severity))

    def _limited_notice(self, kind: str, text: str, severity: Severity = Severity.WARNING) -> None:
        """A warning about something anyone can send many of: shown at most every
        NOTICE_REPEAT_SECONDS per kind, with a count of those not shown."""
        now = self._clock()
        last, suppressed = self._notice_times.get(kind, (None, 0))
        if last is not None and now - last < NOTICE_REPEAT_SECONDS:
            self._notice_times[kind] = (last, suppressed + 1)
            return
        if len(self._notice_times) > 64:
            self._notice_times.clear()
        self._notice_times[kind] = (now, 0)
        more = f" ({suppressed} more like it since the last notice.)" if suppressed else ""
        self._notice(text + more, severity)

    def _end(self, end: LinkEnd, message: str, error: SecureXError | None = None, *,
             retry_after: float = 0.0) -> None:
        if self.outcome is None:
            self.outcome = (LinkOutcome.lost(message) if end == LinkEnd.LOST
                            else LinkOutcome(end, message, error, retry_after))


__all__ = ["LinkEnd", "LinkOutcome", "Phase", "RoomCore", "State"]
