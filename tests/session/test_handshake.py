"""securex.session.handshake: one SPAKE2 run plus identity proof, driven in-process.
Each attack is a test named after it; a hypothesis property feeds arbitrary
sequences of real, replayed, tampered and garbage bodies and checks that a run
only ever verifies the peer that really holds the passphrase, and never raises."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto_utils import ROLE_A, ROLE_B, new_nonce, safety_code
from securex.errors import DecryptionError, ProtocolError
from securex.session import peer_wire
from securex.session.handshake import Failure, LocalIdentity, PairHandshake, State
from securex.session.peer_wire import BodyKind, RefuseReason

W, OTHER_W = 1234567, 7654321
ALICE = LocalIdentity.from_seed("Alice", bytes([1]) * 32)
BOB = LocalIdentity.from_seed("Bob", bytes([2]) * 32)
ATTEMPT = b"n" * 16


def state(run_id: bytes = b"r" * 16, next_msg_no: int = 0):
    return lambda: (run_id, next_msg_no)


def split(body: bytes):
    return peer_wire.split_body(body)


def full_run(w_a: int = W, w_b: int = W, tamper=lambda flight, body: body, attempt: bytes | None = None):
    """Run A (newcomer, Alice) against B (member, Bob); ``tamper`` may change each flight.
    Returns (A's handshake, B's handshake, A's last step, B's last step)."""
    a, flight1 = PairHandshake.as_newcomer(w_a, ALICE, state(), attempt or new_nonce())
    b, flight2 = PairHandshake.as_member(w_b, BOB, state(b"s" * 16, 7), split(tamper(1, flight1))[1])
    step_a = a.receive(*split(tamper(2, flight2)))
    step_b = None
    if step_a.send:
        step_b = b.receive(*split(tamper(3, step_a.send[0])))
        if step_b.send:
            step_a = a.receive(*split(tamper(4, step_b.send[0])))
    return a, b, step_a, step_b


def test_same_passphrase_verifies_both_identities_and_opens_a_channel_each_way():
    a, b, step_a, step_b = full_run()
    assert a.state == b.state == State.VERIFIED
    assert step_a.verified.identity.name == "Bob" and step_b.verified.identity.name == "Alice"
    assert step_a.verified.safety_code == safety_code(BOB.public_key)
    assert step_a.verified.identity.next_msg_no == 7 and step_a.verified.identity.run_id == b"s" * 16
    record = step_a.verified.channel.seal_record(b"hello")
    assert step_b.verified.channel.open_record(split(record)[1]) == b"hello"
    back = step_b.verified.channel.seal_record(b"hi")
    assert step_a.verified.channel.open_record(split(back)[1]) == b"hi"


def test_different_passphrase_fails_on_both_sides_and_a_tells_b():
    a, b, _step_a, _step_b = full_run(w_b=OTHER_W)
    assert a.failure == Failure.MISMATCH and b.failure == Failure.MISMATCH
    assert not a.confirmed and not b.confirmed   # B counts it: a guess was spent


def test_a_says_nothing_that_depends_on_the_passphrase_after_a_wrong_confirmation():
    a, flight1 = PairHandshake.as_newcomer(W, ALICE, state(), ATTEMPT)
    _, flight2 = PairHandshake.as_member(OTHER_W, BOB, state(), split(flight1)[1])
    step = a.receive(*split(flight2))
    assert step.failure == Failure.MISMATCH
    assert step.send == [peer_wire.encode_refuse(RefuseReason.MISMATCH)]   # a fixed message, no MAC


@pytest.mark.parametrize("flight", ["before cB", "after cB"])
def test_a_forged_mismatch_refusal_never_tells_a_newcomer_its_passphrase_is_wrong(flight):
    """Only the newcomer sends REFUSE(MISMATCH). One reaching a newcomer is the relay's
    forgery, before it has checked cB or after cB proved the passphrase right: the run
    fails as invalid (the member "did not answer"), never as a wrong passphrase."""
    a, flight1 = PairHandshake.as_newcomer(W, ALICE, state(), ATTEMPT)
    if flight == "after cB":
        _, flight2 = PairHandshake.as_member(W, BOB, state(), split(flight1)[1])
        assert a.receive(*split(flight2)).send and a.confirmed
    step = a.receive(*split(peer_wire.encode_refuse(RefuseReason.MISMATCH)))
    assert step.failure == Failure.INVALID and a.state == State.FAILED


def test_identities_never_cross_the_wire_in_the_clear():
    flights = []
    full_run(tamper=lambda flight, body: flights.append(body) or body)
    wire = b"".join(flights)
    for secret in (b"Alice", b"Bob", ALICE.public_key, BOB.public_key):
        assert secret not in wire


def test_two_joins_by_the_same_member_share_nothing_but_boilerplate():
    first, second = [], []
    full_run(tamper=lambda flight, body: first.append(body) or body)
    full_run(tamper=lambda flight, body: second.append(body) or body)
    for one, two in zip(first, second, strict=True):
        # The kind byte is the only common prefix; no 8-byte run repeats between the joins.
        assert one[0] == two[0]
        chunks = {one[i:i + 8] for i in range(1, len(one) - 7)}
        assert not any(two[i:i + 8] in chunks for i in range(1, len(two) - 7))


@pytest.mark.parametrize("flight", [1, 2, 3, 4], ids=["pake-a", "pake-b", "confirm-a", "identity-b"])
def test_a_flipped_bit_in_any_flight_verifies_nobody_who_saw_it(flight):
    def flip(number, body):
        return body[:-1] + bytes([body[-1] ^ 1]) if number == flight else body
    try:
        a, b, _, _ = full_run(tamper=flip)
    except (DecryptionError, ProtocolError):
        assert flight == 1     # a share that is no longer a curve point is refused outright
        return
    assert a.state != State.VERIFIED       # A saw the tampered flight, or never got B's identity
    if flight < 4:
        assert b.state != State.VERIFIED   # B checked cA and A's sealed identity itself


def test_replayed_old_member_answer_does_not_verify_a_newcomer():
    # Record one run's PAKE_B, then replay it to a newcomer's fresh run.
    recorded = []
    full_run(tamper=lambda n, body: recorded.append(body) or body)
    newcomer, _ = PairHandshake.as_newcomer(W, ALICE, state(), b"m" * 16)
    step = newcomer.receive(*split(recorded[1]))
    assert step.failure == Failure.MISMATCH and step.verified is None


def test_replayed_newcomer_confirmation_does_not_verify_at_a_fresh_member_run():
    recorded = []
    full_run(tamper=lambda n, body: recorded.append(body) or body)
    member, _ = PairHandshake.as_member(W, BOB, state(), split(recorded[0])[1])   # the sniffed PAKE_A
    step = member.receive(*split(recorded[2]))                                    # and its old CONFIRM_A
    assert step.failure == Failure.MISMATCH and step.verified is None


def test_a_run_with_our_own_identity_key_is_refused_on_both_sides():
    # Another Secure X holding our key (a second session, a copied key): only such a
    # holder can sign the proof. B refuses it and still answers, so A learns it too.
    a, flight1 = PairHandshake.as_newcomer(W, ALICE, state(), ATTEMPT)
    b, flight2 = PairHandshake.as_member(W, ALICE, state(), split(flight1)[1])
    step_a = a.receive(*split(flight2))
    step_b = b.receive(*split(step_a.send[0]))
    assert step_b.failure == Failure.REFLECTED and step_b.verified is None
    [identity_b] = step_b.send
    last = a.receive(*split(identity_b))
    assert last.failure == Failure.REFLECTED and last.verified is None


def test_a_forged_identity_signature_is_refused():
    class Forger(PairHandshake):
        def _seal_identity(self, kind, key):   # signs with a key other than the one it claims
            self._me = LocalIdentity(BOB.name, ALICE.seed, BOB.public_key)
            return super()._seal_identity(kind, key)

    a, flight1 = PairHandshake.as_newcomer(W, ALICE, state(), ATTEMPT)
    b, flight2 = Forger.as_member(W, BOB, state(), split(flight1)[1])
    step_a = a.receive(*split(flight2))
    step_b = b.receive(*split(step_a.send[0]))
    step_a = a.receive(*split(step_b.send[0]))
    assert step_a.failure == Failure.INVALID and a.state != State.VERIFIED


def test_backoff_refusal_reaches_the_newcomer_with_its_wait():
    a, _ = PairHandshake.as_newcomer(W, ALICE, state(), ATTEMPT)
    step = a.receive(*split(peer_wire.encode_refuse(RefuseReason.BACKOFF, 20_000)))
    assert step.failure == Failure.REFUSED and step.retry_after_ms == 20_000


def test_a_member_ignores_a_backoff_refusal_it_cannot_be_sent():
    _, flight1 = PairHandshake.as_newcomer(W, ALICE, state(), ATTEMPT)
    b, _ = PairHandshake.as_member(W, BOB, state(), split(flight1)[1])
    assert b.receive(*split(peer_wire.encode_refuse(RefuseReason.BACKOFF, 1))).failure == Failure.INVALID


def test_messages_after_the_run_ended_change_nothing():
    a, _b, _step_a, _ = full_run()
    assert a.receive(BodyKind.PAKE_B, b"junk").failure is None and a.state == State.VERIFIED
    assert a.abandon().failure is None


def test_abandoning_before_confirmation_counts_for_the_member():
    _, flight1 = PairHandshake.as_newcomer(W, ALICE, state(), ATTEMPT)
    b, _ = PairHandshake.as_member(W, BOB, state(), split(flight1)[1])
    assert b.abandon().failure == Failure.ABANDONED and not b.confirmed


# -- the property ------------------------------------------------------------------------------

def _honest_flights() -> list[bytes]:
    flights: list[bytes] = []
    full_run(tamper=lambda n, body: flights.append(body) or body)
    return flights


HONEST = _honest_flights()
_kinds = st.sampled_from(list(BodyKind))
_garbage = st.tuples(_kinds, st.binary(max_size=200))
_recorded = st.sampled_from([peer_wire.split_body(f) for f in HONEST])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(feed=st.lists(st.one_of(_garbage, _recorded), max_size=6), role=st.sampled_from([ROLE_A, ROLE_B]),
       right_passphrase=st.booleans())
def test_no_sequence_of_bodies_verifies_anyone_without_the_passphrase_or_raises(feed, role, right_passphrase):
    """An attacker who holds only old flights and garbage (no live peer with the
    passphrase) can never make a fresh run verify, whatever it sends, in any order."""
    w = W if right_passphrase else OTHER_W
    if role == ROLE_A:
        run, _ = PairHandshake.as_newcomer(w, ALICE, state(), b"q" * 16)
    else:
        run, _ = PairHandshake.as_member(w, BOB, state(), peer_wire.split_body(HONEST[0])[1])
    for kind, payload in feed:
        step = run.receive(kind, payload)
        assert step.verified is None
    assert run.state != State.VERIFIED


def test_the_sealed_identity_does_not_reveal_the_names_length():
    """Review finding: CONFIRM_A was 172, 175 or 190 bytes for names of 2, 5 or 20 letters."""
    sizes = set()
    for name in ("Al", "Alice", "Alexandra Hamilton-X"):
        me = LocalIdentity.from_seed(name, bytes([3]) * 32)
        a, flight1 = PairHandshake.as_newcomer(W, me, state(), new_nonce())
        _, flight2 = PairHandshake.as_member(W, BOB, state(), split(flight1)[1])
        sizes.add(len(a.receive(*split(flight2)).send[0]))
    assert len(sizes) == 1
