"""securex.session.delivery and its use by the core: receipts, a send queue that
survives reconnects, catch-up after a drop, exactly once and in order, and every
limit said out loud. Driven in-process through the in-memory relay and a fake clock."""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import FakeClock, SimRelay, sim_core
from securex import protocol
from securex.events import ChatMessage, Closed, DeliveryChanged, FileFinished, Joined, Notice, Severity
from securex.session import peer_wire
from securex.session.core import KEEPALIVE_SECONDS, RECEIPT_INTERVAL, Phase
from securex.session.delivery import AWAY_SECONDS, MAX_BACKLOG, MAX_PENDING, SLOW_RECEIPT_SECONDS, Outbox, Sent
from securex.session.members import MAX_SENDER_RUNS


class Room:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.relay = SimRelay()
        self.cores, self.ids, self.events = {}, {}, {}

    def join(self, *names: str):
        for name in names:
            core = self.cores.get(name) or sim_core(name, clock=self.clock)
            self.cores[name] = core
            self.ids[name] = self.relay.connect(core)
            self.relay.pump()
            self.collect()
        return self.cores[names[-1]]

    def collect(self) -> None:
        for name, core in self.cores.items():
            self.events.setdefault(name, []).extend(core.take_events())

    def drop(self, name: str) -> None:
        self.relay.drop(self.ids[name])
        self.relay.pump()
        self.collect()

    def tick(self, seconds: float, step: float = KEEPALIVE_SECONDS) -> None:
        while seconds > 0:
            self.relay.tick(self.clock, min(step, seconds))
            seconds -= step
            self.collect()

    def say(self, name: str, text: str) -> None:
        assert self.cores[name].send_text(text)
        self.relay.pump()
        self.collect()

    def texts(self, name: str) -> list[str]:
        return [e.text for e in self.events[name] if isinstance(e, ChatMessage) and not e.own]

    def received(self, name: str) -> list[ChatMessage]:
        return [e for e in self.events[name] if isinstance(e, ChatMessage) and not e.own]

    def notices(self, name: str) -> list[str]:
        return [e.text for e in self.events[name] if isinstance(e, Notice)]

    def delivery(self, name: str) -> dict[int, DeliveryChanged]:
        latest = {}
        for event in self.events[name]:
            if isinstance(event, DeliveryChanged):
                latest[event.message_id] = event
        return latest


def test_each_recipient_acknowledges_and_the_sender_knows_who_has_it():
    room = Room()
    room.join("Alice", "Bob", "Carol")
    room.say("Alice", "hello")
    [own] = [e for e in room.events["Alice"] if isinstance(e, ChatMessage) and e.own]
    status = room.delivery("Alice")[own.message_id]
    assert status.state == "delivered" and status.delivered_to == ("Bob", "Carol") and not status.waiting_for


def test_messages_typed_while_away_are_kept_and_sent_once_the_room_is_back():
    room = Room()
    room.join("Alice", "Bob")
    room.drop("Alice")
    alice = room.cores["Alice"]
    assert alice.send_text("typed in the tunnel") and alice.send_text("and another")
    pending = [e for e in alice.take_events() if isinstance(e, ChatMessage)]
    assert [e.pending for e in pending] == [True, True]
    room.events["Alice"].extend(pending)
    room.join("Alice")
    assert room.texts("Bob") == ["typed in the tunnel", "and another"]
    assert {e.state for e in room.delivery("Alice").values()} == {"delivered"}


def test_a_message_typed_while_away_is_stamped_with_when_it_was_typed():
    """New-user finding: it showed the time the link came back, a minute later."""
    room = Room()
    room.join("Alice", "Bob")
    room.drop("Alice")
    alice = room.cores["Alice"]
    typed_at = datetime.fromtimestamp(1_700_000_000 + room.clock.now)
    assert alice.send_text("typed in the tunnel")
    room.clock.advance(60)
    room.join("Alice")
    [message] = room.received("Bob")
    assert message.text == "typed in the tunnel" and message.sent_at == typed_at


