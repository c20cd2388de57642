"""A newcomer's passphrase checks are guesses a relay can test: however many members it
invents, refuses, keeps silent or answers with its own guess, one session tests at most
OWN_REJECTIONS_ALLOWED in 15 minutes, and an honest room of any size still verifies a
newcomer with every member (reviews five and six)."""

from __future__ import annotations

from helpers import FakeClock, sim_core
from securex import protocol
from securex.events import Joined, Severity
from securex.protocol import FrameType, RosterEntry
from securex.session import peer_wire
from securex.session.guard import OWN_REJECTIONS_ALLOWED
from securex.session.handshake import LocalIdentity, PairHandshake
from securex.session.peer_wire import BodyKind, RefuseReason
from test_core import Room

VICTIM_W = 424242


class InventingRelay:
    """A relay that lists ``fakes`` made-up, confirmed members to one real newcomer and
    answers each of its join messages as ``policy(member id, how many seen)`` says:
    "guess" (a PAKE reply made with the relay's own guess at the passphrase), "refuse"
    (come back in a second) or "silent"."""

    def __init__(self, fakes: int, policy) -> None:
        self.clock = FakeClock()
        self.core = sim_core("Bob", VICTIM_W, clock=self.clock)
        self.fakes = [(100 + n).to_bytes(protocol.ID_BYTES, "big") for n in range(fakes)]
        self.policy = policy
        self.seen: dict[bytes, int] = {}
        self.guesses = 0
        self.sent: list[tuple[bytes, BodyKind]] = []     # (to, kind) of everything the newcomer routed
        self.decoder = protocol.FrameDecoder()
        me = (1000).to_bytes(protocol.ID_BYTES, "big")
        self.core.connection_made()
        self.core.receive_data(protocol.encode_welcome(16, me, b"relayrun"))
        self.core.receive_data(protocol.encode_roster([RosterEntry(f, True, True) for f in self.fakes]
                                                      + [RosterEntry(me, False, False)]))
        self.pump()

    def pump(self) -> None:
        while data := self.core.data_to_send():
            for frame in self.decoder.feed(data):
                if frame.type == FrameType.ROUTE:
                    self.answer(bytes(frame.payload[:protocol.ID_BYTES]), bytes(frame.payload[protocol.ID_BYTES:]))

    def answer(self, fake: bytes, body: bytes) -> None:
        kind, payload = peer_wire.split_body(body)
        self.sent.append((fake, kind))
        if kind != BodyKind.PAKE_A:
            return
        self.seen[fake] = self.seen.get(fake, 0) + 1
        action = self.policy(fake, self.seen[fake])
        if action == "guess":
            self.guesses += 1
            identity = LocalIdentity.from_seed("fake", fake * 4)
            _, reply = PairHandshake.as_member(1000 + self.guesses, identity, lambda: (b"r" * 8, 0), payload)
            self.core.receive_data(protocol.encode_frame(FrameType.ROUTED, fake + reply))
        elif action == "refuse":
            self.core.receive_data(protocol.encode_frame(
                FrameType.ROUTED, fake + peer_wire.encode_refuse(RefuseReason.BACKOFF, 1000)))

    def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.core.receive_data(protocol.encode_frame(FrameType.PING))
        self.core.tick()
        self.pump()


def test_invented_members_answering_with_guesses_test_no_more_than_the_budget():
    relay = InventingRelay(15, lambda fake, seen: "guess")
    assert relay.guesses == OWN_REJECTIONS_ALLOWED
    assert relay.core.outcome is not None and "rejected too many times" in relay.core.outcome.message


def test_refusing_first_then_guessing_on_the_retry_tests_no_more_than_the_budget():
    """A refusal costs no rejection and frees a place for the next member; the retries a
    second later were started without looking at the budget (a review finding)."""
    silent = (100).to_bytes(protocol.ID_BYTES, "big")
    relay = InventingRelay(15, lambda fake, seen: "silent" if fake == silent else "refuse" if seen == 1 else "guess")
    for _ in range(30):
        relay.tick(1.1)
    assert relay.guesses <= OWN_REJECTIONS_ALLOWED


def test_an_honest_room_of_sixteen_verifies_a_newcomer_with_every_member():
    """Found by a reviewer: past the eighth member, the rest were marked "not asked", the
    newcomer's messages reached eight of them, and it was told the server might be testing
    guesses."""
    room = Room(capacity=16)
    for n in range(16):
        room.join(f"M{n}")
    joined = room.seen("M15", Joined)[0]
    assert (joined.verified, joined.present) == (15, 15)
    assert not any("not asked" in text for text in room.notices("M15"))
    room.say("M15", "hello all")
    assert all("hello all" in room.texts(f"M{n}") for n in range(15))


def test_members_who_stay_silent_are_never_called_a_wrong_passphrase():
    relay = InventingRelay(10, lambda fake, seen: "silent")
    for _ in range(60):
        relay.tick(1.0)
    assert relay.core.outcome is None or "Wrong passphrase" not in relay.core.outcome.message


def test_a_joining_newcomer_does_not_answer_runs_started_by_members_in_the_room():
    """A review finding: the relay had invented, confirmed members start runs with the
    newcomer, whose answers (each a guess tested) came from a second budget. A member in
    the room answers newcomers and never starts a run with one."""
    relay = InventingRelay(7, lambda fake, seen: "silent")
    for fake in relay.fakes:
        _, pake_a = PairHandshake.as_newcomer(1000, LocalIdentity.from_seed("fake", fake * 4),
                                              lambda: (b"r" * 8, 0), fake * 2)
        relay.core.receive_data(protocol.encode_frame(FrameType.ROUTED, fake + pake_a))
    relay.pump()
    assert not [kind for _, kind in relay.sent if kind == BodyKind.PAKE_B]


def test_a_member_that_refused_is_asked_again_once_its_wait_is_over():
    """A review finding: the retry waited in a queue for an unrelated run to end."""
    refuser = (100).to_bytes(protocol.ID_BYTES, "big")
    relay = InventingRelay(2, lambda fake, seen: "refuse" if fake == refuser and seen == 1 else "silent")
    relay.tick(1.1)
    assert relay.seen[refuser] == 2


def test_a_member_that_refused_is_asked_again_once_we_are_in_a_quiet_room():
    room = Room()
    for name in ("Alice", "Bob", "Carol"):
        room.join(name)
    for n in range(8):                         # Alice alone saw failures: she refuses for a while
        room.cores["Alice"].guard.record(bytes([n]) * 16, b"x" * 16, room.clock.now)
    room.join("Dave")
    assert any("refusing new members" in text for text in room.notices("Dave", Severity.WARNING))
    for _ in range(120):                       # two quiet minutes
        room.tick(1.0)
        if "Alice" in room.members("Dave"):
            break
    assert "Alice" in room.members("Dave") and "Dave" in room.members("Alice")
