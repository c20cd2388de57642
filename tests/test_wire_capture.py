"""What the network sees: every byte between real clients and the real relay passes
through a recording wiretap (``helpers.RecordingRelay``), and none of it reveals a
message, a display name, the passphrase, anything derived from it, or a member's
identity key, in any common encoding. The same text sent twice never looks the
same, and the same member joining twice sends nothing the two joins share."""

from __future__ import annotations

import base64
import json
import os
import re
from itertools import combinations

import pytest

import crypto_utils
from helpers import (CoreClient, cli_client, core_clients, encodings_of, find_leaks, recording_relay,
                     running_server)
from securex import protocol
from securex.protocol import FrameType
from securex.session import peer_wire

PASSPHRASE = "granite-Ünïcode-orchard-mosaic-κλειδί"
ALICE, ZOE, CAROL = "Alice Liddell", "Zoë Ångström-李", "Carol Ñúñez-Smith"
ASCII_TEXT = "Meet me at the north gate at nine; bring the blue folder."
UNICODE_TEXT = "Schlüssel liegt unter der Fußmatte — 鍵は玄関マットの下 🔑 Ελληνικά"
CLI_TEXT = "Carol's line from the terminal: café crème à 8 h"
REPEATED = "the same words, sent three times"
SECRETS = [PASSPHRASE, ALICE, ZOE, CAROL, ASCII_TEXT, UNICODE_TEXT, CLI_TEXT, REPEATED]


def frames_of(stream: bytes) -> list[protocol.Frame]:
    decoder = protocol.FrameDecoder()
    frames = decoder.feed(stream)
    assert decoder.pending_bytes == 0, "the recording ends in the middle of a frame"
    return frames


def identity_keys(config_dir) -> list[bytes]:
    identities = json.loads((config_dir / "identities.json").read_text())
    return [crypto_utils.identity_public_key(bytes.fromhex(seed)) for seed in identities.values()]


@pytest.fixture(scope="module")
def capture():
    """A real room chatting through the wiretap; yields (wiretap, identity keys) once
    everybody has left, so it holds the complete conversation."""
    with running_server() as server, recording_relay(server.port) as wiretap:
        with core_clients(wiretap.port, ALICE, ZOE, passphrase=PASSPHRASE) as (alice, zoe), \
                cli_client(wiretap.port, CAROL, passphrase=PASSPHRASE) as carol:
            alice.wait_members(ZOE, CAROL)
            zoe.wait_members(ALICE, CAROL)
            alice.session.send_text(ASCII_TEXT)
            zoe.wait_message(ASCII_TEXT)
            carol.expect(re.escape(f"{ALICE}: {ASCII_TEXT}"))
            zoe.session.send_text(UNICODE_TEXT)
            alice.wait_message(UNICODE_TEXT)
            carol.expect(re.escape(f"{ZOE}: {UNICODE_TEXT}"))
            carol.send_line(CLI_TEXT)
            alice.wait_message(CLI_TEXT)
            zoe.wait_message(CLI_TEXT)
            for _ in range(3):
                alice.session.send_text(REPEATED)
            for _ in range(3):
                zoe.wait_message(REPEATED)
            carol.send_line("<quit>")
            assert carol.wait() == 0
            keys = identity_keys(alice.config_dir) + identity_keys(zoe.config_dir)
        yield wiretap, keys


def test_nothing_readable_crosses_the_wire(capture):
    wiretap, _ = capture
    streams = wiretap.streams()
    assert len(streams) == 2 * 3, "expected three client connections"
    assert all(data for _, data in streams)
    assert find_leaks(streams, SECRETS) == []


def test_no_identity_key_and_nothing_derived_from_the_passphrase_crosses_the_wire(capture):
    wiretap, keys = capture
    w = crypto_utils.passphrase_to_w(PASSPHRASE).to_bytes(32, "big")
    needles = [w, w.hex().encode()]
    for key in keys:
        needles += [key, key.hex().encode(), base64.b64encode(key)[:40],
                    crypto_utils.safety_code(key).encode(), crypto_utils.member_tag(key)]
    for label, data in wiretap.streams():
        for needle in needles:
            assert needle not in data, f"{needle!r} in {label}"