def test_a_member_who_drops_catches_up_in_order_exactly_once_and_is_told():
    room = Room()
    room.join("Alice", "Bob")
    room.say("Alice", "before")
    room.drop("Bob")
    for text in ("one", "two", "three"):
        room.say("Alice", text)
    room.join("Bob")
    caught = [e for e in room.received("Bob") if e.caught_up]
    assert [e.text for e in caught] == ["one", "two", "three"]
    assert room.texts("Bob") == ["before", "one", "two", "three"]
    assert "Caught up: 3 messages from Alice sent while you were away." in room.notices("Bob")
    assert {e.state for e in room.delivery("Alice").values()} == {"delivered"}
    # In the order it reads: back in the room first, then what was missed (a tester saw
    # the missed messages before "Joined", as Alice sends them the moment she has verified Bob).
    events = room.events["Bob"]
    back = max(i for i, e in enumerate(events) if isinstance(e, Joined))
    assert back < events.index(caught[0])
    assert back < next(i for i, e in enumerate(events) if isinstance(e, Notice) and e.text.startswith("Caught up"))


def test_what_was_missed_comes_after_joined_even_while_others_are_still_verifying():
    room = Room()
    room.join("Alice", "Carol", "Bob")
    room.drop("Bob")
    room.say("Alice", "while you were out")
    room.join("Bob")          # Alice verifies Bob and resends before Carol's run is done
    events = room.events["Bob"]
    back = max(i for i, e in enumerate(events) if isinstance(e, Joined))
    missed = next(i for i, e in enumerate(events) if isinstance(e, ChatMessage) and e.text == "while you were out")
    assert back < missed


def test_a_lost_receipt_means_a_resend_that_is_never_shown_twice():
    room = Room()
    room.join("Alice", "Bob")
    withhold = {"on": True}

    def lose_bobs_records(sender, to, frame):
        body = protocol.parse_routed(protocol.FrameDecoder().feed(frame)[0]).body
        return [] if withhold["on"] and sender == room.ids["Bob"] and body[0] == peer_wire.BodyKind.RECORD \
            else [frame]
    room.relay.intercept = lose_bobs_records
    room.say("Alice", "only once")
    assert room.texts("Bob") == ["only once"]
    assert room.delivery("Alice")[1].state == "sent"       # the receipt never came
    room.drop("Bob")
    withhold["on"] = False
    room.join("Bob")                                       # Alice resends; Bob already has it
    assert room.texts("Bob") == ["only once"]
    assert room.delivery("Alice")[1].state == "delivered"


def test_a_member_who_never_comes_back_is_reported_undelivered():
    room = Room()
    room.join("Alice", "Bob")
    room.drop("Bob")
    room.say("Alice", "are you there?")
    room.tick(AWAY_SECONDS + KEEPALIVE_SECONDS)
    assert "1 message of yours will not reach Bob: they did not come back within 10 minutes." \
        in room.notices("Alice")
    assert room.delivery("Alice")[1].state == "incomplete"
    assert room.delivery("Alice")[1].given_up == ("Bob",)


def test_past_the_backlog_limit_the_sender_is_told_what_was_given_up():
    room = Room()
    room.join("Alice", "Bob")
    room.drop("Bob")
    for i in range(MAX_BACKLOG + 3):
        room.cores["Alice"].send_text(f"m{i}")
    room.collect()
    given_up = [n for n in room.notices("Alice") if "too many were waiting for them" in n]
    assert len(given_up) == 3
    room.join("Bob")
    assert room.texts("Bob")[0] == "m3" and len(room.texts("Bob")) == MAX_BACKLOG


