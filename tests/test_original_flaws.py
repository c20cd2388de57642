"""One regression test for each flaw of the original Secure X (DESIGN.md, "The product"):
a fixed key and IV, a server that decrypted everything, no MAC, no framing, 127.0.1.1
as the "LAN IP", an unenforced member limit, the {quit} broken pipe, lost long
messages and crashes on non-ASCII text. Each test is named after the flaw it guards."""

from __future__ import annotations

import ast
import collections
import re
import signal
import socket
import sys
from itertools import combinations

import pytest
from Crypto.Cipher import AES

from securex import protocol
from securex.session.runner import ChatMessage, Closed, Connected, MemberJoined, MemberLeft, Notice
from crypto_utils import (TAG_BYTES, derive_room_keys, nonce_for, open_sealed, scrypt_key, seal,
                          sender_key)
from securex.errors import RoomFullError
from helpers import (PASSPHRASE, ROOT, CoreClient, Process, RawClient, cli_client, core_clients,
                     python_env, running_server, server_process)
from netinfo import detect_lan_addresses, interface_addresses
from securex.protocol import CloseReason, FrameType, InnerKind
from test_wire_capture import frames_of, recording_relay

# Where the flaw does not depend on the cost of scrypt, members use a cheaper one
# (every member of a room must use the same) to keep CI fast.
FAST = {"scrypt_n": 2**10}
PROJECT_SOURCES = sorted(p for p in ROOT.glob("*.py"))


def source_tree(name: str) -> ast.Module:
    return ast.parse((ROOT / name).read_text(encoding="utf-8"), name)


# -- fixed key and IV -----------------------------------------------------------

def test_fixed_key__same_passphrase_gives_each_room_its_own_key():
    """The original used one key for every install. Here the room salt is random per
    server run, so the same passphrase gives unrelated keys in two rooms."""
    with running_server() as first, running_server() as second, \
            core_clients(first.port, "Alice", "Bob") as (alice, bob), \
            core_clients(second.port, "Carol") as (carol,):
        fingerprints = [next(e.fingerprint for e in c.seen if isinstance(e, Connected)) for c in (alice, bob, carol)]
        salts = first.registry.room_salt, second.registry.room_salt
    assert fingerprints[0] == fingerprints[1], "one room, one key"
    assert fingerprints[0] != fingerprints[2], "two rooms with one passphrase share a key"
    assert salts[0] != salts[1]
    first_keys, second_keys = (derive_room_keys(PASSPHRASE, salt) for salt in salts)
    assert first_keys.message_key != second_keys.message_key
    assert first_keys.key_check != second_keys.key_check


def test_fixed_iv__the_same_text_never_gets_the_same_nonce_or_ciphertext():
    """What a member (or the relay) receives when Alice says the same thing three times:
    three nonces, three unrelated ciphertexts, one plaintext."""
    with running_server() as server, core_clients(server.port, "Alice") as (alice,):
        observer = RawClient(server.port)
        keys, _, accepted = observer.handshake()
        (alice_id,) = protocol.parse_session_ids(accepted)
        try:
            for _ in range(3):
                alice.session.send_text("same words")
            inner = protocol.encode_inner(InnerKind.TEXT, "Alice", "same words")
            relayed = []
            while len(relayed) < 3:
                frame = protocol.parse_relayed(observer.read_until(FrameType.RELAYED))
                if frame.sender_session == alice_id and len(frame.sealed) == len(inner) + TAG_BYTES:
                    relayed.append(frame)
        finally:
            observer.close()
    key = sender_key(keys.message_key, alice_id)
    for frame in relayed:
        aad = protocol.message_aad(alice_id, frame.seq)
        assert open_sealed(key, frame.seq, aad, frame.sealed) == inner
    assert len({frame.seq for frame in relayed}) == 3
    for a, b in combinations(relayed, 2):
        assert a.sealed[:-TAG_BYTES] != b.sealed[:-TAG_BYTES]
        assert a.sealed[-TAG_BYTES:] != b.sealed[-TAG_BYTES:]


# The pycrypto documentation example the original copied its key and IV from.
ORIGINAL_KEY_AND_IV = ["This is a key123", "This is an IV456"]


