"""Encrypted file transfer between members: offers, acceptance, chunk scheduling,
flow control and resume. Sans-IO.

A file is sealed once, chunk by chunk, with a fresh random key, and fanned out by
the relay to every member that accepted it (BULK bodies, one FANOUT per chunk).
The key, the size, the chunk size and the file's digest (RFC 6962's Merkle tree
hash over its chunks, SHA-256) travel in the offer over each member's own
channel, so the relay reads nothing and a member cannot alter a chunk unseen:
each chunk is authenticated under the key (its index, its file and
whether it is the last are bound in), only chunks from the offering member are
taken, and the receiver checks the whole file's digest before the file gets its
final name. Anything wrong: the partial file is deleted and both sides are told.

This module decides; ``file_worker.py`` does the disk and chunk-crypto work on
its own thread, asked through the ``Job`` values below (taken with ``take_jobs``)
and answered through ``on_result``. Sealed chunks to fan out are taken with
``take_bulk``. It talks to the rest of the client through the small ``Port``
interface (send to a member, look one up, post an event).

Flow control: at most WINDOW_CHUNKS are on their way to each receiver before it
says it has written them (FILE_PROGRESS), so a transfer never floods the relay's
queues ahead of chat, and a slow receiver slows only its own copy: each receiver
has its own position, and a chunk is sealed once and sent to every receiver that
is at it. A receiver that was cut off sends FILE_ACCEPT with its position when it
is back (or when a chunk is missing), and the sender carries on from there.

Every member is hostile here, both ways. A sender honours a receiver's request to
go back only after a reconnect, or on a live link at most every RESUME_SECONDS,
and never queues more than MAX_BULK_QUEUED chunks for its socket, so a receiver
cannot make it buffer without bound. A receiver takes only chunks within the
window it allowed and of exactly the length the offer implies, so a sender cannot
make it buffer or write more than it offered; and it keeps at most
MAX_OPEN_PER_MEMBER transfers open per member.
"""

from __future__ import annotations

import enum
import math
import os
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from crypto_utils import FILE_ID_BYTES, KEY_BYTES, TAG_BYTES, Bytes, RandBytes
from securex.events import Event, FileFinished, FileOffered, FileProgress, Member, Notice
from securex.session import peer_wire
from securex.session.peer_wire import (Bulk, CancelReason, FileAccept, FileCancel, FileDecline, FileDone,
                                       FileMessage, FileOffer)
from securex.text import human_size, safe_file_name

CHUNK_BYTES = 512 * 1024          # per chunk: one GCM set-up, one frame, one hand-off to the worker
MIN_CHUNK_BYTES, MAX_CHUNK_BYTES = 4 * 1024, 768 * 1024
WINDOW_CHUNKS = 8                  # 4 MiB on its way to one receiver, at most (the relay buffers 8)
PROGRESS_EVERY = 2                 # chunks between FILE_PROGRESS
DEFAULT_MAX_FILE_BYTES = 4 * 10**9
LAST_WORD_SECONDS = 15 * 60      # a transfer's end is said again to a member back within this
PREPARING_NOTE_BYTES = 100 * 10**6   # a file this large takes a noticeable while to hash before its offer
PROGRESS_EVENT_SECONDS = 0.25      # progress reaches the user at most this often per transfer and member
RATE_SECONDS = 3.0                 # the speed shown is over about the last this many seconds
QUIET_SECONDS = 3.0                # nothing more for this long: the progress shown says it is waiting
SEALED_CACHE = 16                  # sealed chunks kept, so receivers up to two windows apart share them
MAX_BULK_QUEUED = 2 * WINDOW_CHUNKS  # sealed chunks waiting for the socket, for all receivers together
RESUME_SECONDS = 1.0               # a receiver on a live link may ask to go back at most this often,
MAX_RESUME_DOUBLINGS = 6           # twice as long after each that brought no progress, up to 64 s
ASK_AGAIN_SECONDS = 2 * RESUME_SECONDS   # a receiver still missing what it asked for asks again
MAX_OPEN_PER_MEMBER = 8            # transfers from one member not finished yet; more are refused
MAX_TRANSFERS_KEPT = 64            # finished transfers remembered (for their ids); older ones are forgotten
STALLED_SECONDS = 10 * 60.0        # a transfer with nothing arriving for this long is given up
# A copy whose receiver wrote nothing more for this long is given up by the sender: a
# minute later than the receiver's own stall, so a live receiver says why first.
SENDER_STALLED_SECONDS = STALLED_SECONDS + 60.0


def short_id(file_id: bytes) -> str:
    """How people name a transfer: /accept 3f2a9c1b."""
    return file_id.hex()[:8]


# -- work for the file worker -------------------------------------------------------------------

@dataclass(frozen=True)
class HashSource:
    file_id: bytes
    path: Path
    chunk_size: int          # the digest has a leaf per chunk
    max_size: int            # larger: not hashed (it will be refused), its size answered at once


@dataclass(frozen=True)
class ReadChunk:
    file_id: bytes
    index: int
    final: bool
    chunk_size: int
    key: bytes = field(repr=False)


@dataclass(frozen=True)
class OpenTarget:
    file_id: bytes
    directory: Path
    name: str
    size: int          # as offered: refused at once if the folder's disk has not that much free...
    # ...when a person accepted it. Not for --accept-files: its answers would tell any member
    # whether a file of its choosing fits, offer after offer (the disk filling as it is
    # written is the most they learn then, at the cost of sending that much).
    check_room: bool = True


@dataclass(frozen=True)
class WriteChunk:
    file_id: bytes
    chunk: Bulk
    key: bytes = field(repr=False)


@dataclass(frozen=True)
class FinishTarget:
    file_id: bytes
    digest: bytes
    size: int
    chunks: int


@dataclass(frozen=True)
class Discard:
    file_id: bytes


Job = HashSource | ReadChunk | OpenTarget | WriteChunk | FinishTarget | Discard


# -- what the worker answers ---------------------------------------------------------------------

@dataclass(frozen=True)
class Hashed:
    file_id: bytes
    size: int
    digest: bytes


