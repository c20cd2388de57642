"""room.RoomRegistry with fake members: admission, refusals, fan-out, slow members,
shutdown, and per-sender order under concurrent relays from real threads."""

from __future__ import annotations

import threading

import pytest

from securex import protocol
from securex.errors import RoomFullError, WrongPassphraseError
from securex.protocol import CloseReason, Frame, FrameDecoder, FrameType
from securex.relay.registry import DuplicateSessionError, RoomRegistry

KEY_CHECK = b"k" * 32
OTHER_KEY_CHECK = b"x" * 32
JOIN_TIMEOUT = 10.0  # seconds a worker thread may take before the test fails


class FakeMember:
    """Records every frame it is sent (decoded) and every close; ``accepting=False``
    makes ``send`` report a full outbox, as a member that cannot keep up would."""

    def __init__(self, name: str, accepting: bool = True) -> None:
        self.session_id = name.encode().ljust(8, b"-")[:8]
        self.accepting = accepting
        self.frames: list[Frame] = []
        self.closed: list[tuple[CloseReason, str]] = []
        self._lock = threading.Lock()

    def send(self, frame: bytes) -> bool:
        if not self.accepting:
            return False
        decoded = FrameDecoder().feed(frame)
        assert len(decoded) == 1, "send must be given exactly one whole frame"
        with self._lock:
            self.frames.append(decoded[0])
        return True

    def close(self, reason: CloseReason, detail: str) -> None:
        self.closed.append((reason, detail))

    def of_type(self, frame_type: FrameType) -> list[Frame]:
        return [f for f in self.frames if f.type == frame_type]

    def session_ids(self, frame_type: FrameType) -> list[bytes]:
        return [protocol.parse_session_id(f) for f in self.of_type(frame_type)]

    def relayed(self) -> list[protocol.Relayed]:
        return [protocol.parse_relayed(f) for f in self.of_type(FrameType.RELAYED)]

    def __repr__(self) -> str:
        return f"FakeMember({self.session_id!r})"


def registry(max_members: int = 5, max_pending: int = 4) -> RoomRegistry:
    return RoomRegistry(max_members=max_members, room_salt=bytes(16), max_pending=max_pending)


def message_payload(seq: int, body: bytes = b"sealed") -> bytes:
    """A MESSAGE payload as a client sends it: seq then (here, fake) ciphertext and tag."""
    return seq.to_bytes(8, "big") + body + bytes(16)


def admitted(room: RoomRegistry, *names: str) -> list[FakeMember]:
    members = [FakeMember(name) for name in names]
    for member in members:
        room.admit(member, KEY_CHECK)
    return members


# -- admission ---------------------------------------------------------------

def test_first_member_is_accepted_into_an_empty_room():
    room = registry()
    (alice,) = admitted(room, "alice")
    assert alice.frames == [Frame(FrameType.ACCEPTED, b"")]
    assert room.member_count == 1


def test_newcomer_gets_accepted_listing_present_members_and_others_get_joined():
    room = registry()
    alice, bob, carol = admitted(room, "alice", "bob", "carol")
    assert protocol.parse_session_ids(carol.frames[0]) == [alice.session_id, bob.session_id]
    assert carol.frames[0].type == FrameType.ACCEPTED and len(carol.frames) == 1
    assert alice.session_ids(FrameType.JOINED) == [bob.session_id, carol.session_id]
    assert bob.session_ids(FrameType.JOINED) == [carol.session_id]
    assert room.member_count == 3


def test_one_more_than_max_is_refused_as_full():
    room = registry(max_members=3)
    members = admitted(room, "a", "b", "c")
    before = [list(m.frames) for m in members]
    late = FakeMember("d")
    with pytest.raises(RoomFullError):
        room.admit(late, KEY_CHECK)
    assert room.begin_handshake() == CloseReason.FULL
    assert late.frames == [] and room.member_count == 3
    assert [m.frames for m in members] == before  # nobody heard of it