@pytest.mark.parametrize("path", PROJECT_SOURCES, ids=lambda p: p.name)
def test_fixed_key__no_key_or_iv_is_written_in_the_code(path):
    text = path.read_text(encoding="utf-8")
    for literal in ORIGINAL_KEY_AND_IV:
        assert literal not in text
    tree = ast.parse(text, path.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, bytes):
            assert len(node.value) not in (12, 16, 24, 32), f"{path.name}:{node.lineno}: key-sized bytes literal"
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert not re.fullmatch(r"[0-9a-fA-F]{24,64}", node.value), f"{path.name}:{node.lineno}: hex key"
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "AES.new":
            # pycryptodome picks a random 16-byte nonce when none is given; ours are explicit.
            assert "nonce" in {k.arg for k in node.keywords}, f"{path.name}:{node.lineno}: AES.new without nonce"


# -- server-side decryption ---------------------------------------------------------

KEY_HANDLING = {"open_sealed", "seal", "derive_room_keys", "sender_key", "scrypt_key", "hkdf_sha256",
                "RoomKeys", "AES", "scrypt", "HKDF", "decrypt", "decrypt_and_verify"}


@pytest.mark.parametrize("module", ["server.py", "securex/relay/engine.py", "securex/relay/registry.py"])
def test_server_side_decryption__the_relay_code_has_no_key_handling(module):
    imported, referenced, from_crypto_utils = set(), set(), set()
    for node in ast.walk(source_tree(module)):
        if isinstance(node, ast.ImportFrom):
            imported |= {alias.name for alias in node.names}
            if node.module == "crypto_utils":
                from_crypto_utils |= {alias.name for alias in node.names}
            assert not (node.module or "").startswith("Crypto"), f"{module} imports {node.module}"
        elif isinstance(node, ast.Import):
            assert not any(alias.name.startswith("Crypto") for alias in node.names)
        elif isinstance(node, ast.Name):
            referenced.add(node.id)
        elif isinstance(node, ast.Attribute):
            referenced.add(node.attr)
    assert not (imported | referenced) & KEY_HANDLING
    assert not from_crypto_utils


def reachable_bytes_and_text(server) -> tuple[list[bytes], list[str]]:
    """Every bytes and str value the server can reach: its object graph, and the local
    variables of every server thread (handlers, writers, the accept loop)."""
    server_files = {str(ROOT / "server.py"), str(ROOT / "securex/relay/engine.py"),
                    str(ROOT / "securex/relay/registry.py")}
    roots: list[object] = [server]
    for frame in sys._current_frames().values():
        stack = []
        while frame is not None:
            stack.append(frame)
            frame = frame.f_back
        if any(f.f_code.co_filename in server_files or f.f_code.co_filename.endswith("socketserver.py")
               for f in stack):
            roots += [value for f in stack for value in f.f_locals.values()]
    found_bytes, found_text, seen, todo = [], [], set(), collections.deque(roots)
    while todo:
        obj = todo.popleft()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, (bytes, bytearray, memoryview)):
            found_bytes.append(bytes(obj))
        elif isinstance(obj, str):
            found_text.append(obj)
        elif isinstance(obj, dict):
            todo.extend(obj.keys())
            todo.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset, collections.deque)):
            todo.extend(obj)
        elif isinstance(obj, (type, type(sys), type(len), type(reachable_bytes_and_text))):
            continue          # classes, modules and functions lead to the whole program
        elif hasattr(obj, "__dict__"):
            todo.extend(vars(obj).values())
    return found_bytes, found_text


def test_server_side_decryption__the_relay_holds_no_key_and_relays_no_plaintext():
    text = "the relay must not read this"
    with running_server() as server, recording_relay(server.port) as relay, \
            core_clients(relay.port, "Alice", "Bob") as (alice, bob):
        alice.session.send_text(text)
        bob.wait_message(text)
        held_bytes, held_text = reachable_bytes_and_text(server)
        salt, member_ids = server.registry.room_salt, [m.session_id for m in server.registry._members]
        streams = relay.streams()
    keys = derive_room_keys(PASSPHRASE, salt)
    secrets = {"room key": scrypt_key(PASSPHRASE, salt), "message key": keys.message_key,
               **{f"sender key {i}": sender_key(keys.message_key, sid) for i, sid in enumerate(member_ids)},
               "passphrase": PASSPHRASE.encode(), "text": text.encode()}
    assert any(keys.key_check in value for value in held_bytes), "the walk did not reach the registry"
    for name, secret in secrets.items():
        assert not any(secret in value for value in held_bytes), f"the server holds the {name}"
    assert not any(PASSPHRASE in value or text in value for value in held_text)
    for label, data in streams:
        assert text.encode() not in data and b"Alice" not in data, label


