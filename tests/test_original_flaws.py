"""One regression test for each flaw of the original Secure X (DESIGN.md, "The product"):
a fixed key and IV, a server that decrypted everything, no MAC, no framing, 127.0.1.1
as the "LAN IP", an unenforced member limit, the {quit} broken pipe, lost long
messages and crashes on non-ASCII text. Each test is named after the flaw it guards."""

from __future__ import annotations

import ast
import collections
import re
import signal
import sys
from itertools import combinations

import pytest
from Crypto.Cipher import AES

import crypto_utils
from crypto_utils import TAG_BYTES, nonce_for
from helpers import (PASSPHRASE, ROOT, CoreClient, Process, RawConnection, ScriptedMember, cli_client,
                     close_reason, core_clients, python_env, recording_relay, running_server, server_process)
from netinfo import detect_lan_addresses, interface_addresses
from securex import protocol
from securex.errors import RoomFullError
from securex.events import ChatMessage, Closed, MemberLeft, Notice
from securex.protocol import CloseReason, FrameType
from securex.session import peer_wire

PROJECT_SOURCES = sorted([*ROOT.glob("*.py"), *ROOT.glob("securex/**/*.py")])
RELAY_SOURCES = ["server.py", "securex/protocol.py", "securex/relay/engine.py", "securex/relay/registry.py"]


def frames_of(stream: bytes) -> list[protocol.Frame]:
    return protocol.FrameDecoder().feed(stream)


def records_from(stream: bytes, to: bytes | None = None) -> list[tuple[int, bytes]]:
    """(counter, sealed) of every RECORD a client sent (to one member, if given)."""
    found = []
    for frame in frames_of(stream):
        if frame.type == FrameType.ROUTE:
            routed = protocol.parse_routed(frame)
            kind, payload = peer_wire.split_body(routed.body)
            if kind == peer_wire.BodyKind.RECORD and to in (None, routed.member_id):
                found.append(peer_wire.parse_record(payload))
    return found


# -- fixed key and IV ------------------------------------------------------------------------------

def test_fixed_key__every_pair_and_every_connection_gets_fresh_keys():
    """The original used one key for every install. Here there is no room key at all:
    each pair of members derives its own keys from a fresh SPAKE2 run, so Alice's key
    to Bob differs from her key to Carol, and from her key to Bob after a reconnect."""
    with running_server() as server, core_clients(server.port, "Bob", "Carol"):
        keys = []
        for _ in range(2):
            alice = ScriptedMember(server.port, "Alice")
            alice.join()
            keys += [alice.peer(name).verified.channel.send_key for name in ("Bob", "Carol")]
            alice.close()
    assert len(set(keys)) == 4


def test_fixed_iv__the_same_text_never_gets_the_same_nonce_or_ciphertext():
    with running_server() as server, recording_relay(server.port) as wire, \
            core_clients(wire.port, "Alice", "Bob") as (alice, bob):
        for _ in range(3):
            alice.session.send_text("same words")
        for _ in range(3):
            bob.wait_message("same words")
        records = records_from(bytes(wire.connections[0].to_server))
    texts = [sealed for _, sealed in records if len(sealed) == len(records[-1][1])][-3:]
    assert len({counter for counter, _ in records}) == len(records)
    for a, b in combinations(texts, 2):
        assert a[:-TAG_BYTES] != b[:-TAG_BYTES] and a[-TAG_BYTES:] != b[-TAG_BYTES:]


# The pycrypto documentation example the original copied its key and IV from.
ORIGINAL_KEY_AND_IV = ["This is a key123", "This is an IV456"]