def test_a_place_frees_up_when_a_member_leaves():
    room = registry(max_members=2)
    alice, _ = admitted(room, "alice", "bob")
    room.remove(alice)
    assert room.begin_handshake() is None
    admitted(room, "carol")
    assert room.member_count == 2


def test_pending_handshakes_are_capped_as_busy():
    room = registry(max_pending=2)
    assert room.begin_handshake() is None
    assert room.begin_handshake() is None
    assert room.begin_handshake() == CloseReason.BUSY
    assert room.pending_count == 2
    room.end_handshake()
    assert room.pending_count == 1
    assert room.begin_handshake() is None


def test_pending_handshakes_never_take_a_members_place():
    room = registry(max_members=2, max_pending=4)
    for _ in range(4):
        assert room.begin_handshake() is None
    admitted(room, "alice", "bob")  # both admitted although 4 are pending
    assert room.member_count == 2


def test_full_room_says_full_even_with_pending_slots_free():
    room = registry(max_members=1, max_pending=4)
    admitted(room, "alice")
    assert room.begin_handshake() == CloseReason.FULL
    assert room.pending_count == 0


def test_wrong_key_check_is_refused_as_wrong_passphrase():
    room = registry()
    (alice,) = admitted(room, "alice")
    mallory = FakeMember("mallory")
    with pytest.raises(WrongPassphraseError):
        room.admit(mallory, OTHER_KEY_CHECK)
    assert mallory.frames == [] and alice.frames == [Frame(FrameType.ACCEPTED, b"")]
    assert room.member_count == 1


def test_first_members_key_check_sets_the_rooms():
    room = registry()
    first = FakeMember("first")
    room.admit(first, OTHER_KEY_CHECK)
    with pytest.raises(WrongPassphraseError):
        room.admit(FakeMember("second"), KEY_CHECK)
    room.admit(FakeMember("third"), OTHER_KEY_CHECK)
    assert room.member_count == 2


def test_key_check_is_forgotten_when_the_room_empties():
    room = registry()
    mistyped = FakeMember("mistyped")
    room.admit(mistyped, OTHER_KEY_CHECK)
    assert room.remove(mistyped)
    admitted(room, "alice")  # the right passphrase now sets the room's
    with pytest.raises(WrongPassphraseError):
        room.admit(FakeMember("late"), OTHER_KEY_CHECK)


def test_duplicate_session_id_is_refused():
    room = registry()
    (alice,) = admitted(room, "alice")
    impostor = FakeMember("alice")
    with pytest.raises(DuplicateSessionError):
        room.admit(impostor, KEY_CHECK)
    assert impostor.frames == [] and room.member_count == 1
    assert alice.of_type(FrameType.JOINED) == []


# -- fan-out -------------------------------------------------------------------

def test_relay_reaches_everyone_but_the_sender_stamped_with_its_session():
    room = registry()
    alice, bob, carol = admitted(room, "alice", "bob", "carol")
    room.relay(alice, message_payload(7, b"ciphertext"))
    expected = protocol.Relayed(alice.session_id, 7, b"ciphertext" + bytes(16))
    assert bob.relayed() == [expected] and carol.relayed() == [expected]
    assert alice.relayed() == []


def test_relay_from_a_non_member_does_nothing():
    room = registry()
    alice, bob = admitted(room, "alice", "bob")
    before = (list(alice.frames), list(bob.frames))
    room.relay(FakeMember("stranger"), message_payload(0))
    room.relay(FakeMember("alice"), message_payload(0))  # same session id, another connection
    assert (alice.frames, bob.frames) == before


def test_relay_from_a_removed_member_does_nothing():
    room = registry()
    alice, bob = admitted(room, "alice", "bob")
    room.remove(alice)
    room.relay(alice, message_payload(0))
    assert bob.relayed() == []


def test_removed_member_is_announced_as_left_once():
    room = registry()
    alice, bob, carol = admitted(room, "alice", "bob", "carol")
    assert room.remove(bob) is True
    assert room.remove(bob) is False
    assert alice.session_ids(FrameType.LEFT) == [bob.session_id]
    assert carol.session_ids(FrameType.LEFT) == [bob.session_id]
    assert bob.of_type(FrameType.LEFT) == []
    assert room.member_count == 2


