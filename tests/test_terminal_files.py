"""Files from the terminal client, as a script sees them: ``/send PATH``, an offer
line with an id, ``/accept ID``, ``--accept-files DIR``, a "Received" line with the
name, size, sender and where it was saved, a "Delivered" line per recipient, and
(stdout not a terminal) only start and end lines. Real processes over loopback."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess

import pytest

from helpers import cli_client, running_server, server_process, tiny_tmpfs
from securex.session.files import PREPARING_NOTE_BYTES
from securex.text import human_size

LINE = r"^\[\d\d:\d\d:\d\d\] "


@pytest.fixture
def server():
    with running_server() as srv:
        yield srv


def test_a_script_receives_every_offer_into_a_folder_and_says_where(server, tmp_path):
    source = tmp_path / "report 2026.pdf"
    source.write_bytes(os.urandom(700_000))
    inbox = tmp_path / "inbox"
    with cli_client(server.port, "Bob", "--accept-files", str(inbox)) as bob, \
            cli_client(server.port, "Alice") as alice:
        bob.expect(r"Alice joined")
        alice.send_line(f"/send {source}")
        alice.expect(r"\* Offering report 2026\.pdf \(700\.0 kB\) to Bob, id [0-9a-f]{8}")
        bob.expect(LINE + r"\* Alice offers report 2026\.pdf \(700\.0 kB\), id [0-9a-f]{8}: accepting it into "
                   + re.escape(str(inbox)) + r" \(--accept-files\)$")
        saved = inbox / "report 2026.pdf"
        bob.expect(LINE + re.escape(f"* Received report 2026.pdf ({human_size(700_000)}) from Alice, saved to "
                                    f"{saved} (SHA-256 verified)."))
        alice.expect(LINE + r"\* Delivered report 2026\.pdf to Bob")
        # Two transfers of one name are told apart by their id (a tester's finding).
        bob.expect(LINE + r"\* Receiving report 2026\.pdf \(700\.0 kB\) from Alice, id [0-9a-f]{8}$")
        alice.expect(LINE + r"\* Sending report 2026\.pdf \(700\.0 kB\) to Bob, id [0-9a-f]{8}$")
        assert hashlib.sha256(saved.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
        # Not a terminal: one start line and the end line, no progress redrawn in place.
        receiving = [line for line in bob.lines if "report 2026.pdf" in line]
        assert len(receiving) == 3, receiving        # offered, receiving (start), received (end)
        assert not any("\r" in line or "\x1b" in line for line in bob.lines + alice.lines)


def test_a_large_file_is_said_to_be_prepared_while_it_is_hashed(server, tmp_path):
    """Hashing a large file takes seconds before the offer goes out: not in silence."""
    source = tmp_path / "disk image.iso"
    with source.open("wb") as sparse:
        sparse.truncate(PREPARING_NOTE_BYTES)
    with cli_client(server.port, "Bob") as bob, cli_client(server.port, "Alice") as alice:
        bob.expect(r"Alice joined")
        alice.send_line(f"/send {source}")
        alice.expect(LINE + re.escape(f"* Preparing disk image.iso ({human_size(PREPARING_NOTE_BYTES)}) to offer "
                                      "it: computing its SHA-256..."))
        alice.expect(LINE + r"\* Offering disk image\.iso \(100\.0 MB\) to Bob")
        assert not any("Preparing" in line for line in bob.lines)


def test_an_offer_too_big_for_the_disk_can_be_accepted_again_once_there_is_room(server, tmp_path):
    source = tmp_path / "scan.pdf"
    source.write_bytes(os.urandom(2_000_000))
    with tiny_tmpfs(tmp_path / "small") as small, cli_client(server.port, "Bob", "--downloads", str(small)) as bob, \
            cli_client(server.port, "Alice") as alice:
        bob.expect(r"Alice joined")
        alice.send_line(f"/send {source}")
        file_id = bob.expect(r"offers scan\.pdf \(2\.0 MB\), id ([0-9a-f]{8})").group(1)
        bob.send_line(f"/accept {file_id}")
        bob.expect(LINE + re.escape(f"! Not enough free space to save scan.pdf (2.0 MB) in {small}: ")
                   + r"[0-9.]+ (kB|MB) free\. " + re.escape(f"Once that is put right, /accept {file_id} again, "
                                                           f"or /decline {file_id}."))
        subprocess.run(["mount", "-o", "remount,size=8m", str(small)], check=True, timeout=10)
        bob.send_line(f"/accept {file_id}")
        bob.expect(re.escape(f"Received scan.pdf (2.0 MB) from Alice, saved to {small / 'scan.pdf'}"))
        alice.expect(LINE + r"\* Delivered scan\.pdf to Bob")


def test_a_person_accepts_an_offer_by_its_id(server, tmp_path):
    source = tmp_path / "notes.txt"
    source.write_text("meeting at noon\n")
    downloads = tmp_path / "downloads"
    with cli_client(server.port, "Bob", "--downloads", str(downloads)) as bob, \
            cli_client(server.port, "Alice") as alice:
        bob.expect(r"Alice joined")
        alice.send_line(f"/send {source}")
        offer = bob.expect(LINE + r"\* Alice offers notes\.txt \(16 bytes\), id ([0-9a-f]{8}): "
                                  r"/accept \1 or /decline \1")
        bob.send_line(f"/accept {offer.group(1)}")
        bob.expect(re.escape(f"Received notes.txt (16 bytes) from Alice, saved to {downloads / 'notes.txt'}"))
        assert (downloads / "notes.txt").read_text() == "meeting at noon\n"


def test_declining_tells_the_sender(server, tmp_path):
    source = tmp_path / "big.iso"
    source.write_bytes(b"x" * 1000)
    with cli_client(server.port, "Bob", "--downloads", str(tmp_path / "d")) as bob, \
            cli_client(server.port, "Alice") as alice:
        bob.expect(r"Alice joined")
        alice.send_line(f"/send {source}")
        offer = bob.expect(r"id ([0-9a-f]{8}): /accept")
        bob.send_line(f"/decline {offer.group(1)}")
        alice.expect(LINE + r"\* Bob declined big\.iso\.")   # a choice, not something gone wrong
        bob.expect(LINE + r"\* Declined big\.iso from Alice\.")
        assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("command, answer", [
    ("/send {missing}", r"! Cannot send .*missing\.bin: there is no such file\."),
    ("/send {folder}", r"! Cannot send .*: it is a folder"),
    ("/send", r"! /send needs a file: /send PATH"),
    ("/accept 12345678", r"! No file offer 12345678 is waiting"),
])
def test_bad_file_commands_get_a_clear_line_and_the_session_goes_on(server, tmp_path, command, answer):
    with cli_client(server.port, "Alice") as alice, cli_client(server.port, "Bob") as bob:
        alice.expect(r"Bob joined")
        alice.send_line(command.format(missing=tmp_path / "missing.bin", folder=tmp_path))
        alice.expect(LINE + answer)
        alice.send_line("still here")
        bob.expect(r"Alice: still here")
        assert "Traceback" not in alice.output


def test_an_offer_over_the_limit_is_refused_on_both_sides(server, tmp_path):
    source = tmp_path / "huge.bin"
    source.write_bytes(os.urandom(3000))
    with cli_client(server.port, "Bob", "--max-file-size", "2k", "--accept-files", str(tmp_path / "in")) as bob, \
            cli_client(server.port, "Alice") as alice:
        bob.expect(r"Alice joined")
        alice.send_line(f"/send {source}")
        bob.expect(r"! Refused huge\.bin from Alice: it is 3\.0 kB, over your limit of 2\.0 kB\.")
        alice.expect(r"! huge\.bin was not delivered to Bob: it is over their size limit\.")
        assert not (tmp_path / "in").exists() or not list((tmp_path / "in").iterdir())


def test_a_bad_max_file_size_is_a_usage_error(tmp_path):
    from helpers import Process, python_env

    process = Process(["client.py", "--cli", "--host", "127.0.0.1", "--max-file-size", "lots"], python_env())
    assert process.wait() == 2
    assert "is not a size; write it like 500M or 2G" in process.output


def test_what_the_server_shutting_down_stops_is_said_before_the_last_line(tmp_path):
    """Tester's finding: a transfer lost to the server shutting down went without a word in
    either terminal (the desktop's cards said so)."""
    source = tmp_path / "notes.txt"
    source.write_text("meeting at noon\n")
    with server_process() as (relay, port), cli_client(port, "Bob") as bob, cli_client(port, "Alice") as alice:
        bob.expect(r"Alice joined")
        alice.send_line(f"/send {source}")
        bob.expect(r"offers notes\.txt")
        relay.proc.send_signal(signal.SIGTERM)
        for client in (alice, bob):
            assert client.wait() == 0
        alice.expect(LINE + re.escape("! notes.txt did not reach Bob: the session ended."))
        bob.expect(LINE + re.escape("! The offer of notes.txt from Alice lapsed: the session ended."))
        for client in (alice, bob):
            assert client.lines[-1].endswith("* The server shut down.")