# -- no MAC --------------------------------------------------------------------------

def test_no_mac__a_bit_flipped_in_flight_is_refused_not_shown():
    """CBC or CTR without a MAC lets anyone on the path edit a message: flipping one
    ciphertext bit turns "pay Mallory 100" into "pay Mallory 900". The tag refuses it."""
    text, name = "pay Mallory 100", "Alice"
    inner = protocol.encode_inner(InnerKind.TEXT, name, text)
    where = 8 + inner.index(b"100")       # MESSAGE payload: seq (8 bytes), then the ciphertext
    tampered: list[bytes] = []

    def flip_the_amount(frame: protocol.Frame) -> bytes:
        if frame.type == FrameType.MESSAGE and len(frame.payload) == 8 + len(inner) + TAG_BYTES:
            payload = bytearray(frame.payload)
            payload[where] ^= ord("1") ^ ord("9")
            tampered.append(bytes(payload))
            return protocol.encode_frame(FrameType.MESSAGE, bytes(payload))
        return protocol.encode_frame(frame.type, frame.payload)

    with running_server() as server, recording_relay(server.port, tamper=flip_the_amount) as wire, \
            core_clients(server.port, "Bob") as (bob,):
        with core_clients(wire.port, name) as (alice,):
            alice.session.send_text(text)
            assert "failed authentication" in bob.wait_for(Notice, lambda e: "Dropped" in e.text).text
            alice.session.send_text("after")
            assert bob.wait_message("after")
        join = protocol.parse_join(frames_of(wire.connections[0].to_server)[0])
        salt = server.registry.room_salt
    assert [e.text for e in bob.seen if isinstance(e, ChatMessage)] == ["after"]
    # Without the tag check, the edit would have worked:
    seq, ciphertext = int.from_bytes(tampered[0][:8], "big"), tampered[0][8:-TAG_BYTES]
    key = sender_key(derive_room_keys(PASSPHRASE, salt).message_key, join.session_id)
    unchecked = AES.new(key, AES.MODE_GCM, nonce=nonce_for(seq)).decrypt(ciphertext)
    assert unchecked == protocol.encode_inner(InnerKind.TEXT, name, "pay Mallory 900")


# -- no framing ----------------------------------------------------------------------

def test_no_framing__merged_and_split_writes_deliver_whole_messages():
    """The original read recv(1024) as one message. A member here writes several frames
    in one send, then frames one byte per send, then frames cut mid-way; the receiver
    sees every message whole and in order."""
    with running_server() as server, core_clients(server.port, "Alice") as (alice,):
        mallory = RawClient(server.port)
        keys, session_id, _ = mallory.handshake()
        mallory.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = sender_key(keys.message_key, session_id)
        texts = [f"message {i}: " + "é" * (i * 37) for i in range(9)]

        def frame(seq: int, kind: InnerKind, body: str = "") -> bytes:
            sealed = seal(key, seq, protocol.message_aad(session_id, seq),
                          protocol.encode_inner(kind, "Mallory", body))
            return protocol.encode_message(seq, sealed)

        frames = [frame(0, InnerKind.HELLO)] + [frame(i + 1, InnerKind.TEXT, t) for i, t in enumerate(texts)]
        try:
            mallory.sock.sendall(b"".join(frames[:4]))              # merged: four frames, one write
            for byte in frames[4]:                                 # split: one byte per write
                mallory.sock.sendall(bytes([byte]))
            rest = b"".join(frames[5:])
            for cut in range(0, len(rest), 97):                    # cut anywhere, mid-header too
                mallory.sock.sendall(rest[cut:cut + 97])
            shown = [alice.wait_for(ChatMessage).text for _ in texts]
        finally:
            mallory.close()
    assert shown == texts
    assert not any(isinstance(e, Notice) for e in alice.seen)


