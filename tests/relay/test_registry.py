"""securex.relay.registry: places, joining limits, routing and the roster, with fake
members (no sockets). The relay holds no key; what it decides here is who is
connected, and where a body goes."""

from __future__ import annotations

import itertools
import threading

from securex import protocol
from securex.protocol import CloseReason, FrameDecoder, FrameType, Status
from securex.relay.registry import RoomRegistry

_ids = (bytes([i]) * 8 for i in itertools.count(1))


class FakeMember:
    def __init__(self, address: str = "10.0.0.1") -> None:
        self.member_id = b""
        self.address = address
        self.frames: list[protocol.Frame] = []
        self.closed: CloseReason | None = None
        self.chunks = 0                # how many times something was queued
        self.queued: list[protocol.OutFrame] = []     # as queued: bytes, or pieces
        self.backlogged = False
        self._decoder = FrameDecoder()

    def send(self, frame: protocol.OutFrame) -> None:
        self.queued.append(frame)
        self.chunks += 1
        self.frames.extend(self._decoder.feed(frame if isinstance(frame, bytes) else b"".join(frame)))

    def send_roster(self, frame: bytes) -> None:
        self.send(frame)

    def close(self, reason: CloseReason, detail: str) -> None:
        self.closed = reason

    def rosters(self) -> list[list[protocol.RosterEntry]]:
        return [protocol.parse_roster(f, 16) for f in self.frames if f.type == FrameType.ROSTER]

    def routed(self) -> list[protocol.Routed]:
        return [protocol.parse_routed(f) for f in self.frames if f.type == FrameType.ROUTED]


def registry(capacity: int = 5, max_pending: int = 8, per_address: int = 3) -> RoomRegistry:
    return RoomRegistry(capacity, max_pending=max_pending, max_pending_per_address=per_address,
                        new_id=lambda: next(_ids))


def arrive(room: RoomRegistry, address: str = "10.0.0.1", ready: bool = True) -> FakeMember:
    member = FakeMember(address)
    refusal, member.member_id = room.reserve(address)
    assert refusal is None, refusal
    assert room.admit(member)
    if ready:
        room.set_status(member, Status(True, []))
    return member


def test_everyone_gets_the_roster_with_the_newcomer_listed_last():
    room = registry()
    alice = arrive(room)
    bob = arrive(room, "10.0.0.2")
    assert [e.member_id for e in alice.rosters()[-1]] == [alice.member_id, bob.member_id]
    assert bob.rosters()[-1] == alice.rosters()[-1]


def test_a_newcomer_is_listed_as_not_ready_until_it_says_so():
    room = registry()
    alice = arrive(room)
    bob = arrive(room, ready=False)
    assert [e.ready for e in alice.rosters()[-1]] == [True, False]
    room.set_status(bob, Status(True, []))
    assert [e.ready for e in alice.rosters()[-1]] == [True, True]


def test_confirmed_needs_both_sides_to_claim_it():
    room = registry()
    alice, bob, mallory = arrive(room), arrive(room), arrive(room)
    room.set_status(mallory, Status(True, [alice.member_id]))     # a one-sided claim
    assert not any(e.confirmed for e in alice.rosters()[-1])
    room.set_status(alice, Status(True, [bob.member_id]))
    room.set_status(bob, Status(True, [alice.member_id]))
    confirmed = {e.member_id for e in alice.rosters()[-1] if e.confirmed}
    assert confirmed == {alice.member_id, bob.member_id}


def test_the_sixth_is_refused_as_full_and_a_place_frees_up_when_one_leaves():
    room = registry(capacity=5)
    members = [arrive(room, f"10.0.0.{i}") for i in range(5)]
    assert room.reserve("10.0.0.9") == (CloseReason.FULL, b"")
    room.remove(members[0])
    assert room.reserve("10.0.0.9")[0] is None


def test_joining_connections_are_capped_per_address_and_in_total():
    room = registry(capacity=16, max_pending=4, per_address=2)
    for _ in range(2):
        arrive(room, "10.0.0.66", ready=False)
    assert room.reserve("10.0.0.66")[0] == CloseReason.BUSY           # that address is at its cap
    arrive(room, "10.0.0.1", ready=False)
    arrive(room, "10.0.0.2", ready=False)
    assert room.reserve("10.0.0.3")[0] == CloseReason.BUSY            # everyone is at the cap
    assert room.pending_count == 4


def test_finishing_or_leaving_frees_a_joining_slot():
    room = registry(capacity=16, per_address=1)
    joining = arrive(room, "10.0.0.66", ready=False)
    assert room.reserve("10.0.0.66")[0] == CloseReason.BUSY
    room.set_status(joining, Status(True, []))
    other = arrive(room, "10.0.0.66", ready=False)
    room.remove(other)
    assert room.reserve("10.0.0.66")[0] is None