def test_a_burst_that_outruns_the_receipts_of_members_present_loses_nothing_and_says_so_once():
    """Receipts lag a fast burst: past the backlog limit the oldest messages are only no
    longer kept for re-sending. One note, not a "will not reach" per message."""
    room = Room()
    room.join("Alice", "Bob")
    for i in range(3 * MAX_BACKLOG):          # all sent before any receipt comes back
        room.cores["Alice"].send_text(f"m{i}")
    room.relay.pump(rounds=1000)
    room.collect()
    assert room.texts("Bob") == [f"m{i}" for i in range(3 * MAX_BACKLOG)]
    notices = room.notices("Alice")
    assert [n for n in notices if "no longer kept" in n] == [
        f"Over {MAX_BACKLOG:,} of your messages are waiting for Bob's receipts; the oldest are no longer kept "
        "to be sent again should Bob's connection drop."]
    assert not [n for n in notices if "will not reach" in n]
    assert not [e for e in room.events["Alice"] if isinstance(e, Notice) and e.severity != Severity.INFO]


def test_a_burst_read_piece_by_piece_costs_one_receipt_per_interval_not_one_per_text():
    """Each text in a read of its own: one ACK goes at once, the rest wait out the
    interval and then go as one, and the sender learns every text was delivered."""
    room = Room()
    room.join("Alice", "Bob")
    already = len(room.relay.routed)
    for i in range(10):
        room.say("Alice", f"m{i}")
    acks = [entry for entry in room.relay.routed[already:] if entry[0] == room.ids["Bob"]]
    assert room.texts("Bob") == [f"m{i}" for i in range(10)] and len(acks) == 1
    assert sorted(e.state for e in room.delivery("Alice").values()) == ["delivered"] + ["sent"] * 9
    assert room.cores["Bob"].next_deadline() <= room.clock.now + RECEIPT_INTERVAL
    room.tick(RECEIPT_INTERVAL)
    acks = [entry for entry in room.relay.routed[already:] if entry[0] == room.ids["Bob"]]
    assert len(acks) == 2
    assert {e.state for e in room.delivery("Alice").values()} == {"delivered"}


def test_receipts_still_held_back_go_out_before_the_goodbye():
    """Leaving within the interval: the sender hears of every text received, not of
    "will not reach" for one whose ACK was waiting."""
    room = Room()
    room.join("Alice", "Bob")
    room.say("Alice", "first")
    room.say("Alice", "second, inside the interval")
    room.cores["Bob"].leave()
    room.relay.pump()
    room.collect()
    assert room.texts("Bob") == ["first", "second, inside the interval"]
    assert {e.state for e in room.delivery("Alice").values()} == {"delivered"}
    assert not [n for n in room.notices("Alice") if "will not reach" in n]


def test_a_present_member_slow_to_acknowledge_is_named():
    room = Room()
    room.join("Alice", "Bob")
    room.relay.intercept = lambda sender, to, frame: [] if sender == room.ids["Bob"] else [frame]
    room.say("Alice", "the plan is on")
    room.tick(SLOW_RECEIPT_SECONDS + 1, step=1)
    assert any(re.fullmatch(r'Not yet delivered to Bob after 3\d s: "the plan is on"', n)
               for n in room.notices("Alice"))


def test_a_goodbye_with_messages_outstanding_is_reported():
    room = Room()
    room.join("Alice", "Bob")
    room.relay.intercept = lambda sender, to, frame: [] if to == room.ids["Bob"] and sender == room.ids["Alice"] \
        else [frame]
    room.say("Alice", "lost in the post")
    room.relay.intercept = lambda sender, to, frame: [frame]
    room.cores["Bob"].leave()
    room.relay.pump()
    room.collect()
    assert "1 message of yours will not reach Bob: they left before receiving them." in room.notices("Alice")


def test_after_a_relay_restart_everyone_catches_up():
    room = Room()
    room.join("Alice", "Bob", "Carol")
    for name in ("Alice", "Bob", "Carol"):
        room.drop(name)
    for name in ("Alice", "Bob", "Carol"):
        room.cores[name].send_text(f"{name} while the relay was down")
    room.collect()
    room.relay = SimRelay()            # the relay came back, empty
    room.join("Alice", "Bob", "Carol")
    for name in ("Alice", "Bob", "Carol"):
        others = sorted(f"{o} while the relay was down" for o in ("Alice", "Bob", "Carol") if o != name)
        assert sorted(room.texts(name)) == others, name


