"""The terminal client's contract, which scripts rely on (README, "Terminal contract"):
flags, where the passphrase comes from, one line per event, the shapes of member
lines and of the client's own lines, and the exit statuses 0-5. Real processes
(``client.py --cli``, ``server.py``) over loopback."""

from __future__ import annotations

import json
import os
import re
import signal
import socket

import pytest

from helpers import (PASSPHRASE, Process, cli_client, core_clients, python_env,
                     running_server, server_process, wait_until)
from securex.errors import EXIT_ERROR, EXIT_FULL, EXIT_UNREACHABLE, EXIT_USAGE, EXIT_WRONG_PASSPHRASE
from securex.events import MemberJoined, MemberLeft

LINE = r"^\[\d\d:\d\d:\d\d\] "


@pytest.fixture
def server():
    with running_server() as srv:
        yield srv


def cli(port: int, name: str, *args: str, **env: str) -> Process:
    return Process(["client.py", "--cli", "--host", "127.0.0.1", "--port", str(port), "--name", name, *args],
                   python_env(**env))


def test_two_terminal_clients_chat_both_ways_one_line_per_message(server):
    with cli_client(server.port, "Alice") as alice, cli_client(server.port, "Bob") as bob:
        alice.expect(LINE + r"\* Bob joined \([A-Z2-7 ]{19}\)$")
        alice.send_line("hello Bob")
        bob.expect(LINE + r"Alice: hello Bob$")
        alice.expect(LINE + r"Alice: hello Bob$")          # your own lines look like everyone's
        bob.send_line("hi Alice, ça va? 😀\u202e")
        alice.expect(LINE + "Bob: hi Alice, ça va\\? 😀\ufffd$")


def test_newlines_in_a_message_are_folded_into_one_line(server):
    with core_clients(server.port, "Alice") as (alice,), cli_client(server.port, "Bob") as bob:
        alice.wait_members("Bob")
        alice.session.send_text("line one\nline two\r\nline three")
        bob.expect(LINE + r"Alice: line one ⏎ line two ⏎ line three$")


def test_safety_codes_are_printed_on_joining_and_by_who_and_agree(server):
    with cli_client(server.port, "Alice") as alice, cli_client(server.port, "Bob") as bob:
        code = r"([A-Z2-7]{4}(?: [A-Z2-7]{4}){3})"
        alice_code = alice.expect(r"\* Joined the room at 127\.0\.0\.1:\d+ \(AES-256-GCM\)\. Your safety code: "
                                  + code).group(1)
        bob.expect(LINE + r"\* In the room \(2/5\): Bob \(you\) [A-Z2-7 ]+, Alice " + re.escape(alice_code) + "$")
        bob.send_line("/who")
        bob.expect(r"\* In the room \(2/5\): Bob \(you\) .*, Alice " + re.escape(alice_code))


@pytest.mark.parametrize("how", ["<quit>", "{quit}", "/quit", "end of input", "Ctrl+C", "SIGTERM"])
def test_every_way_of_leaving_is_clean_and_the_others_see_a_goodbye(server, how):
    with core_clients(server.port, "Alice") as (alice,), cli_client(server.port, "Bob") as bob:
        alice.wait_members("Bob")
        if how == "end of input":
            bob.close_stdin()
        elif how == "Ctrl+C":
            bob.proc.send_signal(signal.SIGINT)
        elif how == "SIGTERM":
            bob.proc.send_signal(signal.SIGTERM)
        else:
            bob.send_line(how)
        assert bob.wait() == 0
        left = alice.wait_for(MemberLeft)
        assert left.member.name == "Bob" and not left.dropped
        assert "Traceback" not in bob.output
        assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] \* You left the room\.", bob.lines[-1]), bob.lines[-1]
        assert not [line for line in bob.lines if "Reconnecting" in line or "disconnected you" in line]


