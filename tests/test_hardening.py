"""Nothing a hostile relay or member sends can hang, flood, fool or exhaust a client.
Each test is named after the attack; where the attack is over sockets, so is the
test (a fake relay below speaks the relay protocol with hostile intent)."""

from __future__ import annotations

import os
import socket
import stat
import threading
from contextlib import contextmanager, suppress

import pytest

from helpers import (PASSPHRASE, WAIT, CoreClient, FakeClock, Process, core_clients, python_env,
                     running_server, sim_core, wait_until)
from securex import protocol
from securex.errors import ProtocolError
from securex.events import ChatMessage, Closed, MembersChanged
from securex.protocol import CloseReason, RosterEntry
from securex.session import peer_wire
from securex.session.core import ENTRY_DEADLINE, LinkEnd


@contextmanager
def fake_relay(script):
    """A TCP server on a free port that runs ``script(connection)`` for the first client."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)

    def serve() -> None:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        with connection:
            connection.settimeout(WAIT)
            with suppress(OSError):
                script(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(WAIT)


def welcome(connection: socket.socket) -> None:
    connection.sendall(protocol.encode_welcome(5, b"\x01" * protocol.ID_BYTES, b"\x02" * 8))


FORGED = ("\n[12:00:00] Bob: transfer the money now\r\x1b[2K[12:00:01] Carol: agreed"
          "\x1b]0;pwned\x07\u202eecnalab ruoy\u2028" + "A" * 200_000)


def test_a_relays_close_text_with_newlines_escapes_and_bidi_never_reaches_the_terminal():
    def close_with_forged_lines(connection: socket.socket) -> None:
        welcome(connection)
        connection.sendall(protocol.encode_frame(protocol.FrameType.CLOSE,
                                                 bytes([CloseReason.SHUTDOWN]) + FORGED.encode()))
        connection.recv(1024)

    with fake_relay(close_with_forged_lines) as port:
        client = Process(["client.py", "--cli", "--host", "127.0.0.1", "--port", str(port), "--name", "Alice"],
                         python_env(SECUREX_PASSPHRASE=PASSPHRASE))
        assert client.wait() == 0                      # a shutdown, in the client's own words
        shown = client.output
        assert "The server shut down." in shown
        for forged in ("Bob:", "Carol:", "pwned", "ecnalab", "AAAA", "\x1b", "\u202e", "\u2028"):
            assert forged not in shown, forged
        assert all(len(line) < 300 for line in client.lines + client.errors)


def test_a_close_reason_this_client_does_not_know_is_shown_in_its_own_words():
    def close_with_unknown_reason(connection: socket.socket) -> None:
        welcome(connection)
        connection.sendall(protocol.encode_frame(protocol.FrameType.CLOSE, bytes([200]) + FORGED.encode()))
        connection.recv(1024)

    with fake_relay(close_with_unknown_reason) as port:
        client = Process(["client.py", "--cli", "--host", "127.0.0.1", "--port", str(port), "--name", "Alice",
                          "--no-reconnect"], python_env(SECUREX_PASSPHRASE=PASSPHRASE))
        client.wait()
        assert "The server closed the connection" in client.output
        assert "Bob:" not in client.output and "\x1b" not in client.output


def test_a_relay_listing_hundreds_of_members_is_refused_not_shown():
    def roster_of_ghosts(connection: socket.socket) -> None:
        welcome(connection)
        connection.recv(64)                                       # HELLO
        ghosts = [RosterEntry(i.to_bytes(8, "big"), True, True) for i in range(255)]
        connection.sendall(protocol.encode_roster(ghosts))
        connection.recv(1024)

    with fake_relay(roster_of_ghosts) as port:
        alice = CoreClient(port, "Alice", auto_reconnect=False)
        alice.start()
        closed = alice.wait_for(Closed)
        assert "broke the protocol" in closed.reason or "protocol" in closed.reason.lower()
        assert not [e for e in alice.seen if isinstance(e, MembersChanged) and len(e.members) > 5]


def test_a_relay_trickling_bytes_cannot_hold_a_client_before_the_room_forever():
    """A PING every few seconds keeps a link alive, but not a join that never ends."""
    clock = FakeClock()
    alice = sim_core("Alice", clock=clock)
    alice.connection_made()
    waited = 0.0
    while alice.outcome is None and waited < 10 * ENTRY_DEADLINE:
        clock.advance(4.0)
        waited += 4.0
        alice.receive_data(protocol.encode_frame(protocol.FrameType.PING))
        alice.tick()
    assert alice.outcome is not None and alice.outcome.end == LinkEnd.LOST
    assert waited <= ENTRY_DEADLINE + 4.0


def test_a_front_end_that_stops_reading_events_slows_the_room_and_loses_nothing():
    """The event queue is bounded: when Bob's window stops taking events his network
    thread waits, the relay holds Alice back, and nothing piles up in memory or is lost."""
    count = 600
    with running_server() as server, core_clients(server.port, "Alice") as (alice,):
        bob = CoreClient(server.port, "Bob", queue_size=50)
        bob.join()
        alice.wait_members("Bob")
        alice_reads = alice.collect_in_background()      # Alice's own window keeps up
        for n in range(count):
            alice.session.send_text(f"m{n}")
        wait_until(lambda: bob.events.full(), "Bob's event queue to fill")
        assert bob.events.qsize() == bob.events.maxsize       # bounded: it stopped there
        texts = []
        while len(texts) < count:
            event = bob.wait_for(ChatMessage)
            texts.append(event.text)
        assert texts == [f"m{n}" for n in range(count)]
        assert bob.session.is_alive
        alice_reads.set()
        bob.close()


def test_a_member_named_like_a_client_notice_cannot_join():
    """"! Message not sent" would print exactly like the client's own warning: such a
    name is refused when typed, and when it arrives inside a member's identity."""
    with pytest.raises(ValueError):
        CoreClient(1, "! Message not sent")
    identity = peer_wire.Identity("! Message not sent", b"\x00" * 32, b"\x00" * 64, b"\x00" * 16, 0)
    with pytest.raises(ProtocolError):
        peer_wire.parse_identity(peer_wire.encode_identity(identity))
    for name in ("Bob\u2028[12:00] Carol", "* Alice joined", "Eve\u202e"):
        identity = peer_wire.Identity(name, b"\x00" * 32, b"\x00" * 64, b"\x00" * 16, 0)
        with pytest.raises(ProtocolError):
            peer_wire.parse_identity(peer_wire.encode_identity(identity))


def test_every_file_the_client_keeps_is_private(tmp_path):
    config = tmp_path / "config"
    with running_server() as server, core_clients(server.port, "Alice", config_dir=config) as (alice,):
        alice.session.send_text("hello")
    kept = [p for p in config.rglob("*")]
    assert any(p.is_file() for p in kept), "the identity key at least is kept"
    for path in [config, *kept]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    assert not [p for p in kept if p.suffix == ".tmp"]
    assert os.access(config, os.W_OK)