def test_the_relay_carried_the_whole_conversation_and_changed_only_the_ids(capture):
    """Guard for the tests above: the recording is the chat, frame by frame."""
    wiretap, _ = capture
    sent = [protocol.parse_routed(f).body for conn in wiretap.connections for f in frames_of(conn.to_server)
            if f.type == FrameType.ROUTE]
    routed = [protocol.parse_routed(f).body for conn in wiretap.connections for f in frames_of(conn.to_client)
              if f.type == FrameType.ROUTED]
    texts = 1 + 1 + 1 + 3
    assert sum(peer_wire.split_body(body)[0] == peer_wire.BodyKind.RECORD for body in sent) >= 2 * texts
    assert set(routed) <= set(sent)
    for conn in wiretap.connections:
        assert frames_of(conn.to_server)[0].type == FrameType.HELLO
        assert frames_of(conn.to_client)[0].type == FrameType.WELCOME


def test_the_same_text_never_gives_the_same_ciphertext_and_counters_never_repeat(capture):
    wiretap, _ = capture
    records = []
    for conn in wiretap.connections:
        counters: dict[bytes, list[int]] = {}
        for frame in frames_of(conn.to_server):
            if frame.type != FrameType.ROUTE:
                continue
            routed = protocol.parse_routed(frame)
            kind, payload = peer_wire.split_body(routed.body)
            if kind == peer_wire.BodyKind.RECORD:
                counter, sealed = peer_wire.parse_record(payload)
                counters.setdefault(routed.member_id, []).append(counter)
                records.append(sealed)
        for sequence in counters.values():   # the counter is the nonce: strictly rising per channel
            assert sequence == sorted(set(sequence)) and sequence[0] == 1
    assert len(set(records)) == len(records)
    same_length = [r for r in records if len(r) == len(records[-1])]
    for first, second in combinations(same_length, 2):
        assert first[:8] != second[:8]


def test_the_same_member_joining_twice_sends_nothing_the_joins_share():
    with running_server() as server, recording_relay(server.port) as wiretap:
        with core_clients(wiretap.port, "Bob"):
            config = None
            for _ in range(2):
                alice = CoreClient(wiretap.port, "Alice", config_dir=config)
                alice.join()
                alice.wait_members("Bob")
                config = alice.config_dir
                alice.close()
        first, second = (bytes(wiretap.connections[i].to_server) for i in (1, 2))
        bodies = [[protocol.parse_routed(f).body for f in frames_of(stream) if f.type == FrameType.ROUTE]
                  for stream in (first, second)]
        windows = {body[i:i + 12] for body in bodies[0] for i in range(1, len(body) - 11)}
        shared = [body for body in bodies[1] if any(body[i:i + 12] in windows for i in range(1, len(body) - 11))]
        assert shared == [], "beyond the kind byte, no 12-byte run repeats between the two joins"


@pytest.mark.parametrize("encoding", list(encodings_of(UNICODE_TEXT)))
def test_the_search_finds_each_encoding_when_it_is_there(encoding):
    """Guard for the leak search: plant one encoding in random bytes and it is found."""
    planted = os.urandom(333) + encodings_of(UNICODE_TEXT)[encoding] + os.urandom(333)
    leaks = find_leaks([("planted", planted)], [UNICODE_TEXT])
    assert any(leak.endswith(f"as {encoding} in planted") for leak in leaks)


@pytest.mark.parametrize("shift", [0, 1, 2])
def test_the_search_finds_base64_at_any_alignment(shift):
    planted = base64.b64encode(os.urandom(shift) + ASCII_TEXT.encode() + os.urandom(5))
    assert find_leaks([("planted", planted)], [ASCII_TEXT])