def test_quitting_never_looks_like_a_lost_connection_first(server):
    """Version 1 printed "The server disconnected you: Goodbye. Reconnecting" before
    "You left the room" in about one quit in fifteen."""
    with core_clients(server.port, "Alice") as (alice,):
        for attempt in range(12):
            with cli_client(server.port, f"Bob{attempt}") as bob:
                alice.wait_members(f"Bob{attempt}")
                bob.send_line("<quit>")
                assert bob.wait() == 0
                assert not [line for line in bob.lines if "!" in line.split("] ", 1)[-1][:2]], bob.lines
                alice.wait_members()


def test_ctrl_c_works_even_when_started_with_sigint_ignored(server):
    """A background job or nohup starts the client with SIGINT ignored; Python's
    default handler is not installed then, so the client installs its own."""
    with core_clients(server.port, "Alice") as (alice,):
        bob = Process(["client.py", "--cli", "--host", "127.0.0.1", "--port", str(server.port), "--name", "Bob"],
                      python_env(SECUREX_PASSPHRASE=PASSPHRASE),
                      preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        try:
            bob.expect(r"\* Joined the room")
            alice.wait_members("Bob")
            bob.proc.send_signal(signal.SIGINT)
            assert bob.wait() == 0
            assert not alice.wait_for(MemberLeft).dropped
        finally:
            bob.kill()


def test_a_second_ctrl_c_ends_the_client_at_once():
    """A relay that accepts and then says nothing holds the first Ctrl+C's goodbye;
    the second ends the program there and then."""
    with socket.create_server(("127.0.0.1", 0)) as black_hole:
        bob = cli(black_hole.getsockname()[1], "Bob", SECUREX_PASSPHRASE=PASSPHRASE)
        connection, _ = black_hole.accept()
        try:
            bob.proc.send_signal(signal.SIGINT)
            bob.expect(r"\* Leaving the room\.\.\. \(Ctrl\+C again to quit at once\)")
            bob.proc.send_signal(signal.SIGINT)
            # 130, not the 0 of a goodbye that got through nor the 5 of giving up on it.
            assert bob.wait() == 128 + signal.SIGINT
        finally:
            connection.close()
            bob.kill()


def test_the_sixth_member_is_refused_as_full_and_the_five_keep_chatting():
    with running_server(max_clients=5, max_pending_per_address=8) as server, \
            core_clients(server.port, "A", "B", "C", "D", "E") as five:
        with cli_client(server.port, "Frank", join=False) as frank:
            assert frank.wait() == EXIT_FULL
            frank.expect(r"full", stderr=True)
        five[0].session.send_text("still here")
        for member in five[1:]:
            member.wait_message("still here")


def test_a_wrong_passphrase_is_refused_with_exit_4_and_reaches_nobody(server):
    with core_clients(server.port, "Alice", "Bob") as (alice, _bob):
        with cli_client(server.port, "Mallory", passphrase="not the room passphrase", join=False) as mallory:
            assert mallory.wait() == EXIT_WRONG_PASSPHRASE
            mallory.expect(r"^Error: Wrong passphrase: it does not match the 2 members present", stderr=True)
            mallory.expect(r"^To join anyway, run again with --join-anyway\.$", stderr=True)
        assert not [e for e in alice.drain() if isinstance(e, MemberJoined) and e.member.name == "Mallory"]
        assert alice.members_now() == ["Bob"]
        # Insisting gets it a place alone: Alice and Bob still see nothing of it.
        with cli_client(server.port, "Mallory", "--join-anyway", passphrase="not the room passphrase") as mallory:
            mallory.expect(r"! You joined anyway: your passphrase matches none of the 2 members present")
            mallory.send_line("can anyone read this?")
            mallory.expect(LINE + r"Mallory: can anyone read this\?$")
        assert "can anyone read this?" not in alice.texts_seen()
        assert alice.members_now() == ["Bob"]


def test_a_second_terminal_joining_as_the_same_member_is_refused_and_the_first_stays(server, tmp_path):
    """Same name, same identity key: the room would take the second for the first one
    reconnecting and drop the first. It is refused before it connects."""
    same_identity = {"SECUREX_PASSPHRASE": PASSPHRASE, "SECUREX_CONFIG_DIR": str(tmp_path / "bob")}
    with core_clients(server.port, "Alice") as (alice,):
        first = cli(server.port, "Bob", **same_identity)
        try:
            first.expect(r"\* Joined the room")
            second = cli(server.port, "Bob", **same_identity)
            assert second.wait() == EXIT_ERROR
            second.expect(r"^Error: Secure X is already running as Bob on this computer \(another window or "
                          r"terminal\)\. Use that one, or join under another name\.$", stderr=True)
            first.send_line("still the one and only Bob")
            alice.wait_message("still the one and only Bob")
            assert alice.members_now() == ["Bob"]
        finally:
            first.kill()
        third = cli(server.port, "Bob", **same_identity)     # the first has gone: the name is free again
        try:
            third.expect(r"\* Joined the room")
        finally:
            third.kill()


def test_a_safety_code_first_seen_is_remembered_at_once_not_when_the_client_exits(server, tmp_path):
    """New-user finding: known.json was written only when a connection ended, so a
    client killed (or a machine that lost power) forgot every code it had just met."""
    config = tmp_path / "alice"
    alice = cli(server.port, "Alice", SECUREX_PASSPHRASE=PASSPHRASE, SECUREX_CONFIG_DIR=str(config))
    try:
        alice.expect(r"\* Joined the room")
        with core_clients(server.port, "Bob"):
            alice.expect(r"\* Bob joined")
            wait_until(lambda: "bob" in json.loads((config / "known.json").read_text() or "{}")
                       if (config / "known.json").exists() else False, "Bob's code on disk")
            alice.proc.send_signal(signal.SIGKILL)
            alice.wait()
    finally:
        alice.kill()
    assert list(json.loads((config / "known.json").read_text())) == ["bob"]


def test_a_different_passphrase_against_one_lone_member_is_a_tie_not_a_verdict(server):
    with core_clients(server.port, "Alice"), cli_client(server.port, "Bob", passphrase="a different passphrase") as bob:
        bob.expect(r"! The member present has a different passphrase")
        assert bob.proc.poll() is None


def test_an_explicit_passphrase_file_wins_over_the_environment(server, tmp_path):
    secret = tmp_path / "room.txt"
    secret.write_text(PASSPHRASE + "\n", encoding="utf-8")
    secret.chmod(0o600)
    with core_clients(server.port, "Alice") as (alice,), \
            cli_client(server.port, "Bob", "--passphrase-file", str(secret), passphrase="the wrong one") as bob:
        alice.wait_members("Bob")
        assert not [line for line in bob.errors if "Warning" in line]


def test_the_passphrase_is_scrubbed_from_the_process_environment(server):
    """It used to stay readable in /proc/PID/environ, and in every child, all session long."""
    with core_clients(server.port, "Alice") as (alice,), cli_client(server.port, "Bob") as bob:
        alice.wait_members("Bob")
        with open(f"/proc/{bob.proc.pid}/environ", "rb") as environ:
            assert PASSPHRASE.encode() not in environ.read()


def test_the_passphrase_leaves_the_environment_before_anything_else_runs(server):
    probe = ("import os, runpy, sys; sys.argv = ['client.py', '--new-passphrase'];"
             "import client; args = client.parse_args(['--cli']);"
             "print(client.passphrase_from_args(args)); print(os.environ.get('SECUREX_PASSPHRASE'))")
    process = Process(["-c", probe], python_env(SECUREX_PASSPHRASE="hunter2-hunter2-hunter2"))
    assert process.wait() == 0
    assert process.lines == ["hunter2-hunter2-hunter2", "None"]


def test_a_passphrase_file_others_can_read_draws_a_warning(server, tmp_path):
    secret = tmp_path / "room.txt"
    secret.write_text(PASSPHRASE, encoding="utf-8")
    secret.chmod(0o644)
    with core_clients(server.port, "Alice"):
        bob = cli(server.port, "Bob", "--passphrase-file", str(secret))
        try:
            bob.expect(r"can be read by other users of this computer; make it private with: chmod 600",
                       stderr=True)
        finally:
            bob.kill()


def test_a_missing_passphrase_file_is_an_error_even_with_the_variable_set(tmp_path):
    missing = tmp_path / "nope.txt"
    process = cli(1, "Bob", "--passphrase-file", str(missing), SECUREX_PASSPHRASE=PASSPHRASE)
    assert process.wait() == EXIT_USAGE
    process.expect(r"Cannot read the passphrase file .*nope\.txt", stderr=True)
    assert "Traceback" not in process.output


def test_no_passphrase_without_a_terminal_says_how_to_give_one():
    process = cli(1, "Bob")
    process.close_stdin()
    assert process.wait() == EXIT_USAGE
    process.expect(r"SECUREX_PASSPHRASE", stderr=True)


def test_the_address_may_carry_the_port_as_discovery_prints_it(server):
    with core_clients(server.port, "Alice") as (alice,):
        bob = Process(["client.py", "--cli", "--host", f"127.0.0.1:{server.port}", "--name", "Bob"],
                      python_env(SECUREX_PASSPHRASE=PASSPHRASE))
        try:
            bob.expect(r"\* Joined the room at 127\.0\.0\.1:\d+")
            alice.wait_members("Bob")
        finally:
            bob.kill()
    clash = Process(["client.py", "--cli", "--host", "127.0.0.1:5093", "--port", "5094", "--name", "Bob"],
                    python_env(SECUREX_PASSPHRASE=PASSPHRASE))
    assert clash.wait() == EXIT_USAGE
    clash.expect(r"Two ports given: 127\.0\.0\.1:5093 and --port 5094", stderr=True)


@pytest.mark.parametrize("flag", ["--accept-files", "--downloads"])
def test_a_folder_for_files_that_is_a_file_is_refused_before_joining(tmp_path, flag):
    """New-user finding: it joined, then refused every offer with "File exists", and
    the sender heard that the disk was full."""
    not_a_folder = tmp_path / "one.bin"
    not_a_folder.write_bytes(b"x")
    process = Process(["client.py", "--cli", "--host", "127.0.0.1", "--name", "Bob", flag, str(not_a_folder)],
                      python_env(SECUREX_PASSPHRASE=PASSPHRASE))
    assert process.wait() == EXIT_USAGE
    process.expect(re.escape(f"{flag} {not_a_folder}: that is a file, not a folder"), stderr=True)


def test_a_folder_for_files_that_cannot_be_looked_at_is_a_message_not_a_traceback(tmp_path):
    """Review finding: a folder under one that may not be entered (here, a name too long
    to look up) raised out of the check as a traceback."""
    unreachable = tmp_path / ("x" * 300) / "inbox"
    process = Process(["client.py", "--cli", "--host", "127.0.0.1", "--name", "Bob", "--downloads", str(unreachable)],
                      python_env(SECUREX_PASSPHRASE=PASSPHRASE))
    assert process.wait() == EXIT_USAGE
    process.expect(re.escape(f"--downloads {unreachable}: it cannot be reached (file name too long)"), stderr=True)
    assert not [line for line in process.errors if "Traceback" in line]


@pytest.mark.parametrize("name, problem", [("", "is empty"), ("! Message not sent", "cannot start with")])
def test_a_name_that_is_empty_or_could_pass_for_the_clients_own_lines_is_refused(name, problem):
    process = cli(1, name, SECUREX_PASSPHRASE=PASSPHRASE)
    assert process.wait() == EXIT_USAGE
    process.expect(r"^securex: error: --name .*" + re.escape(problem), stderr=True)     # alike (a tester's finding)


def test_an_unreachable_server_is_a_clear_error_with_exit_5():
    with running_server() as server:
        port = server.port          # a port that was just freed: nothing listens there now
    with cli_client(port, "Alice", join=False) as alice:
        assert alice.wait() == EXIT_UNREACHABLE
        alice.expect(rf"Nothing is listening at 127\.0\.0\.1:{port}", stderr=True)
        assert "Traceback" not in alice.output


def test_a_lost_link_without_reconnecting_exits_5():
    with server_process() as (server, port), cli_client(port, "Alice", "--no-reconnect") as alice:
        server.proc.send_signal(signal.SIGKILL)
        assert alice.wait() == EXIT_UNREACHABLE
        alice.expect(r"^Error: The connection to 127\.0\.0\.1:\d+ was lost", stderr=True)


def test_unknown_commands_are_not_sent_and_help_lists_the_commands(server):
    with core_clients(server.port, "Alice") as (alice,), cli_client(server.port, "Bob") as bob:
        alice.wait_members("Bob")
        bob.send_line("/shrug")
        bob.expect(LINE + r"! Unknown command /shrug: nothing was sent")
        bob.send_line("/me waves")
        bob.expect(LINE + r"! /me is not supported")
        bob.send_line("/help")
        bob.expect(LINE + r"\* /who ")
        bob.send_line("//shrug")
        alice.wait_message("/shrug")
        assert alice.texts_seen() == ["/shrug"]


def test_new_passphrase_is_fresh_and_long_enough():
    first, second = (Process(["client.py", "--new-passphrase"], python_env()) for _ in range(2))
    assert first.wait() == 0 and second.wait() == 0
    words = first.lines[0].split("-")
    assert re.fullmatch(r"([bdfghjklmnprstvz][aiou]){2}[bdfghjklmnprstvz]", words[0])
    assert len(words) * 16 >= 80
    assert first.lines[0] != second.lines[0]


def test_help_documents_commands_quit_words_statuses_theme_and_settings():
    process = Process(["client.py", "--help"], python_env())
    assert process.wait() == 0
    text = "\n".join(process.lines)
    for needle in ("/who", "/help", "<quit>", "exit statuses", "4 wrong passphrase", "SECUREX_THEME",
                   "~/.config/securex", "--host", "fill in the connect dialog", "/trust NAME", "HOST:PORT"):
        assert needle in text, needle


def test_the_server_announces_its_address_and_the_client_command():
    with server_process() as (server, port):
        server.expect(rf"^Secure X server on 127\.0\.0\.1:{port} \(up to 5 members\)$")
        server.expect(rf"securex --host 127\.0\.0\.1 --port {port}")


def test_a_busy_port_is_one_line_not_a_traceback():
    with server_process() as (_, port):
        second = Process(["server.py", "--host", "127.0.0.1", "--port", str(port)], python_env())
        assert second.wait() == 1
        assert second.errors == [f"Error: port {port} is already in use (another server running?). "
                                 "Pick another with --port."]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_server_shutdown_tells_every_client_and_everyone_exits_0(signum):
    with server_process() as (server, port), cli_client(port, "Alice") as alice, cli_client(port, "Bob") as bob:
        alice.expect(r"\* Bob joined")
        server.proc.send_signal(signum)
        assert server.wait() == 0
        for client in (alice, bob):
            assert client.wait() == 0
            client.expect(r"^\[\d\d:\d\d:\d\d\] \* The server shut down\.$")
        assert "Traceback" not in server.output + alice.output + bob.output


def test_no_module_anywhere_prints_a_traceback_for_a_missing_pycryptodome(tmp_path):
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nclass Block:\n    def find_spec(self, name, *a):\n"
                       "        if name == 'Crypto' or name.startswith('Crypto.'):\n"
                       "            raise ModuleNotFoundError(\"No module named 'Crypto'\", name=name)\n"
                       "sys.meta_path.insert(0, Block())\n")
    env = python_env(PYTHONPATH=str(tmp_path), SECUREX_PASSPHRASE=PASSPHRASE)
    for args in (["client.py", "--cli", "--host", "127.0.0.1", "--name", "Bob"], ["client.py", "--new-passphrase"]):
        process = Process(args, env)
        assert process.wait() == 1
        assert "Traceback" not in process.output
        process.expect(r"needs pycryptodome.*pip install", stderr=True)
    assert os.environ.get("SECUREX_PASSPHRASE") is None
