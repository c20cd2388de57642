"""What the network sees: every byte between real clients and the real server passes
through a recording relay, and none of it reveals a message, a display name or the
passphrase in any common encoding. The same text sent twice never looks the same.

``RecordingRelay`` is also used by test_original_flaws.py (as a wiretap and as an
active attacker that flips bits in flight).
"""

from __future__ import annotations

import base64
import os
import re
import socket
import threading
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from itertools import combinations

import pytest

from securex import protocol
from securex.session.runner import MemberJoined
from helpers import WAIT, cli_client, core_clients, running_server
from securex.protocol import FrameType

# A frame the relay may rewrite on its way to the server; returns the bytes to forward.
Tamper = Callable[[protocol.Frame], bytes]


@dataclass
class RecordedConnection:
    """Every byte of one client connection, per direction, as it crossed the relay."""

    to_server: bytearray = field(default_factory=bytearray)
    to_client: bytearray = field(default_factory=bytearray)


class RecordingRelay:
    """A TCP relay on 127.0.0.1 (port 0) in front of the real server. Clients connect
    to ``port``; each connection gets its own upstream connection to the server, and
    two threads copy bytes both ways, keeping a copy of each direction.

    With ``tamper``, the client-to-server stream is cut into frames and each frame is
    replaced by what ``tamper`` returns: an active attacker on the network.
    """

    def __init__(self, server_port: int, tamper: Tamper | None = None) -> None:
        self._server_port = server_port
        self._tamper = tamper
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.connections: list[RecordedConnection] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._start(self._accept_loop, "relay accept")

    def _start(self, target: Callable[..., None], name: str, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._server_port), timeout=WAIT)
            record = RecordedConnection()
            with self._lock:
                self.connections.append(record)
                self._sockets += [client, upstream]
            for sock in (client, upstream):
                sock.settimeout(0.1)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._start(self._pump, "relay to server", client, upstream, record.to_server, self._tamper)
            self._start(self._pump, "relay to client", upstream, client, record.to_client, None)

    def _pump(self, source: socket.socket, sink: socket.socket, record: bytearray,
              tamper: Tamper | None) -> None:
        decoder = protocol.FrameDecoder() if tamper else None
        while not self._stopping.is_set():
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            if decoder is not None:
                data = b"".join(tamper(frame) for frame in decoder.feed(data))
            with self._lock:
                record += data
            try:
                sink.sendall(data)
            except OSError:
                break
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            with suppress(OSError):
                sock.shutdown(how)

    def streams(self) -> list[tuple[str, bytes]]:
        """(label, bytes) for each direction of each connection recorded so far."""
        with self._lock:
            return [(f"connection {i} {direction}", bytes(data))
                    for i, conn in enumerate(self.connections)
                    for direction, data in (("to server", conn.to_server), ("to client", conn.to_client))]

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(WAIT)
        with self._lock:
            for sock in self._sockets:
                sock.close()


@contextmanager
def recording_relay(server_port: int, tamper: Tamper | None = None) -> Iterator[RecordingRelay]:
    relay = RecordingRelay(server_port, tamper)
    try:
        yield relay
    finally:
        relay.stop()


# -- what to look for ---------------------------------------------------------

MIN_NEEDLE_BYTES = 6    # shorter patterns could turn up in random ciphertext by chance


def _base64_cores(raw: bytes) -> list[bytes]:
    """The base64 characters that depend only on ``raw``, for each of the three ways
    it can sit against the 3-byte groups of a longer base64 text."""
    cores = []
    for shift in range(3):
        encoded = base64.b64encode(bytes(shift) + raw)
        start = 4 if shift else 0                              # first group mixes in the prefix
        end = len(encoded) - (4 if (shift + len(raw)) % 3 else 0)  # last group is padded
        core = encoded[start:end]
        if len(core) >= 8:
            cores += [core, core.translate(bytes.maketrans(b"+/", b"-_"))]
    return cores


def encodings_of(secret: str) -> dict[str, bytes]:
    """Every common way ``secret`` could be written into a byte stream."""
    found: dict[str, bytes] = {}
    for form in ("NFC", "NFD"):
        text = unicodedata.normalize(form, secret)
        raw = text.encode("utf-8")
        for codec in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
            found[f"{form} {codec}"] = text.encode(codec)
        found[f"{form} hex"] = raw.hex().encode()
        found[f"{form} HEX"] = raw.hex().upper().encode()
        for i, core in enumerate(_base64_cores(raw)):
            found[f"{form} base64 #{i}"] = core
        quoted = urllib.parse.quote(text, safe="").encode()
        found[f"{form} url-encoded"] = quoted
        found[f"{form} url-encoded lower"] = re.sub(rb"%[0-9A-F]{2}", lambda m: m[0].lower(), quoted)
        found[f"{form} form-encoded"] = urllib.parse.quote_plus(text, safe="").encode()
    return found