def test_member_that_cannot_keep_up_is_dropped_as_too_slow():
    room = registry()
    alice, slow, carol = admitted(room, "alice", "slow", "carol")
    slow.accepting = False
    room.relay(alice, message_payload(1))
    assert [reason for reason, _ in slow.closed] == [CloseReason.TOO_SLOW]
    assert "keep up" in slow.closed[0][1]
    assert room.member_count == 2
    assert alice.session_ids(FrameType.LEFT) == [slow.session_id]
    assert carol.session_ids(FrameType.LEFT) == [slow.session_id]
    assert [r.seq for r in carol.relayed()] == [1]
    room.relay(alice, message_payload(2))  # the room goes on without it
    assert [r.seq for r in carol.relayed()] == [1, 2]


def test_member_too_slow_for_a_join_notice_is_dropped():
    room = registry()
    alice, slow = admitted(room, "alice", "slow")
    slow.accepting = False
    admitted(room, "carol")  # JOINED cannot reach slow: slow goes, carol stays
    assert [reason for reason, _ in slow.closed] == [CloseReason.TOO_SLOW]
    assert room.member_count == 2 and alice.closed == []


def test_two_slow_members_are_each_closed_exactly_once():
    room = registry()
    alice, slow1, slow2, dave = admitted(room, "alice", "slow1", "slow2", "dave")
    slow1.accepting = slow2.accepting = False
    room.relay(alice, message_payload(1))
    assert slow1.closed and slow2.closed
    assert [r for r, _ in slow1.closed] == [CloseReason.TOO_SLOW]
    assert [r for r, _ in slow2.closed] == [CloseReason.TOO_SLOW]
    assert room.member_count == 2
    for member in (alice, dave):
        assert sorted(member.session_ids(FrameType.LEFT)) == sorted([slow1.session_id, slow2.session_id])


# -- shutdown --------------------------------------------------------------------

def test_close_all_closes_everyone_and_refuses_newcomers():
    room = registry()
    members = admitted(room, "alice", "bob", "carol")
    closed = room.close_all(CloseReason.SHUTDOWN, "The server is shutting down.")
    assert closed == members
    for member in members:
        assert member.closed == [(CloseReason.SHUTDOWN, "The server is shutting down.")]
        assert member.of_type(FrameType.LEFT) == []
    assert room.member_count == 0
    assert room.begin_handshake() == CloseReason.SHUTDOWN
    with pytest.raises(RoomFullError):
        room.admit(FakeMember("late"), KEY_CHECK)
    room.relay(members[0], message_payload(0))
    assert all(m.relayed() == [] for m in members)


def test_close_all_on_an_empty_room_refuses_newcomers():
    room = registry()
    assert room.close_all(CloseReason.SHUTDOWN, "bye") == []
    assert room.begin_handshake() == CloseReason.SHUTDOWN


# -- concurrency -------------------------------------------------------------------

def _run_threads(targets: list) -> None:
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a relay thread hung"


def test_concurrent_relays_keep_each_senders_order_at_every_receiver():
    senders_count, per_sender = 4, 300
    room = registry(max_members=5)
    members = admitted(room, "s0", "s1", "s2", "s3", "quiet")
    senders = members[:senders_count]
    start = threading.Barrier(senders_count, timeout=JOIN_TIMEOUT)
    errors: list[BaseException] = []

    def sender_loop(sender: FakeMember) -> None:
        try:
            start.wait()
            for seq in range(per_sender):
                room.relay(sender, message_payload(seq))
        except BaseException as error:  # surfaced below: a thread cannot fail the test itself
            errors.append(error)

    _run_threads([lambda s=s: sender_loop(s) for s in senders])
    assert errors == []

    for receiver in members:
        by_sender: dict[bytes, list[int]] = {}
        for relayed in receiver.relayed():
            by_sender.setdefault(relayed.sender_session, []).append(relayed.seq)
        expected = {s.session_id: list(range(per_sender)) for s in senders if s is not receiver}
        assert by_sender == expected, f"{receiver} saw messages out of order or missing"

    # One lock over the fan-out: any two receivers see the messages they share in one order.
    def shared(receiver: FakeMember, other: FakeMember) -> list[tuple[bytes, int]]:
        return [(r.sender_session, r.seq) for r in receiver.relayed()
                if r.sender_session not in (receiver.session_id, other.session_id)]

    quiet = members[-1]
    for receiver in senders:
        assert shared(receiver, quiet) == shared(quiet, receiver)