@dataclass(frozen=True)
class ChunkRead:
    file_id: bytes
    index: int
    body: Bytes        # the BULK body, sealed (a read-only view)


@dataclass(frozen=True)
class Opened:
    file_id: bytes
    partial: Path


@dataclass(frozen=True)
class Written:
    file_id: bytes
    index: int


@dataclass(frozen=True)
class Saved:
    file_id: bytes
    path: Path


@dataclass(frozen=True)
class Failed:
    file_id: bytes
    reason: CancelReason
    message: str
    can_retry: bool = False      # opening a target only: the offer can be accepted again once put right


Result = Hashed | ChunkRead | Opened | Written | Saved | Failed


class Port(Protocol):
    """What the transfers need from the client core."""

    def send_app(self, key: bytes, plaintext: bytes) -> bool: ...   # False: that member is not here
    def member(self, key: bytes) -> Member | None: ...
    def post(self, event: Event) -> None: ...
    def bulk_queued(self) -> int: ...                                 # sealed chunks not yet on the socket


# -- the transfers ----------------------------------------------------------------------------

class Stage(enum.Enum):
    PREPARING = "hashing the file before offering it"
    OFFERED = "offered"
    OPENING = "accepted; opening the file to write"
    MOVING = "chunks on their way"
    CHECKING = "all chunks written; checking the whole file"
    DONE = "done"
    DECLINED = "declined"
    CANCELLED = "cancelled or failed"