@pytest.mark.parametrize("path", PROJECT_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_fixed_key__no_key_or_iv_is_written_in_the_code(path):
    text = path.read_text(encoding="utf-8")
    for literal in ORIGINAL_KEY_AND_IV:
        assert literal not in text
    for node in ast.walk(ast.parse(text, path.name)):
        if isinstance(node, ast.Constant) and isinstance(node.value, bytes) and len(node.value) in (12, 16, 24, 32):
            # Labels such as RFC 9382's b"ConfirmationKeys" are words; a key is not.
            assert node.value.isascii() and node.value.decode().isprintable(), \
                f"{path.name}:{node.lineno}: key-sized bytes literal"
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and path.name != "crypto_utils.py":
            assert not re.fullmatch(r"[0-9a-fA-F]{24,64}", node.value), f"{path.name}:{node.lineno}: hex key"
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "AES.new":
            # pycryptodome picks a random 16-byte nonce when none is given; ours are explicit.
            assert "nonce" in {k.arg for k in node.keywords}, f"{path.name}:{node.lineno}: AES.new without nonce"


# -- server-side decryption ---------------------------------------------------------------------------

KEY_HANDLING = {"seal", "open_sealed", "passphrase_to_w", "scrypt_key", "hkdf_sha256", "spake2_finish",
                "channel_keys", "AES", "scrypt", "HKDF", "decrypt", "decrypt_and_verify", "crypto_utils"}


@pytest.mark.parametrize("module", RELAY_SOURCES)
def test_server_side_decryption__the_relay_code_has_no_key_handling(module):
    names = set()
    for node in ast.walk(ast.parse((ROOT / module).read_text(encoding="utf-8"), module)):
        if isinstance(node, ast.ImportFrom):
            assert not (node.module or "").startswith(("Crypto", "crypto_utils", "hashlib", "hmac", "ssl")), \
                f"{module} imports {node.module}"
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            assert not any(alias.name.startswith(("Crypto", "crypto_utils", "hashlib", "hmac", "ssl"))
                           for alias in node.names)
        elif isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
    assert not names & KEY_HANDLING


def reachable_bytes_and_text(root: object) -> tuple[list[bytes], list[str]]:
    """Every bytes and str value reachable from ``root``'s object graph, and from the
    local variables of every thread running relay code."""
    relay_files = {str(ROOT / name) for name in RELAY_SOURCES}
    roots: list[object] = [root]
    for frame in sys._current_frames().values():
        stack = []
        while frame is not None:
            stack.append(frame)
            frame = frame.f_back
        if any(f.f_code.co_filename in relay_files or f.f_code.co_filename.endswith("socketserver.py")
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


def test_server_side_decryption__the_relay_holds_nothing_that_decrypts():
    text = "the relay must not read this"
    with running_server() as server:
        bob = CoreClient(server.port, "Bob")
        bob.join()
        alice = ScriptedMember(server.port, "Alice")
        alice.join()
        bob.wait_members("Alice")
        channel = alice.peer("Bob").verified.channel
        assert alice.core.send_text(text)
        alice.pump(lambda: True, "the send")
        bob.wait_message(text)
        held_bytes, held_text = reachable_bytes_and_text(server)
        bob.close()
        alice.close()
    secrets = {"passphrase": PASSPHRASE.encode(), "text": text.encode(),
               "w": crypto_utils.passphrase_to_w(PASSPHRASE).to_bytes(32, "big"),
               "Alice's key to Bob": channel.send_key, "Bob's key to Alice": channel.receive_key}
    assert any(alice.core.my_id in value for value in held_bytes), "the walk did not reach the registry"
    for name, secret in secrets.items():
        assert not any(secret in value for value in held_bytes), f"the relay holds {name}"
    assert not any(PASSPHRASE in value or text in value for value in held_text)


# -- no MAC -------------------------------------------------------------------------------------------

def test_no_mac__a_bit_flipped_in_flight_is_refused_not_shown():
    """CTR without a MAC lets anyone on the path edit a message: flipping one ciphertext
    bit turns "pay Mallory 100" into "pay Mallory 900". The tag refuses it."""
    text = "pay Mallory 100"
    flipped: list[bytes] = []

    def flip_the_amount(frame: protocol.Frame) -> bytes:
        if frame.type == FrameType.ROUTE and not flipped:
            routed = protocol.parse_routed(frame)
            kind, payload = peer_wire.split_body(routed.body)
            if kind == peer_wire.BodyKind.RECORD and len(payload) > 60:   # the text, not a keep-alive
                body = bytearray(routed.body)
                body[-TAG_BYTES - 3] ^= ord("1") ^ ord("9")      # "100" ends the plaintext: its first digit
                flipped.append(bytes(body))
                return protocol.encode_route(routed.member_id, bytes(body))
        return protocol.encode_frame(frame.type, frame.payload)

    with running_server() as server, recording_relay(server.port, tamper=flip_the_amount) as wire:
        bob = CoreClient(server.port, "Bob")
        bob.join()
        alice = ScriptedMember(wire.port, "Alice")
        alice.join()
        bob.wait_members("Alice")
        key = alice.peer("Bob").verified.channel.send_key
        alice.core.send_text(text)
        alice.core.send_text("after")
        alice.pump(lambda: True, "the sends")
        assert "failed authentication" in bob.wait_for(Notice, lambda e: "Dropped" in e.text).text
        bob.wait_message("after")
        assert bob.texts_seen() == ["after"]
        alice.close()
        bob.close()
    # Without the tag check, the edit would have worked:
    counter, sealed = peer_wire.parse_record(peer_wire.split_body(flipped[0])[1])
    unchecked = AES.new(key, AES.MODE_GCM, nonce=nonce_for(counter)).decrypt(sealed[:-TAG_BYTES])
    assert unchecked.endswith(b"pay Mallory 900")


# -- no framing ---------------------------------------------------------------------------------------

def test_no_framing__merged_and_split_writes_deliver_whole_messages():
    """The original read recv(1024) as one message. A member here writes several frames
    in one send, then one byte per send, then frames cut anywhere; the receiver sees
    every message whole and in order."""
    with running_server() as server:
        alice = CoreClient(server.port, "Alice")
        alice.join()
        mallory = ScriptedMember(server.port, "Mallory")
        mallory.join()
        alice.wait_members("Mallory")
        texts = [f"message {i}: " + "é" * (i * 37) for i in range(9)]
        for text in texts:
            mallory.core.send_text(text)
        stream = mallory.core.data_to_send()
        frames = frames_of(stream)
        encoded = [protocol.encode_frame(f.type, f.payload) for f in frames]
        mallory.sock.sendall(b"".join(encoded[:4]))                 # merged: four frames, one write
        for byte in encoded[4]:                                    # split: one byte per write
            mallory.sock.sendall(bytes([byte]))
        rest = b"".join(encoded[5:])
        for cut in range(0, len(rest), 97):                        # cut anywhere, mid-header too
            mallory.sock.sendall(rest[cut:cut + 97])
        shown = [alice.wait_for(ChatMessage).text for _ in texts]
        assert shown == texts
        assert not [e for e in alice.drain() if isinstance(e, Notice) and "Dropped" in e.text]
        alice.close()
        mallory.close()


def test_no_framing__a_burst_from_the_relay_arrives_message_by_message():
    """The relay joins queued frames into one write; a burst must still split right."""
    with running_server() as server, core_clients(server.port, "Alice", "Bob") as (alice, bob):
        texts = [f"burst {i} " + "ü" * (i % 50) for i in range(200)]
        for text in texts:
            alice.session.send_text(text)
        assert [bob.wait_for(ChatMessage).text for _ in texts] == texts


# -- 127.0.1.1 -----------------------------------------------------------------------------------------

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
        pytest.skip("this machine has no LAN address (test_two_hosts.py covers a namespace that has)")
    with server_process("--host", "0.0.0.0") as (server, port):
        announced = server.expect(rf"Secure X server on ([\d.]+):{port}").group(1)
    assert announced in lan_here


# -- unenforced member limit --------------------------------------------------------------------------

def test_member_limit__the_sixth_is_refused_at_once_and_a_place_frees_up():
    with running_server(max_pending_per_address=8) as server, \
            core_clients(server.port, "A", "B", "C", "D", "E") as five:
        sixth = CoreClient(server.port, "Frank").start()
        closed = sixth.wait_for(Closed)
        assert isinstance(closed.error, RoomFullError) and "full" in closed.reason
        late = RawConnection(server.port)       # refused before anything else, not left hanging
        assert close_reason(late.read_until_closed()) == CloseReason.FULL
        late.close()
        assert server.registry.member_count == 5
        five[0].close()
        five[1].wait_for(MemberLeft)
        with core_clients(server.port, "Frank") as (frank,):
            five[1].session.send_text("welcome")
            frank.wait_message("welcome")


# -- broken pipe on quit ---------------------------------------------------------------------------------

def test_broken_pipe__quitting_or_dying_members_never_break_the_room():
    with server_process() as (server, port), \
            core_clients(port, "Alice", "Dave") as (alice, dave), \
            cli_client(port, "Bob") as bob, cli_client(port, "Carol") as carol:
        alice.wait_members("Bob", "Carol", "Dave")
        bob.send_line("{quit}")
        assert bob.wait() == 0
        alice.wait_for(MemberLeft, lambda e: e.member.name == "Bob")
        carol.proc.send_signal(signal.SIGKILL)
        carol.wait()
        # Straight away, before the relay has noticed: it writes into a dead socket.
        for i in range(20):
            alice.session.send_text(f"still here {i}")
        for i in range(20):
            dave.wait_message(f"still here {i}")
        alice.wait_for(MemberLeft, lambda e: e.member.name == "Carol")
        dave.session.send_text("and so am I")
        alice.wait_message("and so am I")
        output = server.output
    assert "Traceback" not in output and "Broken pipe" not in output
    assert "Traceback" not in bob.output


# -- lost long messages ---------------------------------------------------------------------------------

def test_lost_long_messages__16000_emoji_cross_the_terminal_client_intact():
    emoji = "😀" * 16_000
    with running_server() as server, cli_client(server.port, "Alice") as alice, \
            cli_client(server.port, "Bob") as bob:
        alice.expect(r"\* Bob joined")
        alice.send_line(emoji)
        received = bob.expect(r"^\[\d\d:\d\d:\d\d\] Alice: (😀+)$", timeout=20).group(1)
        assert received == emoji
        bob.send_line("🎉" * 16_000 + " ok")
        assert alice.expect(r"Bob: (🎉+) ok$", timeout=20).group(1) == "🎉" * 16_000


# -- crash on non-ASCII text ------------------------------------------------------------------------------

def test_non_ascii__names_texts_and_passphrase_in_any_script():
    """Names, messages and a passphrase typed in two Unicode forms (NFC on one keyboard,
    NFD on another) give one room and intact text both ways."""
    nfc = "Crème-brûlée-Straße-ключ-鍵-🔑"
    nfd = "Cre\u0300me-bru\u0302le\u0301e-Straße-ключ-鍵-🔑"
    assert nfc != nfd
    hello, answer = "Γειά σου! こんにちは 👋 مرحبا", "שלום — नमस्ते — e\u0301 — 🇫🇷"
    with running_server() as server, cli_client(server.port, "Zoë", passphrase=nfc) as zoe, \
            cli_client(server.port, "李雷", passphrase=nfd) as lei:
        zoe.expect(r"\* 李雷 joined")
        lei.expect(r"\* In the room \(2/5\): 李雷 \(you\) .*, Zoë ")
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
    with running_server() as server:
        alice = CoreClient(server.port, "Alice")
        alice.join()
        mallory = ScriptedMember(server.port, "Mallory")
        mallory.join()
        peer = mallory.peer("Alice")
        header = peer_wire.encode_text(peer_wire.Text(0, 0, 0, (), ""))
        latin1 = header + b"caf\xe9 \xff\xfe"                     # Latin-1, not UTF-8, sealed properly
        mallory.core._route(peer.member_id, peer.verified.channel.seal_record(latin1))
        mallory.core.next_msg_no = 1
        mallory.core.send_text("café")
        mallory.pump(lambda: True, "the sends")
        assert alice.wait_for(ChatMessage).text == "café"
        notices = [e.text for e in alice.seen if isinstance(e, Notice)]
        assert any("malformed message from Mallory" in n for n in notices)
        alice.close()
        mallory.close()