def test_newcomer_admitted_during_relays_sees_accepted_first_then_whole_runs():
    per_sender = 300
    room = registry(max_members=4)
    alice, bob = admitted(room, "alice", "bob")
    newcomer = FakeMember("newcomer")
    halfway = threading.Event()
    errors: list[BaseException] = []

    def sender_loop(sender: FakeMember) -> None:
        try:
            for seq in range(per_sender):
                if seq == per_sender // 2:
                    halfway.set()
                room.relay(sender, message_payload(seq))
        except BaseException as error:
            errors.append(error)

    def joiner() -> None:
        try:
            assert halfway.wait(JOIN_TIMEOUT)
            room.admit(newcomer, KEY_CHECK)
        except BaseException as error:
            errors.append(error)

    _run_threads([lambda: sender_loop(alice), lambda: sender_loop(bob), joiner])
    assert errors == []
    assert newcomer.frames[0].type == FrameType.ACCEPTED
    assert sorted(protocol.parse_session_ids(newcomer.frames[0])) == sorted([alice.session_id, bob.session_id])
    for sender in (alice, bob):
        seqs = [r.seq for r in newcomer.relayed() if r.sender_session == sender.session_id]
        # From the moment it joined: a contiguous run ending with the last message.
        assert seqs == list(range(per_sender - len(seqs), per_sender))


# -- batched fan-out (RoomRegistry.relay_many) ----------------------------------

class ChunkMember:
    """Records the raw bytes queued to it, whatever their framing."""

    def __init__(self, name: str) -> None:
        self.session_id = name.encode().ljust(8, b"-")[:8]
        self.queued = bytearray()

    def send(self, frame: bytes) -> bool:
        self.queued += frame
        return True

    def close(self, reason, detail: str) -> None:
        pass


def test_relay_many_queues_the_same_stream_as_one_relay_per_message():
    payloads = [protocol.encode_message(seq, bytes([seq]) * (20 + seq))[5:] for seq in range(5)]
    streams = []
    for batched in (False, True):
        room = RoomRegistry(5, bytes(16), 16)
        alice, bob, carol = ChunkMember("alice"), ChunkMember("bob"), ChunkMember("carol")
        for member in (alice, bob, carol):
            room.admit(member, b"k" * 32)
        start = len(bob.queued), len(carol.queued)
        if batched:
            room.relay_many(alice, payloads)
            room.relay_many(alice, [])                      # nothing to send: nothing queued
        else:
            for payload in payloads:
                room.relay(alice, payload)
        streams.append((bytes(bob.queued[start[0]:]), bytes(carol.queued[start[1]:])))
        sent_back = protocol.FrameDecoder().feed(bytes(alice.queued))
        assert FrameType.RELAYED not in [f.type for f in sent_back]   # never back to the sender
    assert streams[0] == streams[1]
    frames = protocol.FrameDecoder().feed(streams[1][0])
    assert [f.type for f in frames] == [FrameType.RELAYED] * 5
    assert [protocol.parse_relayed(f).seq for f in frames] == list(range(5))


def test_relay_many_from_a_non_member_does_nothing():
    room = RoomRegistry(5, bytes(16), 16)
    bob = ChunkMember("bob")
    room.admit(bob, b"k" * 32)
    before = bytes(bob.queued)
    room.relay_many(ChunkMember("stranger"), [protocol.encode_message(0, bytes(20))[5:]])
    assert bytes(bob.queued) == before