def test_no_framing__a_burst_from_the_server_arrives_message_by_message():
    """The server joins queued frames into one write; a burst must still split right."""
    with running_server() as server, core_clients(server.port, "Alice", "Bob", **FAST) as (alice, bob):
        texts = [f"burst {i} " + "ü" * (i % 50) for i in range(200)]
        for text in texts:
            alice.session.send_text(text)
        assert [bob.wait_for(ChatMessage).text for _ in texts] == texts


# -- 127.0.1.1 -------------------------------------------------------------------------

DEBIAN_HOSTS = {
    # /etc/hosts maps the hostname to 127.0.1.1; what gethostbyname(gethostname()) gave.
    "laptop on Wi-Fi": ("192.168.1.23", ["127.0.0.1", "127.0.1.1", "192.168.1.23"], ["192.168.1.23"]),
    "no default route": (None, ["127.0.0.1", "192.168.1.23"], ["192.168.1.23"]),
    "probe says 127.0.1.1": ("127.0.1.1", ["127.0.0.1", "10.0.0.7"], ["10.0.0.7"]),
    "two interfaces": (None, ["127.0.0.1", "10.0.0.7", "192.168.1.23"], ["10.0.0.7", "192.168.1.23"]),
}


@pytest.mark.parametrize("host", list(DEBIAN_HOSTS))
def test_127_0_1_1__is_never_given_out_as_the_lan_address(host):
    probe, interfaces, expected = DEBIAN_HOSTS[host]
    lan = detect_lan_addresses(probe=lambda: probe, interfaces=lambda: interfaces)
    assert lan.addresses == expected and not lan.loopback_only


def test_127_0_1_1__the_server_announces_this_machines_lan_address():
    lan_here = [a for a in interface_addresses() if not a.startswith("127.")]
    if not lan_here:
        pytest.skip("this machine has no LAN address (see test_two_hosts.py for a namespace that has)")
    with server_process("--host", "0.0.0.0") as (server, port):
        announced = server.expect(rf"Secure X server on ([\d.]+):{port}").group(1)
    assert announced in lan_here


# -- unenforced member limit -------------------------------------------------------------

def test_member_limit__the_sixth_is_refused_at_once_and_a_place_frees_up():
    with running_server() as server, \
            core_clients(server.port, "A", "B", "C", "D", "E", **FAST) as five:
        sixth = CoreClient(server.port, "Frank", **FAST).start()
        closed = sixth.wait_for(Closed)
        assert isinstance(closed.error, RoomFullError) and "full" in closed.reason
        late = RawClient(server.port)       # refused before any handshake, not left hanging
        assert protocol.parse_close(late.read_frame())[0] == CloseReason.FULL
        late.close()
        assert server.registry.member_count == 5
        five[0].close()
        five[1].wait_for(MemberLeft)
        with core_clients(server.port, "Frank", **FAST) as (frank,):
            five[1].session.send_text("welcome")
            frank.wait_message("welcome")


# -- broken pipe on quit ---------------------------------------------------------------

def test_broken_pipe__quitting_or_dying_members_never_break_the_room():
    with server_process() as (server, port), \
            core_clients(port, "Alice", "Dave") as (alice, dave), \
            cli_client(port, "Bob") as bob, cli_client(port, "Carol") as carol:
        alice.wait_for(MemberJoined, lambda e: e.name == "Carol")
        bob.send_line("{quit}")
        assert bob.wait() == 0
        alice.wait_for(MemberLeft, lambda e: e.name == "Bob")
        carol.proc.send_signal(signal.SIGKILL)
        carol.wait()
        # Straight away, before the server has noticed: it writes into a dead socket.
        for i in range(20):
            alice.session.send_text(f"still here {i}")
        for i in range(20):
            dave.wait_message(f"still here {i}")
        alice.wait_for(MemberLeft, lambda e: e.name == "Carol")
        dave.session.send_text("and so am I")
        alice.wait_message("and so am I")
        output = server.output
    assert "Traceback" not in output and "Broken pipe" not in output
    assert "Traceback" not in bob.output


