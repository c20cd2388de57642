"""The command-line contract scripts rely on: flags, SECUREX_PASSPHRASE, one line per
message, "joined"/"left", "full", the wrong-passphrase message and exit statuses."""

from __future__ import annotations

import re
import signal

import pytest

from securex.session.runner import MemberJoined, MemberLeft
from securex.errors import EXIT_FULL, EXIT_UNREACHABLE, EXIT_USAGE, EXIT_WRONG_PASSPHRASE
from helpers import (PASSPHRASE, Process, cli_client, core_clients, python_env,
                     running_server, server_process)


@pytest.fixture
def server():
    with running_server() as srv:
        yield srv


def test_two_terminal_clients_chat_both_ways(server):
    with cli_client(server.port, "Alice") as alice, cli_client(server.port, "Bob") as bob:
        alice.expect(r"\* Bob joined")
        alice.send_line("hello Bob")
        bob.expect(r"^\[\d\d:\d\d:\d\d\] Alice: hello Bob$")
        bob.send_line("hi Alice, ça va? 😀")
        alice.expect(r"^\[\d\d:\d\d:\d\d\] Bob: hi Alice, ça va\? 😀$")


def test_fingerprint_is_printed_and_matches(server):
    with cli_client(server.port, "Alice") as alice, cli_client(server.port, "Bob") as bob:
        pattern = r"fingerprint: ((?:[A-Z2-7]{4}-){3}[A-Z2-7]{4})"
        assert alice.expect(pattern).group(1) == bob.expect(pattern).group(1)


@pytest.mark.parametrize("how", ["<quit>", "{quit}", "/quit", "end of input", "Ctrl+C", "SIGTERM"])
def test_every_way_of_leaving_is_clean(server, how):
    with core_clients(server.port, "Alice") as (alice,), cli_client(server.port, "Bob") as bob:
        alice.wait_for(MemberJoined, lambda e: e.name == "Bob")
        if how == "end of input":
            bob.close_stdin()
        elif how == "Ctrl+C":
            bob.proc.send_signal(signal.SIGINT)
        elif how == "SIGTERM":
            bob.proc.send_signal(signal.SIGTERM)
        else:
            bob.send_line(how)
        assert bob.wait() == 0
        alice.wait_for(MemberLeft, lambda e: e.name == "Bob")
        assert "Traceback" not in bob.output


def test_sixth_member_is_refused_and_the_five_keep_chatting():
    with running_server(max_clients=5) as server, \
            core_clients(server.port, "A", "B", "C", "D", "E") as five:
        with cli_client(server.port, "Frank", join=False) as frank:
            assert frank.wait() == EXIT_FULL
            frank.expect(r"full", stderr=True)
        five[0].session.send_text("still here")
        for member in five[1:]:
            member.wait_message("still here")


def test_wrong_passphrase_is_refused_and_reaches_nobody(server):
    with core_clients(server.port, "Alice") as (alice,):
        with cli_client(server.port, "Mallory", "not the room passphrase", join=False) as mallory:
            assert mallory.wait() == EXIT_WRONG_PASSPHRASE
            mallory.expect(r"(?i)wrong passphrase", stderr=True)
        assert server.registry.member_count == 1
        assert not any(isinstance(e, MemberJoined) for e in alice.seen)


def test_passphrase_file(server, tmp_path):
    secret = tmp_path / "room.txt"
    secret.write_text(PASSPHRASE + "\n", encoding="utf-8")
    with core_clients(server.port, "Alice") as (alice,):
        bob = Process(["client.py", "--cli", "--host", "127.0.0.1", "--port", str(server.port),
                       "--name", "Bob", "--passphrase-file", str(secret)], python_env())
        try:
            bob.expect("Joined the room")
            alice.wait_for(MemberJoined, lambda e: e.name == "Bob")
        finally:
            bob.kill()


def test_missing_passphrase_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.txt"
    process = Process(["client.py", "--cli", "--host", "127.0.0.1", "--name", "Bob",
                       "--passphrase-file", str(missing)], python_env())
    assert process.wait() == EXIT_USAGE
    process.expect(r"Cannot read the passphrase file .*nope\.txt", stderr=True)
    assert "Traceback" not in process.output


def test_no_passphrase_without_a_terminal_says_how_to_give_one():
    process = Process(["client.py", "--cli", "--host", "127.0.0.1", "--name", "Bob"], python_env())
    process.close_stdin()
    assert process.wait() == EXIT_USAGE
    process.expect(r"SECUREX_PASSPHRASE", stderr=True)


def test_unreachable_server_is_a_clear_error():
    with running_server() as server:
        port = server.port          # a port that was just freed: nothing listens there now
    with cli_client(port, "Alice", join=False) as alice:
        assert alice.wait() == EXIT_UNREACHABLE
        alice.expect(rf"Nothing is listening at 127\.0\.0\.1:{port}", stderr=True)
        assert "Traceback" not in alice.output


def test_new_passphrase_is_fresh_and_long_enough():
    first, second = (Process(["client.py", "--new-passphrase"], python_env()) for _ in range(2))
    assert first.wait() == 0 and second.wait() == 0
    words = first.lines[0].split("-")
    assert re.fullmatch(r"([bdfghjklmnprstvz][aiou]){2}[bdfghjklmnprstvz]", words[0])
    assert len(words) * 16 >= 80
    assert first.lines[0] != second.lines[0]


def test_server_announces_address_and_client_command():
    with server_process() as (server, port):
        server.expect(rf"^Secure X server on 127\.0\.0\.1:{port} \(up to 5 members\)$")
        server.expect(rf"python client\.py --host 127\.0\.0\.1 --port {port}")


def test_busy_port_is_one_line_not_a_traceback():
    with server_process() as (_, port):
        second = Process(["server.py", "--host", "127.0.0.1", "--port", str(port)], python_env())
        assert second.wait() == 1
        expected = (f"Error: port {port} is already in use (another server running?). "
                    "Pick another with --port.")
        assert second.errors == [expected]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_server_shutdown_tells_every_client(signum):
    with server_process() as (server, port), \
            cli_client(port, "Alice") as alice, cli_client(port, "Bob") as bob:
        alice.expect(r"\* Bob joined")
        server.proc.send_signal(signum)
        assert server.wait() == 0
        for client in (alice, bob):
            assert client.wait() == 0
            client.expect(r"server shut down")
        assert "Traceback" not in server.output + alice.output + bob.output
