"""Sending files over real sockets: a real relay on port 0, members in this process
(each with its file worker thread), and proxies that stall, cut or tamper with the
link so every test acts at a known point of a transfer, not at a lucky moment."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from helpers import (ChaosProxy, CoreClient, ScriptedMember, core_clients, recording_relay, running_server,
                     tiny_tmpfs, wait_until)
from securex import protocol
from securex.events import FileFinished, FileOffered, FileProgress
from securex.session import peer_wire
from securex.session.files import CHUNK_BYTES


def random_file(path: Path, size: int) -> Path:
    with path.open("wb") as out:
        for start in range(0, size, 1 << 20):
            out.write(os.urandom(min(1 << 20, size - start)))
    return path


def digest(path: Path | str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def offer_to(client: CoreClient) -> FileOffered:
    return client.wait_for(FileOffered)


def finished(client: CoreClient, direction: str, peer: str | None = None, timeout: float = 30) -> FileFinished:
    return client.wait_for(FileFinished, lambda e: e.direction == direction and (peer is None or e.peer == peer),
                           timeout)


def test_a_file_reaches_two_members_and_chat_goes_on_meanwhile(tmp_path):
    source = random_file(tmp_path / "holiday photos.zip", 5 * 1024 * 1024 + 321)
    with running_server() as server, core_clients(server.port, "Alice", "Bob", "Carol",
                                                  downloads=tmp_path / "unused") as (alice, bob, carol):
        alice.session.send_file(source)
        for member in (bob, carol):
            offer = offer_to(member)
            assert (offer.name, offer.size, offer.sender.name) == ("holiday photos.zip", source.stat().st_size,
                                                                   "Alice")
            member.session.accept_file(offer.file_id, tmp_path / member.name)
        alice.session.send_text("sending you the photos")
        for member in (bob, carol):
            member.wait_message("sending you the photos")
            done = finished(member, "in")
            assert done.ok, done.message
            assert Path(done.path) == tmp_path / member.name / "holiday photos.zip"
            assert digest(done.path) == digest(source)
            assert sorted(p.name for p in (tmp_path / member.name).iterdir()) == ["holiday photos.zip"]
        delivered = {finished(alice, "out").peer for _ in range(2)}
        assert delivered == {"Bob", "Carol"}


def test_a_declined_offer_tells_the_sender_and_saves_nothing(tmp_path):
    source = random_file(tmp_path / "f.bin", 1000)
    with running_server() as server, core_clients(server.port, "Alice", "Bob",
                                                  downloads=tmp_path / "downloads") as (alice, bob):
        alice.session.send_file(source)
        bob.session.decline_file(offer_to(bob).file_id)
        result = finished(alice, "out", "Bob")
        assert not result.ok and result.message == "Bob declined f.bin."
        assert not (tmp_path / "downloads").exists()


def stalled_transfer(tmp_path: Path, server_port: int, size: int):
    """Alice sends ``size`` bytes to Bob, whose link stalls after about a quarter:
    returns (alice, bob, proxy, source) with Bob's first chunks written."""
    source = random_file(tmp_path / "big.bin", size)
    proxy = ChaosProxy(server_port, lifetime=None)
    alice = CoreClient(server_port, "Alice")
    bob = CoreClient(proxy.port, "Bob")
    alice.join()
    bob.join()
    alice.wait_members("Bob")
    proxy.hold_after(size // 4)
    alice.session.send_file(source)
    bob.session.accept_file(offer_to(bob).file_id, tmp_path / "Bob")
    wait_until(lambda: partial_size(tmp_path / "Bob") >= CHUNK_BYTES, "Bob to write his first chunks")
    return alice, bob, proxy, source


def partial_size(folder: Path) -> int:
    """How much of the file being received is written so far (0 before it starts)."""
    return sum(p.stat().st_size for p in folder.glob(".*.part")) if folder.exists() else 0


def test_a_link_cut_mid_transfer_resumes_where_it_was(tmp_path):
    size = 24 * CHUNK_BYTES + 99
    with running_server() as server:
        alice, bob, proxy, source = stalled_transfer(tmp_path, server.port, size)
        try:
            assert partial_size(tmp_path / "Bob") < size
            proxy.reset_now()                 # Wi-Fi gone, mid-file
            proxy.hold_after(None)
            done = finished(bob, "in")
            assert done.ok, done.message
            assert digest(done.path) == digest(source)
            progress = [e.done for e in bob.seen if isinstance(e, FileProgress) and e.direction == "in"]
            assert progress == sorted(progress), "the transfer started over"
            assert finished(alice, "out", "Bob").ok
        finally:
            alice.close()
            bob.close()
            proxy.stop()


@pytest.mark.parametrize("who", ["receiver", "sender"])
def test_cancelling_mid_transfer_tells_the_other_side_and_leaves_no_partial_file(tmp_path, who):
    with running_server() as server:
        alice, bob, proxy, _ = stalled_transfer(tmp_path, server.port, 32 * CHUNK_BYTES)
        try:
            if who == "receiver":
                bob.session.cancel_file(bob.expect(FileOffered).file_id)
                canceller, other, direction, why = bob, alice, "out", "they cancelled"
            else:
                alice.session.cancel_file(alice.expect(FileProgress, lambda e: e.direction == "out").file_id)
                canceller, other, direction, why = alice, bob, "in", "cancelled"
            assert not finished(canceller, "in" if direction == "out" else "out").ok
            proxy.hold_after(None)
            told = finished(other, direction)
            assert not told.ok and why in told.message
            wait_until(lambda: not list((tmp_path / "Bob").iterdir()), "the partial file to be deleted")
        finally:
            alice.close()
            bob.close()
            proxy.stop()


def flip_a_bit_in_the_first_chunk():
    flipped = []

    def tamper(frame: protocol.Frame) -> bytes:
        raw = protocol.encode_frame(frame.type, frame.payload)
        if frame.type == protocol.FrameType.FANOUT and not flipped:
            body = protocol.parse_fanout(frame).body
            if peer_wire.split_body(body)[0] == peer_wire.BodyKind.BULK:
                flipped.append(True)
                return raw[:-100] + bytes([raw[-100] ^ 0x01]) + raw[-99:]
        return raw
    return tamper


def test_a_bit_flipped_on_the_way_fails_verification_and_nothing_is_saved(tmp_path):
    source = random_file(tmp_path / "f.bin", 4 * CHUNK_BYTES)
    with running_server() as server, recording_relay(server.port, flip_a_bit_in_the_first_chunk()) as tampering:
        alice = CoreClient(tampering.port, "Alice")
        bob = CoreClient(server.port, "Bob")
        try:
            alice.join()
            bob.join()
            alice.wait_members("Bob")
            alice.session.send_file(source)
            bob.session.accept_file(offer_to(bob).file_id, tmp_path / "Bob")
            result = finished(bob, "in")
            assert not result.ok and "failed verification" in result.message
            assert "failed verification" in finished(alice, "out", "Bob").message
            assert not list((tmp_path / "Bob").iterdir())
        finally:
            alice.close()
            bob.close()


def test_a_chat_message_sent_mid_transfer_overtakes_the_rest_of_the_file(tmp_path):
    """Chat goes before file chunks at the sender, and at most a window of chunks is
    ever ahead of it: with Bob's link stalled mid-file, Alice's text still reaches
    him before the file's end. (bench/bench_files.py measures the latency.)"""
    with running_server() as server:
        alice, bob, proxy, _ = stalled_transfer(tmp_path, server.port, 64 * CHUNK_BYTES)
        try:
            alice.session.send_text("are you getting it?")
            proxy.hold_after(None)
            bob.wait_message("are you getting it?")
            done = finished(bob, "in")
            assert done.ok
            order = [type(e).__name__ for e in bob.seen if isinstance(e, (FileFinished,)) or
                     getattr(e, "text", None) == "are you getting it?"]
            assert order == ["ChatMessage", "FileFinished"]
        finally:
            alice.close()
            bob.close()
            proxy.stop()


def test_a_stalled_receiver_slows_only_its_own_copy(tmp_path):
    source = random_file(tmp_path / "f.bin", 48 * CHUNK_BYTES)
    with running_server() as server:
        proxy = ChaosProxy(server.port, lifetime=None)
        alice, bob, carol = CoreClient(server.port, "Alice"), CoreClient(server.port, "Bob"), \
            CoreClient(proxy.port, "Carol")
        try:
            for member in (alice, bob, carol):
                member.join()
            alice.wait_members("Bob", "Carol")
            proxy.hold_after(2 * CHUNK_BYTES)             # Carol's link stalls almost at once
            alice.session.send_file(source)
            for member in (bob, carol):
                member.session.accept_file(offer_to(member).file_id, tmp_path / member.name)
            assert finished(bob, "in").ok                 # Bob is not held back by Carol
            assert finished(alice, "out", "Bob").ok
            alice.session.send_text("Bob has it")
            bob.wait_message("Bob has it")                # nor is the chat
            assert not [e for e in carol.drain() if isinstance(e, FileFinished)]
            proxy.hold_after(None)
            done = finished(carol, "in")
            assert done.ok and digest(done.path) == digest(source)
        finally:
            for member in (alice, bob, carol):
                member.close()
            proxy.stop()


def test_a_sender_whose_chunks_do_not_match_its_offer_gets_nothing_saved(tmp_path):
    """A hostile member offers one file (its hash in the offer) and sends another of
    the same size: every chunk opens, but the whole file fails verification."""
    source = random_file(tmp_path / "contract.pdf", 6 * CHUNK_BYTES)
    with running_server() as server, core_clients(server.port, "Mallory", "Bob") as (mallory, bob):
        mallory.session.send_file(source)
        offer = offer_to(bob)
        was = source.stat()
        with source.open("r+b") as rewrite:           # the content swapped after the hash was sent,
            rewrite.write(os.urandom(6 * CHUNK_BYTES))
        os.utime(source, ns=(was.st_atime_ns, was.st_mtime_ns))   # and nothing on disk to show it
        bob.session.accept_file(offer.file_id, tmp_path / "Bob")
        result = finished(bob, "in")
        assert not result.ok and "failed verification" in result.message
        assert "failed verification" in finished(mallory, "out", "Bob").message
        assert not list((tmp_path / "Bob").iterdir())


def test_a_file_larger_than_a_real_file_systems_free_space_stays_offered_for_another_folder(tmp_path):
    """Said at once, not after receiving what cannot all be kept, and the offer stays
    open: accepted again into a folder with room, it arrives (a disk that fills up
    part-way is the injected full disk in tests/session)."""
    source = random_file(tmp_path / "big.bin", 4 * 1024 * 1024)
    with tiny_tmpfs(tmp_path / "small") as small, running_server() as server, \
            core_clients(server.port, "Alice", "Bob") as (alice, bob):
        alice.session.send_file(source)
        bob.session.accept_file(offer_to(bob).file_id, small)
        again = bob.wait_for(FileOffered, lambda e: bool(e.problem))
        assert again.problem.startswith(f"Not enough free space to save big.bin (4.2 MB) in {small}: ")
        assert not list(small.iterdir())
        bob.session.accept_file(again.file_id, tmp_path / "Bob")
        result = finished(bob, "in")
        assert result.ok and digest(result.path) == digest(source)
        assert finished(alice, "out", "Bob").ok


def test_a_member_that_keeps_asking_to_start_over_and_stops_reading_cannot_stall_the_sender(tmp_path):
    """Mallory, offered the file, sends FILE_ACCEPT(0) again and again and then reads
    nothing: the sender queues no more for her, the relay skips her for file chunks
    rather than holding the sender back, and Alice's chat and Bob's copy go on."""
    source = random_file(tmp_path / "big.bin", 24 * CHUNK_BYTES)
    with running_server() as server, core_clients(server.port, "Alice", "Bob") as (alice, bob):
        mallory = ScriptedMember(server.port, "Mallory")
        try:
            mallory.join()
            alice.wait_members("Bob", "Mallory")
            alice.session.send_file(source)
            bob.session.accept_file(offer_to(bob).file_id, tmp_path / "Bob")
            mallory.pump(lambda: bool(mallory.core.files.incoming), "the offer")
            file_id = next(iter(mallory.core.files.incoming))
            alice_key = mallory.peer("Alice").verified.identity.public_key
            for _ in range(50):
                mallory.core.send_app(alice_key, peer_wire.encode_app(peer_wire.FileAccept(file_id, 0)))
            mallory.sock.sendall(mallory.core.data_to_send())       # and from now on she reads nothing
            alice.session.send_text("still talking")
            bob.wait_message("still talking")
            done = finished(bob, "in")
            assert done.ok and digest(done.path) == digest(source)
            assert not [e for e in alice.drain() if type(e).__name__ == "ConnectionLost"]
        finally:
            mallory.close()