# -- lost long messages ------------------------------------------------------------------

def test_lost_long_messages__16000_emoji_cross_the_terminal_client_intact():
    emoji = "😀" * 16_000
    with running_server() as server, cli_client(server.port, "Alice") as alice, \
            cli_client(server.port, "Bob") as bob:
        alice.expect(r"\* Bob joined")
        alice.send_line(emoji)
        received = bob.expect(r"^\[\d\d:\d\d:\d\d\] Alice: (.*)$", timeout=20).group(1)
        assert received == emoji
        bob.send_line("🎉" * 16_000 + " ok")
        assert alice.expect(r"Bob: (🎉+) ok$", timeout=20).group(1) == "🎉" * 16_000


# -- crash on non-ASCII text -------------------------------------------------------------

def test_non_ascii__names_texts_and_passphrase_in_any_script():
    """Names, messages and a passphrase typed in two Unicode forms (NFC on one
    keyboard, NFD on another) give one room and intact text both ways."""
    nfc = "Crème-brûlée-Straße-ключ-鍵-🔑"
    nfd = "Cre\u0300me-bru\u0302le\u0301e-Straße-ключ-鍵-🔑"
    assert nfc != nfd
    hello, answer = "Γειά σου! こんにちは 👋 مرحبا", "שלום — नमस्ते — e\u0301 — 🇫🇷"
    with running_server() as server, cli_client(server.port, "Zoë", nfc) as zoe, \
            cli_client(server.port, "李雷", nfd) as lei:
        pattern = r"fingerprint: ([A-Z2-7-]+)"
        assert zoe.expect(pattern).group(1) == lei.expect(pattern).group(1)
        zoe.expect(r"\* 李雷 joined")
        zoe.send_line(hello)
        lei.expect(re.escape(f"Zoë: {hello}") + "$")
        lei.send_line(answer)
        zoe.expect(re.escape(f"李雷: {answer}") + "$")
        assert "Traceback" not in zoe.output + lei.output


def test_non_ascii__a_terminal_that_cannot_show_it_does_not_crash():
    """On an ASCII-only terminal, characters it cannot show become "?"; the client lives."""
    with running_server() as server, core_clients(server.port, "Zoë") as (zoe,):
        bob = Process(["client.py", "--cli", "--host", "127.0.0.1", "--port", str(server.port), "--name", "Bob"],
                      python_env(SECUREX_PASSPHRASE=PASSPHRASE, PYTHONIOENCODING="ascii"))
        try:
            bob.expect("Joined the room")
            zoe.session.send_text("ça va? 😀 中文")
            bob.expect(r"Zo\?: \?a va\? \? \?\?$")
            bob.send_line("après")          # stdin in a code page it cannot read either
            assert zoe.wait_for(ChatMessage, lambda e: e.text.endswith("s")).text.startswith("apr")
            bob.send_line("<quit>")
            assert bob.wait() == 0
        finally:
            bob.kill()
        assert "Traceback" not in bob.output


def test_non_ascii__a_member_sending_invalid_utf8_gets_a_notice_not_a_crash():
    with running_server() as server, core_clients(server.port, "Alice") as (alice,):
        mallory = RawClient(server.port)
        keys, session_id, _ = mallory.handshake()
        key = sender_key(keys.message_key, session_id)
        bodies = [bytes([InnerKind.HELLO, 7]) + b"Mallory",
                  bytes([InnerKind.TEXT, 7]) + b"Mallory" + b"caf\xe9 \xff\xfe",   # Latin-1, not UTF-8
                  bytes([InnerKind.TEXT, 7]) + b"Mallory" + "café".encode()]
        try:
            for seq, body in enumerate(bodies):
                sealed = seal(key, seq, protocol.message_aad(session_id, seq), body)
                mallory.sock.sendall(protocol.encode_message(seq, sealed))
            assert alice.wait_for(ChatMessage).text == "café"
        finally:
            mallory.close()
        notices = [e.text for e in alice.seen if isinstance(e, Notice)]
        assert any("malformed" in n for n in notices)
        assert alice.session.is_alive