def find_leaks(streams: list[tuple[str, bytes]], secrets: list[str]) -> list[str]:
    """Which secret, in which encoding, shows up in which stream."""
    leaks = []
    for secret in secrets:
        for encoding, needle in encodings_of(secret).items():
            assert len(needle) >= MIN_NEEDLE_BYTES, f"{secret!r} is too short to search for reliably"
            leaks += [f"{secret!r} as {encoding} in {label}" for label, data in streams if needle in data]
    return leaks


def frames_of(stream: bytes) -> list[protocol.Frame]:
    decoder = protocol.FrameDecoder()
    frames = decoder.feed(stream)
    assert decoder.pending_bytes == 0, "the recording ends in the middle of a frame"
    return frames


# -- the secrets --------------------------------------------------------------

PASSPHRASE = "granite-Ünïcode-orchard-mosaic-κλειδί"
ALICE, ZOE, CAROL = "Alice Liddell", "Zoë Ångström-李", "Carol Ñúñez-Smith"
ASCII_TEXT = "Meet me at the north gate at nine; bring the blue folder."
UNICODE_TEXT = "Schlüssel liegt unter der Fußmatte — 鍵は玄関マットの下 🔑 Ελληνικά"
CLI_TEXT = "Carol's line from the terminal: café crème à 8 h"
REPEATED = "the same words, sent three times"


@pytest.fixture(scope="module")
def capture():
    """A real room chatting through the recording relay; yields the relay after
    everybody has left, so it holds the complete conversation."""
    with running_server() as server, recording_relay(server.port) as relay:
        with core_clients(relay.port, ALICE, ZOE, passphrase=PASSPHRASE) as (alice, zoe), \
                cli_client(relay.port, CAROL, PASSPHRASE) as carol:
            alice.wait_for(MemberJoined, lambda e: e.name == CAROL)
            zoe.wait_for(MemberJoined, lambda e: e.name == CAROL)
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
            zoe.session.send_text(REPEATED)
            for _ in range(3):
                zoe.wait_message(REPEATED)
            alice.wait_message(REPEATED)
            carol.send_line("<quit>")
            assert carol.wait() == 0
        yield relay


SECRETS = [PASSPHRASE, ALICE, ZOE, CAROL, ASCII_TEXT, UNICODE_TEXT, CLI_TEXT, REPEATED]


def test_nothing_readable_crosses_the_wire(capture):
    streams = capture.streams()
    assert len(streams) == 2 * 3, "expected three client connections"
    assert all(data for _, data in streams)
    assert find_leaks(streams, SECRETS) == []


def test_the_relay_carried_the_whole_conversation(capture):
    """Guard for the test above: the recording is the chat, frame by frame, and the
    server's only change to a message is stamping its sender."""
    sent = [f.payload for conn in capture.connections for f in frames_of(conn.to_server)
            if f.type == FrameType.MESSAGE]
    relayed = [f.payload[protocol.SESSION_ID_BYTES:] for conn in capture.connections
               for f in frames_of(conn.to_client) if f.type == FrameType.RELAYED]
    assert len(sent) >= 3 + 3 + 1 + 3          # texts, repeats, a HELLO each
    assert set(relayed) <= set(sent)
    assert len(set(sent) - set(relayed)) <= 1  # only Alice's HELLO, said to an empty room
    for conn in capture.connections:
        assert frames_of(conn.to_server)[0].type == FrameType.JOIN


def test_same_text_twice_never_gives_the_same_ciphertext(capture):
    sealed_repeats = []
    all_sealed = []
    for conn in capture.connections:
        seqs = []
        for frame in frames_of(conn.to_server):
            if frame.type != FrameType.MESSAGE:
                continue
            seq, sealed = int.from_bytes(frame.payload[:8], "big"), frame.payload[8:]
            seqs.append(seq)
            all_sealed.append(sealed)
            repeated_inner = protocol.encode_inner(protocol.InnerKind.TEXT, ALICE, REPEATED)
            if len(sealed) == len(repeated_inner) + 16:
                sealed_repeats.append(sealed)
        # The counter is the nonce: it must never repeat within one session key.
        assert seqs == list(range(len(seqs)))
    assert len(sealed_repeats) == 3
    assert len(set(all_sealed)) == len(all_sealed)
    for first, second in combinations(sealed_repeats, 2):
        ciphertext_a, ciphertext_b = first[:-16], second[:-16]
        assert ciphertext_a != ciphertext_b and first[-16:] != second[-16:]
        # Not even a shared prefix: different nonces give unrelated keystreams.
        assert ciphertext_a[:8] != ciphertext_b[:8]


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
