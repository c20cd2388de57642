"""securex.session.channel: one pair's records. Replays, reordering, tampering and
records from another channel are all refused with the one opaque error."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto_utils import channel_keys
from securex.errors import DecryptionError
from securex.session import peer_wire
from securex.session.channel import PairChannel

KEYS = channel_keys(bytes(16), b"a" * 16, b"b" * 16)


def pair(keys=KEYS, nonce_a=b"a" * 16, nonce_b=b"b" * 16) -> tuple[PairChannel, PairChannel]:
    return (PairChannel(keys.a_to_b, keys.b_to_a, nonce_a, nonce_b),
            PairChannel(keys.b_to_a, keys.a_to_b, nonce_a, nonce_b))


def payload(body: bytes) -> bytes:
    return peer_wire.split_body(body)[1]


def test_records_go_both_ways_in_order():
    alice, bob = pair()
    for text in (b"one", b"two", b""):
        assert bob.open_record(payload(alice.seal_record(text))) == text
    assert alice.open_record(payload(bob.seal_record(b"back"))) == b"back"


def test_counters_start_at_1_because_0_carried_the_identity():
    alice, _ = pair()
    counter, _ = peer_wire.parse_record(payload(alice.seal_record(b"x")))
    assert counter == 1


def test_replayed_record_is_refused():
    alice, bob = pair()
    record = payload(alice.seal_record(b"wire the money"))
    bob.open_record(record)
    with pytest.raises(DecryptionError):
        bob.open_record(record)


def test_reordered_record_is_refused_but_a_gap_is_allowed():
    alice, bob = pair()
    first, second, third = (payload(alice.seal_record(t)) for t in (b"1", b"2", b"3"))
    assert bob.open_record(second) == b"2"          # the relay withheld the first: a gap
    with pytest.raises(DecryptionError):
        bob.open_record(first)                       # and now it arrives late: refused
    assert bob.open_record(third) == b"3"


def test_a_record_sent_back_to_its_sender_is_refused():
    alice, _ = pair()
    with pytest.raises(DecryptionError):
        alice.open_record(payload(alice.seal_record(b"reflected")))


def test_a_record_from_another_pairs_channel_is_refused():
    alice, _ = pair()
    _, carol = pair(channel_keys(bytes(range(16)), b"a" * 16, b"c" * 16), nonce_b=b"c" * 16)
    with pytest.raises(DecryptionError):
        carol.open_record(payload(alice.seal_record(b"for bob only")))


def test_a_record_under_the_same_key_but_other_nonces_is_refused():
    # The nonces are bound in the associated data, not only in the keys.
    alice, _ = pair()
    _, bob = pair(nonce_a=b"x" * 16)
    with pytest.raises(DecryptionError):
        bob.open_record(payload(alice.seal_record(b"hi")))


@pytest.mark.parametrize("cut", [0, 8, 20])
def test_truncated_record_is_refused(cut):
    alice, bob = pair()
    with pytest.raises((DecryptionError, Exception)) as refused:
        bob.open_record(payload(alice.seal_record(b"hello there"))[:cut])
    assert type(refused.value).__name__ in ("DecryptionError", "ProtocolError")


def test_a_failed_record_does_not_move_the_counter():
    alice, bob = pair()
    record = bytearray(payload(alice.seal_record(b"x")))
    record[-1] ^= 1
    with pytest.raises(DecryptionError):
        bob.open_record(bytes(record))
    assert bob.last_received == 0


STEPS = st.lists(st.tuples(st.sampled_from(["prepare", "send", "deliver", "forge"]), st.booleans(),
                           st.integers(0, 50)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(STEPS)
def test_ciphers_prepared_ahead_change_no_byte_sent_and_no_verdict(steps):
    """Preparing the next ciphers while idle is an optimisation only: under any
    interleaving with sends, deliveries out of order, replays and forgeries, each
    side sends the same bytes and opens or refuses the same records as a pair of
    channels that never prepared."""
    prepared, plain = pair(), pair()
    sent: dict[bool, list[bytes]] = {True: [], False: []}     # by direction: a to b?
    for action, a_to_b, pick in steps:
        sender, receiver = (0, 1) if a_to_b else (1, 0)
        if action == "prepare":
            prepared[sender].prepare()
        elif action == "send":
            text = f"message {len(sent[a_to_b])}".encode()
            record = prepared[sender].seal_record(text)
            assert plain[sender].seal_record(text) == record
            sent[a_to_b].append(payload(record))
        elif sent[a_to_b]:
            record = sent[a_to_b][pick % len(sent[a_to_b])]
            if action == "forge":
                record = record[:-1] + bytes([record[-1] ^ 1])
            verdicts = []
            for channels in (prepared, plain):
                try:
                    verdicts.append(channels[receiver].open_record(record))
                except DecryptionError:
                    verdicts.append("refused")
            assert verdicts[0] == verdicts[1]
            assert prepared[receiver].last_received == plain[receiver].last_received


def test_a_forgery_at_the_expected_counter_spends_the_prepared_cipher_but_not_the_record():
    alice, bob = pair()
    bob.prepare()
    record = payload(alice.seal_record(b"hello"))
    with pytest.raises(DecryptionError):
        bob.open_record(record[:-1] + bytes([record[-1] ^ 1]))
    assert bob.unprepared
    assert bob.open_record(record) == b"hello"