class RecentRate:
    """Bytes a second over about the last RATE_SECONDS: a late answer to the offer or a
    pause for a reconnect does not drag the speed (and the time left) shown after it."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()     # (when, bytes done), oldest first

    def update(self, now: float, done: int) -> float:
        if self._samples and done < self._samples[-1][1]:
            self._samples.clear()                            # started over (a restarted receiver)
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_SECONDS:
            self._samples.popleft()
        then, done_then = self._samples[0]
        return (done - done_then) / (now - then) if now > then else 0.0


@dataclass
class Receiver:
    """One member we send a file to."""
    key: bytes
    name: str
    stage: Stage = Stage.OFFERED
    next_to_send: int = 0
    written: int = 0                  # chunks it says it has written
    reported_at: float = 0.0
    # After a reconnect nothing is sent until it says where to go on from: what was in
    # flight when the connection died may or may not have arrived.
    awaiting_resume: bool = False
    resumed_at: float = float("-inf")   # when a live-link resume was last honoured
    resumes_without_progress: int = 0   # live-link resumes honoured since it last wrote more
    written_at_resume: int = 0
    progress_at: float = 0.0            # when it accepted, or last said it had written more
    speed: RecentRate = field(default_factory=RecentRate)
    quiet_shown: bool = False           # the user was told it has gone quiet (or away)
    last_word: tuple[FileMessage, float] | None = None   # how it ended for us, and when: said again on its return


@dataclass
class Outgoing:
    file_id: bytes
    name: str
    path: Path
    key: bytes = field(repr=False)
    size: int = 0
    digest: bytes = b""
    chunk_size: int = CHUNK_BYTES
    stage: Stage = Stage.PREPARING
    receivers: dict[bytes, Receiver] = field(default_factory=dict)
    reading: set[int] = field(default_factory=set)
    sealed: OrderedDict[int, Bytes] = field(default_factory=OrderedDict)

    @property
    def chunks(self) -> int:
        return max(1, math.ceil(self.size / self.chunk_size))

    def bytes_written(self, receiver: Receiver) -> int:
        """How much of it ``receiver`` says it has written."""
        return min(self.size, receiver.written * self.chunk_size)


@dataclass
class Incoming:
    file_id: bytes
    offer: FileOffer
    sender: bytes                     # the offering member's identity key
    sender_name: str
    name: str                         # sanitised
    stage: Stage = Stage.OFFERED
    next_expected: int = 0            # chunks handed to the worker
    written: int = 0
    resend_asked_at: int | None = None   # we asked the sender to go on from here
    resend_asked_time: float = 0.0       # when (asked again while nothing comes: it may have been too soon)
    allowed: int = 0                  # the sender may send chunks below allowed + WINDOW_CHUNKS
    last_activity: float = 0.0
    partial: Path | None = None
    directory: Path | None = None
    reported_at: float = 0.0
    speed: RecentRate = field(default_factory=RecentRate)
    quiet_shown: bool = False         # the user was told it has gone quiet (or away)
    offered_by: Member | None = None  # the sender as it was when it offered (it may be away since)
    last_word: tuple[FileMessage, float] | None = None   # how it ended for us, and when: said again on its return

    @property
    def chunks(self) -> int:
        return max(1, math.ceil(self.offer.size / self.offer.chunk_size))

    @property
    def bytes_written(self) -> int:
        return min(self.offer.size, self.written * self.offer.chunk_size)


_OPEN = (Stage.PREPARING, Stage.OFFERED, Stage.OPENING, Stage.MOVING, Stage.CHECKING)


class FileTransfers:
    def __init__(self, port: Port, clock: Callable[[], float], *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                 auto_accept: Path | None = None, downloads: Path | None = None,
                 randbytes: RandBytes = secrets.token_bytes) -> None:
        self._port = port
        self._clock = clock
        self.max_file_bytes = max_file_bytes
        self.auto_accept = auto_accept
        self.downloads = downloads
        self._randbytes = randbytes
        self.outgoing: dict[bytes, Outgoing] = {}
        self.incoming: dict[bytes, Incoming] = {}
        self._jobs: list[Job] = []
        self._bulk: list[tuple[list[bytes], Bytes]] = []     # (receiver keys, BULK body) to fan out
        self.throttled = False          # chunks are due but the socket's queue is full: call resume_sending

    # -- the user's commands --------------------------------------------------------------------

    def offer(self, path: Path, present: list[bytes]) -> str | None:
        """Offer a file to the members present; returns its short id, or None (with an
        event) when there is nobody to offer it to."""
        if not present:
            self._port.post(FileFinished("", path.name, "out", "", False, None, nobody_to_receive(path.name)))
            return None
        file_id = self._randbytes(FILE_ID_BYTES)
        while self._short_id_taken(short_id(file_id)):     # people name transfers by the short id
            file_id = self._randbytes(FILE_ID_BYTES)
        transfer = Outgoing(file_id, path.name, path, self._randbytes(KEY_BYTES))
        for key in present:
            member = self._port.member(key)
            transfer.receivers[key] = Receiver(key, member.label if member else "a member")
        self.outgoing[file_id] = transfer
        self._jobs.append(HashSource(file_id, path, transfer.chunk_size, self.max_file_bytes))
        return short_id(file_id)

    def accept(self, short: str, directory: Path | None = None, *, automatic: bool = False) -> str | None:
        """Accept an offer; returns an error to show, or None. ``automatic``: by
        --accept-files, with nobody to weigh the free space (see OpenTarget.check_room)."""
        transfer = self._find(self.incoming, short)
        if transfer is None or transfer.stage != Stage.OFFERED:
            return f"No file offer {short} is waiting for an answer."
        target = directory or self.downloads
        if target is None:
            return "No download folder is set."
        transfer.stage, transfer.directory = Stage.OPENING, target
        self._jobs.append(OpenTarget(transfer.file_id, target, transfer.name, transfer.offer.size,
                                     check_room=not automatic))
        return None

    def decline(self, short: str) -> str | None:
        transfer = self._find(self.incoming, short)
        if transfer is None or transfer.stage != Stage.OFFERED:
            return f"No file offer {short} is waiting for an answer."
        transfer.stage = Stage.DECLINED
        self._last_word(transfer, transfer.sender, FileDecline(transfer.file_id))
        self._finished_in(transfer, False, f"Declined {transfer.name} from {transfer.sender_name}.", by_choice=True)
        return None

    def cancel(self, short: str) -> str | None:
        """Cancel a transfer either way (the sender's: for every receiver)."""
        outgoing = self._find(self.outgoing, short)
        if outgoing is not None and outgoing.stage not in (Stage.DONE, Stage.CANCELLED):
            for receiver in outgoing.receivers.values():
                if receiver.stage not in (Stage.DONE, Stage.DECLINED, Stage.CANCELLED):
                    receiver.stage = Stage.CANCELLED
                    self._last_word(receiver, receiver.key, FileCancel(outgoing.file_id, CancelReason.BY_USER))
            self._close_outgoing(outgoing, Stage.CANCELLED)
            self._port.post(FileFinished(short, outgoing.name, "out", "", False, None,
                                         f"Cancelled sending {outgoing.name}.", by_choice=True))
            return None
        incoming = self._find(self.incoming, short)
        if incoming is not None and incoming.stage in (Stage.OFFERED, Stage.OPENING, Stage.MOVING):
            self._stop_incoming(incoming, CancelReason.BY_USER, f"Cancelled receiving {incoming.name}.",
                                by_choice=True)
            return None
        return f"No transfer {short} is under way."

    # -- messages from members ---------------------------------------------------------------------

    def on_message(self, sender: bytes, message: FileMessage) -> None:
        if isinstance(message, FileOffer):
            self._on_offer(sender, message)
            return
        outgoing = self.outgoing.get(message.file_id)
        incoming = self.incoming.get(message.file_id)
        receiver = outgoing.receivers.get(sender) if outgoing else None
        if receiver is not None and outgoing is not None:
            self._on_receiver_message(outgoing, receiver, message)
        elif (incoming is not None and incoming.sender == sender and isinstance(message, FileCancel)
              and incoming.stage in (Stage.OFFERED, Stage.OPENING, Stage.MOVING)):   # not once it is all here
            chosen = message.reason == CancelReason.BY_USER
            if incoming.stage == Stage.OFFERED and chosen:
                self._stop_incoming(incoming, None, f"{incoming.sender_name} withdrew the offer of {incoming.name}.",
                                    by_choice=True)
                return
            why = {CancelReason.BY_USER: "the sender cancelled",
                   CancelReason.STALLED: f"the sender gave up: nothing more reached you for "
                                         f"{SENDER_STALLED_SECONDS / 60:g} minutes"}.get(
                message.reason, "the sender could no longer read the file")
            self._stop_incoming(incoming, None, f"Receiving {incoming.name} from {incoming.sender_name} stopped: "
                                                f"{why}.", by_choice=chosen)

    def _on_offer(self, sender: bytes, offer: FileOffer) -> None:
        member = self._port.member(sender)
        known = self.incoming.get(offer.file_id)
        if member is not None and known is not None and known.sender == sender:
            self._answer_again(known)
        if member is None or offer.file_id in self.incoming or offer.file_id in self.outgoing:
            return
        name = safe_file_name(offer.name)
        open_from_sender = sum(1 for t in self.incoming.values() if t.sender == sender and t.stage in _OPEN)
        clash = self._short_id_taken(short_id(offer.file_id))
        self._forget_finished(self.incoming)
        transfer = Incoming(offer.file_id, offer, sender, member.label, name, last_activity=self._clock(),
                            offered_by=member)
        if not clash:     # a clashing one is not kept: it would make the other's id ambiguous
            self.incoming[offer.file_id] = transfer
        if clash or open_from_sender >= MAX_OPEN_PER_MEMBER:
            # A clashing id would make /accept, /cancel and the transfer's lines ambiguous;
            # a member with offers piling up gets no more answered.
            self._refuse(transfer, CancelReason.TOO_MANY, f"Refused {name} from {member.label}: "
                         + ("its id clashes with another transfer." if clash else
                            f"{MAX_OPEN_PER_MEMBER} of their offers are still open."))
            return
        if not MIN_CHUNK_BYTES <= offer.chunk_size <= MAX_CHUNK_BYTES or len(offer.key) != KEY_BYTES:
            self._refuse(transfer, CancelReason.VERIFICATION, f"Refused a malformed file offer from {member.label}.")
            return
        if offer.size > self.max_file_bytes:
            self._refuse(transfer, CancelReason.TOO_LARGE, f"Refused {name} from {member.label}: it is "
                         f"{human_size(offer.size)}, over your limit of {human_size(self.max_file_bytes)}.")
            return
        self._port.post(FileOffered(short_id(offer.file_id), name, offer.size, member, accepting_into=self.auto_accept))
        if self.auto_accept is not None:
            self.accept(short_id(offer.file_id), self.auto_accept, automatic=True)

    def _on_receiver_message(self, outgoing: Outgoing, receiver: Receiver, message: FileMessage) -> None:
        if receiver.stage in (Stage.DONE, Stage.DECLINED, Stage.CANCELLED) or outgoing.stage == Stage.CANCELLED:
            return
        if isinstance(message, FileAccept):
            if not self._may_resume(outgoing, receiver, message.next_chunk):
                return
            if receiver.stage == Stage.OFFERED:
                receiver.progress_at = self._clock()
            receiver.stage = Stage.MOVING
            receiver.awaiting_resume = False
            receiver.next_to_send = receiver.written = message.next_chunk
            self._schedule(outgoing)
        elif isinstance(message, peer_wire.FileProgress):
            if receiver.written <= message.next_chunk <= receiver.next_to_send:
                if message.next_chunk > receiver.written:
                    receiver.progress_at = self._clock()
                receiver.written = message.next_chunk
                self._report_out(outgoing, receiver)
                self._schedule(outgoing)
        elif isinstance(message, FileDecline):
            receiver.stage = Stage.DECLINED
            self._port.post(FileFinished(short_id(outgoing.file_id), outgoing.name, "out", receiver.name, False,
                                         None, f"{receiver.name} declined {outgoing.name}.", by_choice=True))
        elif isinstance(message, FileDone):
            if receiver.written >= outgoing.chunks or receiver.next_to_send >= outgoing.chunks:
                receiver.stage = Stage.DONE
                receiver.written = outgoing.chunks
                self._report_out(outgoing, receiver, force=True)
                self._port.post(FileFinished(short_id(outgoing.file_id), outgoing.name, "out", receiver.name,
                                             True, None, f"Delivered {outgoing.name} to {receiver.name} "
                                                         "(its SHA-256 checked on arrival)."))
        elif isinstance(message, FileCancel):
            receiver.stage = Stage.CANCELLED
            why = {CancelReason.BY_USER: "they cancelled", CancelReason.VERIFICATION: "it failed verification there",
                   CancelReason.WRITE_FAILED: "they could not save it",
                   CancelReason.NO_ROOM: "their disk does not have room for it",
                   CancelReason.TOO_LARGE: "it is over their size limit",
                   CancelReason.TOO_MANY: "they have too many offers open",
                   CancelReason.STALLED: f"nothing reached them for {STALLED_SECONDS / 60:g} minutes"
                   }.get(message.reason, "it stopped")
            self._port.post(FileFinished(short_id(outgoing.file_id), outgoing.name, "out", receiver.name, False,
                                         None, f"{outgoing.name} was not delivered to {receiver.name}: {why}.",
                                         by_choice=message.reason == CancelReason.BY_USER))
        self._settle(outgoing)

    def _may_resume(self, outgoing: Outgoing, receiver: Receiver, next_chunk: int) -> bool:
        """Whether a receiver's FILE_ACCEPT may set where its copy goes on from. The
        first accept, and the first after a reconnect, may; on a live link (a chunk went
        missing) only forward of what it reported written and not too often: each one
        lets a whole window go out again, so one that brought no progress doubles the wait
        for the next (a receiver asking for the same window forever gets a trickle)."""
        if next_chunk > outgoing.chunks:
            return False
        if receiver.stage == Stage.OFFERED:
            return True
        if receiver.awaiting_resume:
            return next_chunk >= receiver.written
        if receiver.written > receiver.written_at_resume:
            receiver.resumes_without_progress = 0
        wait = RESUME_SECONDS * 2 ** min(receiver.resumes_without_progress, MAX_RESUME_DOUBLINGS)
        now = self._clock()
        if not receiver.written <= next_chunk <= receiver.next_to_send or now - receiver.resumed_at < wait:
            return False
        receiver.resumed_at = now
        receiver.resumes_without_progress += 1
        receiver.written_at_resume = receiver.written
        return True

    def on_bulk(self, sender: bytes, chunk: Bulk) -> None:
        """A chunk the relay fanned out, from the member ``sender`` (identity key)."""
        transfer = self.incoming.get(chunk.file_id)
        if transfer is None or transfer.sender != sender or transfer.stage != Stage.MOVING:
            return     # not ours, not from the member who offered it, or no longer wanted
        transfer.last_activity = self._clock()
        if chunk.index < transfer.next_expected:
            return     # a resend overlapping what we have: already handled
        if chunk.index >= transfer.allowed + WINDOW_CHUNKS:
            # Beyond the window we allowed: a sender that ignores it would have us queue
            # chunks without bound.
            self._stop_incoming(transfer, CancelReason.VERIFICATION,
                                f"Receiving {transfer.name} from {transfer.sender_name} stopped: the sender did "
                                "not keep to the agreed pace; the partial file was deleted.")
            return
        if chunk.index > transfer.next_expected:
            # One went missing on the way: ask the sender to go on from where we are, once;
            # the rest of what was already in flight is just as stale and says nothing new.
            if transfer.resend_asked_at != transfer.next_expected:
                self._ask_to_resume(transfer)
            return
        expected = min(transfer.offer.chunk_size, transfer.offer.size - chunk.index * transfer.offer.chunk_size)
        if (chunk.index >= transfer.chunks or chunk.final != (chunk.index == transfer.chunks - 1)
                or len(chunk.sealed) != max(0, expected) + TAG_BYTES):
            self._stop_incoming(transfer, CancelReason.VERIFICATION,
                                f"Receiving {transfer.name} from {transfer.sender_name} failed verification "
                                "(a chunk out of place or of the wrong size); the partial file was deleted.")
            return
        transfer.next_expected += 1
        self._jobs.append(WriteChunk(transfer.file_id, chunk, transfer.offer.key))

    # -- members coming back ------------------------------------------------------------------------

    def member_back(self, key: bytes, *, restarted: bool = False) -> None:
        """A member verified again after its (or our) connection dropped: transfers we
        receive from it resume where we are; those to it wait for it to say where it is.
        ``restarted``: it is a new run of Secure X, which knows nothing of them."""
        if restarted:
            self._member_restarted(key)
            return
        self._say_again(key)
        self._resume_from(key)
        for receiver, outgoing in self._sending_to(key):
            if receiver.stage == Stage.MOVING:
                receiver.awaiting_resume = True
            elif receiver.stage == Stage.OFFERED:
                # Offered but not answered: a client that restarted has forgotten the offer
                # (one that only reconnected ignores an offer it already holds).
                self._send(key, self._offer(outgoing))

    def _member_restarted(self, key: bytes) -> None:
        """What it was sending us is gone with its old run; what we were sending it is
        offered to it again, from the start (its partial file went with its old run)."""
        for transfer in list(self.incoming.values()):
            if transfer.sender == key and transfer.stage in (Stage.OFFERED, Stage.OPENING, Stage.MOVING):
                self._stop_incoming(transfer, None, f"{transfer.sender_name}'s Secure X restarted, so "
                                                    f"{transfer.name} (id {short_id(transfer.file_id)}) will not "
                                                    "come: ask them to send it again.")   # two may share a name
        for receiver, outgoing in self._sending_to(key):
            if receiver.stage in (Stage.OFFERED, Stage.MOVING):
                if receiver.stage == Stage.MOVING:
                    self._port.post(Notice(f"{receiver.name}'s Secure X restarted while receiving {outgoing.name}:"
                                           " it is offered to them again."))
                receiver.stage, receiver.next_to_send, receiver.written = Stage.OFFERED, 0, 0
                receiver.awaiting_resume = False
                self._send(key, self._offer(outgoing))
                self._progress_out(outgoing, receiver, 0.0, "offered")    # no longer "paused at 60%"

    def member_restored(self, key: bytes) -> None:
        """A member's earlier connection is its connection again (see RoomCore._restore):
        what went to the other one meanwhile is sent again from what it last confirmed,
        and transfers it sends us go on from where we are."""
        self._resume_from(key)
        for receiver, outgoing in self._sending_to(key):
            if receiver.stage == Stage.MOVING:
                receiver.awaiting_resume = False
                receiver.next_to_send = receiver.written
                self._schedule(outgoing)

    def _resume_from(self, key: bytes) -> None:
        """Ask for each transfer the member ``key`` is sending us to go on from where we are."""
        for transfer in self.incoming.values():
            if transfer.sender == key and transfer.stage == Stage.MOVING:
                self._ask_to_resume(transfer)

    def _sending_to(self, key: bytes) -> list[tuple[Receiver, Outgoing]]:
        """The transfers we send the member ``key``, with its place in each: only those
        offered and still open (one being hashed is offered, with size and digest, when
        that is done; one that ended, or was never offered, is nobody's business)."""
        return [(outgoing.receivers[key], outgoing) for outgoing in self.outgoing.values()
                if key in outgoing.receivers and outgoing.stage == Stage.OFFERED]

    def _ask_to_resume(self, transfer: Incoming) -> None:
        transfer.resend_asked_at = transfer.next_expected
        transfer.resend_asked_time = self._clock()
        transfer.allowed = transfer.next_expected
        self._send(transfer.sender, FileAccept(transfer.file_id, transfer.next_expected))

    def member_left(self, key: bytes) -> None:
        """It said goodbye: what it was sending us or we were sending it stops."""
        for transfer in list(self.incoming.values()):
            if transfer.sender == key and transfer.stage in (Stage.OFFERED, Stage.OPENING, Stage.MOVING):
                # An offer never answered was not being received: it is withdrawn, not stopped.
                what = (f"The offer of {transfer.name} was withdrawn" if transfer.stage == Stage.OFFERED
                        else f"Receiving {transfer.name} stopped")
                self._stop_incoming(transfer, None, f"{what}: {transfer.sender_name} left.")
        for outgoing in self.outgoing.values():
            receiver = outgoing.receivers.get(key)
            if receiver is not None and receiver.stage in (Stage.OFFERED, Stage.MOVING):
                receiver.stage = Stage.CANCELLED
                self._port.post(FileFinished(short_id(outgoing.file_id), outgoing.name, "out", receiver.name, False,
                                             None, f"{outgoing.name} was not delivered to {receiver.name}: "
                                                   "they left."))
                self._settle(outgoing)

    def member_away(self, key: bytes) -> None:
        """Its connection dropped: transfers with it wait for it to come back (and go on
        from where they were); the progress shown says so instead of a frozen figure."""
        for transfer in self.incoming.values():
            if transfer.sender == key and transfer.stage == Stage.MOVING:
                transfer.quiet_shown = True
                self._progress_in(transfer, 0.0, "paused")
        for receiver, outgoing in self._sending_to(key):
            if receiver.stage == Stage.MOVING:
                receiver.quiet_shown = True
                self._progress_out(outgoing, receiver, 0.0, "paused")

    def leaving(self) -> None:
        """We are leaving the room: transfers under way stop, and the user is told
        which (the others hear it from our goodbye)."""
        for transfer in list(self.incoming.values()):
            if transfer.stage in (Stage.OPENING, Stage.MOVING):
                self._stop_incoming(transfer, None, f"Receiving {transfer.name} from {transfer.sender_name} "
                                                    "stopped: you left; the partial file was deleted.", by_choice=True)
        for outgoing in list(self.outgoing.values()):
            if outgoing.stage not in (Stage.PREPARING, Stage.OFFERED):
                continue
            receiving = [r.name for r in outgoing.receivers.values() if r.stage == Stage.MOVING]
            unanswered = [r.name for r in outgoing.receivers.values() if r.stage == Stage.OFFERED]
            self._close_outgoing(outgoing, Stage.CANCELLED)
            if not receiving and not unanswered:
                continue
            reasons = []
            if receiving:
                reasons.append(f"you left before {', '.join(receiving)} had it")
            if unanswered:
                reasons.append(f"{', '.join(unanswered)} had not answered the offer")
            what = f"Sending {outgoing.name} stopped" if receiving else f"The offer of {outgoing.name} was withdrawn"
            self._port.post(FileFinished(short_id(outgoing.file_id), outgoing.name, "out", "", False, None,
                                         f"{what}: {'; '.join(reasons)}.", by_choice=True))

    def resume_sending(self) -> None:
        """After any membership change: send what the windows allow to members present."""
        for outgoing in self.outgoing.values():
            self._schedule(outgoing)

    # -- the worker's answers ---------------------------------------------------------------------

    def on_result(self, result: Result) -> None:
        file_id = result.file_id
        if isinstance(result, Failed):
            self._on_failed(result)
        elif isinstance(result, Hashed):
            self._on_hashed(result)
        elif isinstance(result, ChunkRead):
            outgoing = self.outgoing.get(file_id)
            if outgoing is not None:
                outgoing.reading.discard(result.index)
                outgoing.sealed[result.index] = result.body
                while len(outgoing.sealed) > SEALED_CACHE:
                    outgoing.sealed.popitem(last=False)
                self._schedule(outgoing)
        elif isinstance(result, Opened):
            incoming = self.incoming.get(file_id)
            if incoming is not None and incoming.stage == Stage.OPENING:
                incoming.stage, incoming.partial = Stage.MOVING, result.partial
                incoming.last_activity = self._clock()
                self._send(incoming.sender, FileAccept(file_id, 0))
                self._report_in(incoming, force=True)
            elif incoming is not None:
                self._jobs.append(Discard(file_id))     # cancelled meanwhile
        elif isinstance(result, Written):
            incoming = self.incoming.get(file_id)
            if incoming is None or incoming.stage != Stage.MOVING:
                return
            incoming.written = result.index + 1
            final = incoming.written == incoming.chunks
            if final or incoming.written % PROGRESS_EVERY == 0:
                incoming.allowed = max(incoming.allowed, incoming.written)
                self._send(incoming.sender, peer_wire.FileProgress(file_id, incoming.written))
            self._report_in(incoming, force=final)
            if final:
                incoming.stage = Stage.CHECKING
                self._jobs.append(FinishTarget(file_id, incoming.offer.digest, incoming.offer.size, incoming.chunks))
        elif isinstance(result, Saved):
            incoming = self.incoming.get(file_id)
            if incoming is not None:
                incoming.stage = Stage.DONE
                self._last_word(incoming, incoming.sender, FileDone(file_id))
                self._finished_in(incoming, True, f"Received {incoming.name} ({human_size(incoming.offer.size)}) from "
                                                  f"{incoming.sender_name}, saved to {result.path} "
                                                  "(SHA-256 verified).", result.path)

    def _on_hashed(self, result: Hashed) -> None:
        outgoing = self.outgoing.get(result.file_id)
        if outgoing is None or outgoing.stage != Stage.PREPARING:
            return
        if result.size > self.max_file_bytes:
            for receiver in outgoing.receivers.values():     # never offered, so nothing to tell them
                receiver.stage = Stage.CANCELLED
            self._close_outgoing(outgoing, Stage.CANCELLED)
            self._port.post(FileFinished(short_id(outgoing.file_id), outgoing.name, "out", "", False, None,
                                         f"Not sent: {outgoing.name} is {human_size(result.size)}, over the limit "
                                         f"of {human_size(self.max_file_bytes)}."))
            return
        outgoing.size, outgoing.digest, outgoing.stage = result.size, result.digest, Stage.OFFERED
        offer = self._offer(outgoing)
        offered = [r.name for r in outgoing.receivers.values() if self._send(r.key, offer)]
        self._port.post(FileProgress(short_id(outgoing.file_id), outgoing.name, "out", ", ".join(offered) or "nobody",
                                     0, result.size, 0.0, "offered", recipients=tuple(offered)))

    @staticmethod
    def _offer(outgoing: Outgoing) -> FileOffer:
        return FileOffer(outgoing.file_id, outgoing.size, outgoing.chunk_size, outgoing.digest, outgoing.key,
                         outgoing.name)

    def _on_failed(self, result: Failed) -> None:
        outgoing = self.outgoing.get(result.file_id)
        if outgoing is not None and outgoing.stage not in _OPEN:
            return     # already over: chunks still being read when it stopped fail too, said once
        if outgoing is not None:
            for receiver in outgoing.receivers.values():
                if receiver.stage in (Stage.OFFERED, Stage.MOVING):
                    receiver.stage = Stage.CANCELLED
                    self._last_word(receiver, receiver.key, FileCancel(outgoing.file_id, result.reason))
            self._close_outgoing(outgoing, Stage.CANCELLED)
            self._port.post(FileFinished(short_id(outgoing.file_id), outgoing.name, "out", "", False, None,
                                         result.message))
            return
        incoming = self.incoming.get(result.file_id)
        if incoming is not None and result.can_retry and incoming.stage == Stage.OPENING:
            # A person can make room, or pick another folder: the offer stays open, and says why
            # it is back. The sender is told nothing (here or away): a refusal would let any
            # member find our free space to the byte, offering sizes in a binary search.
            member = self._port.member(incoming.sender) or incoming.offered_by
            problem = result.message
            if incoming.directory == self.auto_accept:
                # A folder that cannot be written to: nobody is there to choose another, and
                # every offer would fail alike. Offers wait for a person from now on.
                self.auto_accept = None
                problem += " Offers now wait for /accept: --accept-files is off until Secure X restarts."
            incoming.stage, incoming.directory = Stage.OFFERED, None
            self._port.post(FileOffered(short_id(incoming.file_id), incoming.name, incoming.offer.size, member,
                                        problem=problem))
            return
        if incoming is not None and incoming.stage not in (Stage.DONE, Stage.CANCELLED, Stage.DECLINED):
            self._stop_incoming(incoming, result.reason, result.message)

    def unfinished(self) -> list[str]:
        """What stops with the session, a sentence each (said as it ends: a tester found
        a 2.1 GB transfer lost to a server shut down without a word in the terminal)."""
        said = []
        for outgoing in self.outgoing.values():
            waiting = [r.name for r in outgoing.receivers.values() if r.stage in _OPEN]
            if outgoing.stage == Stage.PREPARING:
                said.append(f"{outgoing.name} was not offered: the session ended.")
            elif outgoing.stage in _OPEN and waiting:
                said.append(f"{outgoing.name} did not reach {', '.join(waiting)}: the session ended.")
        for incoming in self.incoming.values():
            if incoming.stage == Stage.OFFERED:
                said.append(f"The offer of {incoming.name} from {incoming.sender_name} lapsed: the session ended.")
            elif incoming.stage in _OPEN:
                said.append(f"{incoming.name} from {incoming.sender_name} was not received (the partial file was "
                            "deleted): the session ended.")
        return said

    # -- outputs ----------------------------------------------------------------------------------------

    def take_jobs(self) -> list[Job]:
        jobs, self._jobs = self._jobs, []
        return jobs

    def take_bulk(self) -> list[tuple[list[bytes], Bytes]]:
        bulk, self._bulk = self._bulk, []
        return bulk

    @property
    def busy(self) -> bool:
        return any(o.stage in (Stage.PREPARING, Stage.OFFERED) for o in self.outgoing.values()) or any(
            i.stage in (Stage.OPENING, Stage.MOVING, Stage.CHECKING) for i in self.incoming.values())

    # -- internals ------------------------------------------------------------------------------------

    def _schedule(self, outgoing: Outgoing) -> None:
        """Send each receiver what its window allows; ask the worker for chunks not sealed yet."""
        if outgoing.stage != Stage.OFFERED:
            return
        for _ in range(WINDOW_CHUNKS * max(1, len(outgoing.receivers))):
            if self._port.bulk_queued() + len(self._bulk) >= MAX_BULK_QUEUED:
                self.throttled = True      # the core calls resume_sending once the socket took some
                return
            wanting: dict[int, list[Receiver]] = {}
            for receiver in outgoing.receivers.values():
                if (receiver.stage == Stage.MOVING and not receiver.awaiting_resume
                        and receiver.next_to_send < outgoing.chunks
                        and receiver.next_to_send - receiver.written < WINDOW_CHUNKS
                        and self._port.member(receiver.key) is not None):
                    wanting.setdefault(receiver.next_to_send, []).append(receiver)
            if not wanting:
                return
            index = min(wanting)
            body = outgoing.sealed.get(index)
            if body is None:
                if index not in outgoing.reading and len(outgoing.reading) < WINDOW_CHUNKS:
                    outgoing.reading.add(index)
                    self._jobs.append(ReadChunk(outgoing.file_id, index, index == outgoing.chunks - 1,
                                                outgoing.chunk_size, outgoing.key))
                    # Ask for the next ones too, so reading runs ahead of sending.
                    for ahead in range(index + 1, min(outgoing.chunks, index + 4)):
                        if ahead not in outgoing.reading and ahead not in outgoing.sealed:
                            outgoing.reading.add(ahead)
                            self._jobs.append(ReadChunk(outgoing.file_id, ahead, ahead == outgoing.chunks - 1,
                                                        outgoing.chunk_size, outgoing.key))
                return
            self._bulk.append(([r.key for r in wanting[index]], body))
            for receiver in wanting[index]:
                receiver.next_to_send += 1

    def _settle(self, outgoing: Outgoing) -> None:
        if outgoing.stage == Stage.OFFERED and all(
                r.stage in (Stage.DONE, Stage.DECLINED, Stage.CANCELLED) for r in outgoing.receivers.values()):
            self._close_outgoing(outgoing, Stage.DONE)

    def _close_outgoing(self, outgoing: Outgoing, stage: Stage) -> None:
        """No more chunks of it: let the worker close the source; forget the sealed ones."""
        outgoing.stage = stage
        outgoing.sealed.clear()
        self._jobs.append(Discard(outgoing.file_id))
        self._forget_finished(self.outgoing)

    def _forget_finished(self, transfers: dict) -> None:
        finished = [file_id for file_id, t in transfers.items() if t.stage not in _OPEN]
        for file_id in finished[:max(0, len(finished) - MAX_TRANSFERS_KEPT)]:
            del transfers[file_id]

    def _short_id_taken(self, short: str) -> bool:
        return any(short_id(file_id) == short for file_id in (*self.incoming, *self.outgoing))

    def tick(self) -> None:
        """Give up transfers nothing has arrived for in STALLED_SECONDS, and copies whose
        receiver has written nothing more for as long (away, or asking for the same part
        again and again): the sender does not keep its file open for them for ever."""
        now = self._clock()
        for transfer in list(self.incoming.values()):
            if transfer.stage == Stage.MOVING and now - transfer.last_activity > STALLED_SECONDS:
                self._stop_incoming(transfer, CancelReason.STALLED,
                                    f"Receiving {transfer.name} from {transfer.sender_name} stopped: nothing "
                                    f"arrived for {STALLED_SECONDS / 60:g} minutes; the partial file was deleted.")
            elif self._still_missing(transfer) and now - transfer.resend_asked_time >= ASK_AGAIN_SECONDS:
                self._ask_to_resume(transfer)     # the sender may have found the last ask too soon
            if transfer.stage == Stage.MOVING and not transfer.quiet_shown \
                    and now - transfer.last_activity >= QUIET_SECONDS:
                transfer.quiet_shown = True       # not a speed and a time left frozen at their last values
                self._progress_in(transfer, 0.0, "waiting")
        for outgoing in list(self.outgoing.values()):
            if outgoing.stage != Stage.OFFERED:
                continue
            for receiver in outgoing.receivers.values():
                if receiver.stage == Stage.MOVING and not receiver.quiet_shown \
                        and now - receiver.progress_at >= QUIET_SECONDS:
                    receiver.quiet_shown = True
                    self._progress_out(outgoing, receiver, 0.0, "waiting")
                if receiver.stage == Stage.MOVING and now - receiver.progress_at > SENDER_STALLED_SECONDS:
                    receiver.stage = Stage.CANCELLED
                    self._last_word(receiver, receiver.key, FileCancel(outgoing.file_id, CancelReason.STALLED))
                    self._port.post(FileFinished(short_id(outgoing.file_id), outgoing.name, "out", receiver.name,
                                                 False, None, f"{outgoing.name} was not delivered to {receiver.name}: "
                                                 f"nothing more reached them for {SENDER_STALLED_SECONDS / 60:g} "
                                                 "minutes."))
            self._settle(outgoing)

    @staticmethod
    def _still_missing(transfer: Incoming) -> bool:
        return transfer.stage == Stage.MOVING and transfer.resend_asked_at == transfer.next_expected

    def next_deadline(self) -> float | None:
        times = [t.last_activity + STALLED_SECONDS for t in self.incoming.values() if t.stage == Stage.MOVING]
        times += [t.resend_asked_time + ASK_AGAIN_SECONDS for t in self.incoming.values() if self._still_missing(t)]
        times += [t.last_activity + QUIET_SECONDS for t in self.incoming.values()
                  if t.stage == Stage.MOVING and not t.quiet_shown]
        times += [r.progress_at + QUIET_SECONDS for o in self.outgoing.values() if o.stage == Stage.OFFERED
                  for r in o.receivers.values() if r.stage == Stage.MOVING and not r.quiet_shown]
        times += [r.progress_at + SENDER_STALLED_SECONDS for o in self.outgoing.values() if o.stage == Stage.OFFERED
                  for r in o.receivers.values() if r.stage == Stage.MOVING]
        return min(times) if times else None

    def _stop_incoming(self, transfer: Incoming, reason: CancelReason | None, message: str, *,
                       by_choice: bool = False) -> None:
        if reason is not None:
            self._last_word(transfer, transfer.sender, FileCancel(transfer.file_id, reason))
        transfer.stage = Stage.CANCELLED
        self._jobs.append(Discard(transfer.file_id))
        self._finished_in(transfer, False, message, by_choice=by_choice)

    def _refuse(self, transfer: Incoming, reason: CancelReason, message: str) -> None:
        """An offer answered with a refusal as it arrives (nothing opened: nothing to discard)."""
        transfer.stage = Stage.CANCELLED
        self._last_word(transfer, transfer.sender, FileCancel(transfer.file_id, reason))
        self._finished_in(transfer, False, message)

    def _answer_again(self, transfer: Incoming) -> None:
        """The sender offers again what we already declined or stopped: it was away when we
        said so (the answer was lost with its connection), and would wait for ever. However
        long ago (``_say_again`` repeats only recent ends, unasked)."""
        if transfer.last_word is not None:
            self._send(transfer.sender, transfer.last_word[0])

    def _finished_in(self, transfer: Incoming, ok: bool, message: str, path: Path | None = None, *,
                     by_choice: bool = False) -> None:
        self._port.post(FileFinished(short_id(transfer.file_id), transfer.name, "in", transfer.sender_name, ok,
                                     str(path) if path else None, message, by_choice))

    def _report_in(self, transfer: Incoming, *, force: bool = False) -> None:
        now = self._clock()
        if not force and now - transfer.reported_at < PROGRESS_EVENT_SECONDS:
            return
        transfer.reported_at, transfer.quiet_shown = now, False
        done = transfer.bytes_written
        self._progress_in(transfer, transfer.speed.update(now, done),
                          "receiving" if done < transfer.offer.size else "checking")

    def _report_out(self, outgoing: Outgoing, receiver: Receiver, *, force: bool = False) -> None:
        now = self._clock()
        if not force and now - receiver.reported_at < PROGRESS_EVENT_SECONDS:
            return
        receiver.reported_at, receiver.quiet_shown = now, False
        self._progress_out(outgoing, receiver, receiver.speed.update(now, outgoing.bytes_written(receiver)), "sending")

    def _progress_in(self, transfer: Incoming, rate: float, stage: str) -> None:
        self._port.post(FileProgress(short_id(transfer.file_id), transfer.name, "in", transfer.sender_name,
                                     transfer.bytes_written, transfer.offer.size, rate, stage))

    def _progress_out(self, outgoing: Outgoing, receiver: Receiver, rate: float, stage: str) -> None:
        self._port.post(FileProgress(short_id(outgoing.file_id), outgoing.name, "out", receiver.name,
                                     outgoing.bytes_written(receiver), outgoing.size, rate, stage))

    def _last_word(self, transfer: Incoming | Receiver, key: bytes, message: FileMessage) -> None:
        """A transfer's end, told to the other side, and kept to say again when it comes
        back: a link that died unnoticed loses it (a review found a cancel lost so, the
        other side waiting 11 minutes). Said twice, an end is ignored the second time."""
        self._send(key, message)
        transfer.last_word = (message, self._clock())

    def _say_again(self, key: bytes) -> None:
        """The member ``key`` is back: the ends of transfers with it, of late."""
        since = self._clock() - LAST_WORD_SECONDS
        ended = [t for t in self.incoming.values() if t.sender == key] + [
            o.receivers[key] for o in self.outgoing.values() if key in o.receivers]
        for transfer in ended:
            if transfer.last_word is not None and transfer.last_word[1] >= since:
                self._send(key, transfer.last_word[0])

    def _send(self, key: bytes, message: FileMessage) -> bool:
        return self._port.send_app(key, peer_wire.encode_app(message))

    @staticmethod
    def _find(transfers: dict, short: str) -> Outgoing | Incoming | None:
        short = short.strip().lower()
        matches = [t for file_id, t in transfers.items() if short_id(file_id) == short]
        if len(matches) > 1:
            matches = [t for t in matches if t.stage in _OPEN]
        return matches[0] if len(matches) == 1 else None


def why_not_sendable(path: Path) -> str | None:
    """What is wrong with offering ``path`` (a message for the user), or None. The
    file worker checks again when it opens the file: this is for a quick answer."""
    try:
        if not path.exists():
            return f"Cannot send {path}: there is no such file."
        if path.is_dir():
            return f"Cannot send {path}: it is a folder; send the files in it one by one (or zip it first)."
        if not path.is_file():
            return f"Cannot send {path}: it is not a regular file."
        if not os.access(path, os.R_OK):
            return f"Cannot send {path}: you may not read it."
    except OSError as error:
        return f"Cannot send {path}: {error.strerror or error}."
    return None


def nobody_to_receive(name: str) -> str:
    """Why a file offered while alone in the room was not sent."""
    return f"Not sent: nobody else is in the room to receive {name}."