def test_the_pending_queue_is_bounded_and_says_so():
    clock = FakeClock()
    alice = sim_core("Alice", clock=clock)
    for i in range(MAX_PENDING):
        assert alice.send_text(f"m{i}")
    assert not alice.send_text("one too many")
    assert any("already waiting" in e.text for e in alice.take_events() if isinstance(e, Notice)
               and e.severity == Severity.WARNING)
    assert len(alice.pending) == MAX_PENDING


def test_a_hostile_receipt_range_costs_no_more_than_the_backlog():
    outbox = Outbox()
    message = Sent(1, 0, b"x", "x", 0.0)
    outbox.record(message, [(b"bob", "Bob")])
    assert outbox.acknowledged(b"bob", ((0, 2**64 - 1),)) == [message]
    assert outbox.acknowledged(b"mallory", ((0, 2**64 - 1),)) == []


def test_closing_with_messages_still_pending_reports_how_many():
    # The runner puts the count in Closed; here, the event carries it.
    assert Closed("You left the room.", None, unsent=2).unsent == 2
    room = Room()
    alice = sim_core("Alice", clock=room.clock)
    alice.send_text("never sent")
    assert len(alice.pending) == 1 and alice.phase == Phase.WAITING


def test_a_message_kept_for_a_member_away_does_not_make_the_client_spin():
    """Its slow-receipt time passes while the member is away: the next deadline must
    still be in the future, or the network thread would loop without sleeping for the
    whole ten minutes a member may be away."""
    room = Room()
    room.join("Alice", "Bob")
    room.drop("Bob")
    room.say("Alice", "for when Bob is back")
    room.tick(SLOW_RECEIPT_SECONDS + 5, step=1)
    alice = room.cores["Alice"]
    assert alice.next_deadline() > room.clock()
    assert not [n for n in room.notices("Alice") if "Not yet delivered" in n]   # away is not slow


def test_a_member_churning_run_ids_cannot_make_another_members_resent_message_show_twice():
    """Bob's log of what Alice sent is what shows her catch-up once; Mallory reconnecting
    with fresh run ids over and over must not push it out while Alice is away."""
    room = Room()
    room.join("Alice", "Bob", "Mallory")
    alice, bob, mallory = (room.cores[n] for n in ("Alice", "Bob", "Mallory"))
    alice.send_text("meet at 5")
    alice_id = room.ids["Alice"]
    for frame in room.relay._decoders[alice_id].feed(alice.data_to_send()):
        room.relay._handle(alice_id, frame)
    bob_id = room.ids["Bob"]
    while room.relay._inbox[bob_id]:
        bob.receive_data(room.relay._inbox[bob_id].pop(0))
    room.drop("Alice")                           # before Bob's receipt reached her
    for _ in range(MAX_SENDER_RUNS):
        room.drop("Mallory")
        mallory.run_id = os.urandom(16)
        room.join("Mallory")
        mallory.send_app(bob.me.public_key, peer_wire.encode_app(peer_wire.KeepAlive(mallory.next_msg_no)))
        room.relay.pump()
    room.join("Alice")                           # she resends what Bob never acknowledged
    room.collect()
    assert room.texts("Bob").count("meet at 5") == 1


def test_messages_resent_on_catch_up_do_not_raise_a_false_split_room_alert():
    """They carry the sender's view from when they were sent (without the returning
    member); compared with today's view they would look like a split room."""
    room = Room()
    room.join("Alice", "Bob", "Carol")
    room.tick(5)
    room.drop("Bob")
    room.tick(10)
    room.say("Alice", "sent while Bob was away")
    held = []

    def hold_records_for_bob(sender, to, frame):
        body = protocol.parse_routed(protocol.FrameDecoder().feed(frame)[0]).body
        if sender == room.ids["Alice"] and to == room.ids["Bob"] and body[0] == peer_wire.BodyKind.RECORD:
            held.append(frame)
            return []
        return [frame]

    room.relay.intercept = hold_records_for_bob
    room.join("Bob")
    room.relay.intercept = lambda sender, to, frame: [frame]
    room.clock.advance(4)                        # the relay lets them through only now
    for frame in held:
        room.cores["Bob"].receive_data(frame)
    room.relay.pump()
    room.collect()
    assert "sent while Bob was away" in room.texts("Bob")
    assert not [e for e in room.events["Bob"] if isinstance(e, Notice) and e.severity == Severity.ALERT]