def test_a_reservation_dropped_before_hello_is_released():
    room = registry(capacity=1, per_address=1)
    member = FakeMember()
    member.member_id = room.reserve("10.0.0.1")[1]
    room.release(member)
    assert room.reserve("10.0.0.1")[0] is None


def test_route_stamps_the_sender_and_reaches_only_the_recipient():
    room = registry()
    alice, bob, carol = arrive(room), arrive(room), arrive(room)
    assert room.route_many(alice, [bob.member_id + b"sealed"]) == [bob]
    assert bob.routed() == [protocol.Routed(alice.member_id, b"sealed")]
    assert carol.routed() == [] and alice.routed() == []


def test_route_to_nobody_or_to_oneself_goes_nowhere():
    room = registry()
    alice = arrive(room)
    assert room.route_many(alice, [b"X" * 8 + b"body", alice.member_id + b"body"]) == []
    assert alice.routed() == []


def test_a_removed_member_can_route_nothing():
    room = registry()
    alice, bob = arrive(room), arrive(room)
    room.remove(alice)
    assert room.route_many(alice, [bob.member_id + b"late"]) == []
    assert bob.routed() == []


def test_routes_of_one_read_reach_each_member_in_order_as_one_chunk():
    room = registry()
    alice, bob, carol = arrive(room), arrive(room), arrive(room)
    payloads = [bob.member_id + b"1", carol.member_id + b"2", bob.member_id + b"3"]
    assert set(room.route_many(alice, payloads)) == {bob, carol}
    assert [r.body for r in bob.routed()] == [b"1", b"3"] and [r.body for r in carol.routed()] == [b"2"]
    assert bob.chunks == 1 + len(bob.rosters())        # the two frames were queued together


def test_fan_out_sends_one_body_to_each_named_member_present():
    room = registry()
    alice, bob, carol = arrive(room), arrive(room), arrive(room)
    targets = room.fan_out(alice, protocol.Fanout([bob.member_id, carol.member_id, b"Z" * 8], b"chunk"))
    assert set(targets) == {bob, carol}
    assert bob.routed() == carol.routed() == [protocol.Routed(alice.member_id, b"chunk")]


def test_a_file_chunk_skips_a_member_who_is_behind_instead_of_holding_the_sender():
    room = registry()
    alice, bob, carol = arrive(room), arrive(room), arrive(room)
    carol.backlogged = True
    targets = room.fan_out(alice, protocol.Fanout([bob.member_id, carol.member_id], b"chunk"))
    assert targets == [bob] and carol.routed() == []


def test_removing_tells_the_others_once():
    room = registry()
    alice, bob = arrive(room), arrive(room)
    before = len(alice.rosters())
    assert room.remove(bob) and not room.remove(bob)
    assert len(alice.rosters()) == before + 1
    assert [e.member_id for e in alice.rosters()[-1]] == [alice.member_id]


def test_close_all_closes_everyone_and_refuses_newcomers():
    room = registry()
    members = [arrive(room) for _ in range(3)]
    room.close_all(CloseReason.SHUTDOWN, "bye")
    assert all(m.closed == CloseReason.SHUTDOWN for m in members)
    assert room.reserve("10.0.0.1")[0] == CloseReason.SHUTDOWN


def test_concurrent_routes_keep_each_senders_order_at_the_receiver():
    room = registry(capacity=8)
    receiver = arrive(room)
    senders = [arrive(room) for _ in range(4)]

    def send(sender: FakeMember) -> None:
        for i in range(300):
            room.route_many(sender, [receiver.member_id + i.to_bytes(4, "big")])

    threads = [threading.Thread(target=send, args=(s,)) for s in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    for sender in senders:
        numbers = [int.from_bytes(r.body, "big") for r in receiver.routed() if r.member_id == sender.member_id]
        assert numbers == list(range(300))


def test_a_file_chunk_is_queued_as_a_view_of_what_was_read_and_anything_small_as_one_frame():
    """A view costs a few hundred bytes to queue: fine beside half a megabyte, but a
    flood of one-byte FANOUTs queued as views would cost the relay seven times the
    memory its byte count allows for."""
    room = registry()
    alice, bob = arrive(room), arrive(room)
    big = memoryview(bytearray(protocol.LARGE_FRAME_BYTES))
    room.fan_out(alice, protocol.Fanout([bob.member_id], big))
    room.fan_out(alice, protocol.Fanout([bob.member_id], memoryview(b"x")))
    chunk, small = bob.queued[-2:]
    assert isinstance(chunk, tuple) and chunk[1] is big
    assert isinstance(small, bytes) and bob.routed()[-1].body == b"x"