@settings(max_examples=200)
@given(backlog=st.lists(st.integers(0, 3000), unique=True, max_size=300),
       ranges=st.lists(st.tuples(st.integers(0, 3100), st.integers(0, 3100)).map(sorted).map(tuple), max_size=32))
def test_a_receipt_settles_exactly_the_numbers_its_ranges_cover(backlog, ranges):
    outbox = Outbox()
    for msg_no in sorted(backlog):
        outbox.record(Sent(msg_no, msg_no, b"x", "x", 0.0), [(b"bob", "Bob")])
    settled = {sent.msg_no for sent in outbox.acknowledged(b"bob", tuple(ranges))}
    assert settled == {n for n in backlog if any(first <= n <= last for first, last in ranges)}
    if backlog:
        assert set(outbox.recipients[b"bob"].backlog) == set(backlog) - settled


def _bob_held_joining() -> tuple[Room, object]:
    """Alice and Carol in the room; Bob joining, his run with Carol held open by the relay."""
    room = Room()
    room.join("Alice", "Carol")
    bob = room.cores["Bob"] = sim_core("Bob", clock=room.clock)
    room.events["Bob"] = []
    bob_id = room.ids["Bob"] = room.relay.connect(bob)
    carol_id = room.ids["Carol"]
    room.relay.intercept = lambda sender, to, frame: [] if {sender, to} == {bob_id, carol_id} else [frame]
    room.relay.pump()
    room.collect()
    assert bob.phase == Phase.JOINING and room.ids["Alice"] in bob.peers
    return room, bob


def test_nothing_is_acknowledged_while_joining_until_leaving_shows_it():
    """What arrives while joining is held, not shown: no receipt (a session that never
    gets in settles nothing). Leaving shows it, so the goodbye goes with its receipt."""
    room, bob = _bob_held_joining()
    room.say("Alice", "welcome Bob")
    [own] = [e for e in room.events["Alice"] if isinstance(e, ChatMessage) and e.own]
    assert room.delivery("Alice")[own.message_id].state == "sent"
    bob.leave()
    room.relay.pump()
    bob.connection_lost()
    room.collect()
    assert room.texts("Bob") == ["welcome Bob"]
    assert room.delivery("Alice")[own.message_id].state == "delivered"
    assert not [n for n in room.notices("Alice") if "will not reach" in n]


def test_a_member_repeating_one_message_while_we_join_costs_one_receipt_entry():
    """Review finding: every duplicate was kept for the receipt while joining."""
    room, bob = _bob_held_joining()
    alice = room.cores["Alice"]
    peer_at_alice = alice.peers[room.ids["Bob"]]
    repeated = peer_wire.encode_text(peer_wire.Text(0, 0, 0, (), "again"))
    for _ in range(2000):
        alice._send_app(peer_at_alice, repeated)       # fresh counters: each one opens
    room.relay.pump(rounds=200)
    assert bob.phase == Phase.JOINING and bob.peers[room.ids["Alice"]].unacknowledged == {0}


def test_file_news_in_a_back_off_before_any_join_is_shown_at_once():
    """Third review: events were held whenever we were not in the room, so in the back-off
    after a link that died before the roster they waited for a join that might never come."""
    clock = FakeClock()
    core = sim_core("Bob", clock=clock)
    core.connection_made()
    core.connection_lost()          # the relay closed before any roster (room full, a hostile relay)
    core.take_events()
    core.offer_file(Path(os.devnull))
    assert [e.message for e in core.take_events() if isinstance(e, FileFinished)] == [
        "Not sent: nobody else is in the room to receive null."]
