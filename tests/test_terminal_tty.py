"""The terminal client as a person at a terminal uses it: stdin and stdout are a
pseudo-terminal, as in xterm or tmux. Incoming lines never land in the middle of
what you are typing, what you send is echoed with time and name, and a line of
any length is read whole (canonical mode would cut it at 4,095 characters)."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from helpers import PASSPHRASE, ROOT, WAIT, CoreClient, python_env, running_server
from securex.events import MemberLeft

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Terminal:
    """``client.py --cli`` on a pseudo-terminal; ``screen`` is everything it wrote."""

    def __init__(self, port: int, name: str | None) -> None:
        """``name`` None: it is asked for at the prompt."""
        self.master, slave = pty.openpty()
        os.set_blocking(self.master, False)
        env = python_env(SECUREX_PASSPHRASE=PASSPHRASE, TERM="xterm", COLUMNS="200", LINES="50")
        name_flag = ["--name", name] if name is not None else []
        self.proc = subprocess.Popen([sys.executable, "client.py", "--cli", "--host", "127.0.0.1", "--port",
                                      str(port), *name_flag], cwd=ROOT, env=env,
                                     stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                                     start_new_session=True)
        os.close(slave)
        self.screen = ""

    def read_until(self, pattern: str, timeout: float = WAIT) -> re.Match:
        regex = re.compile(pattern, re.DOTALL)
        deadline = time.monotonic() + timeout
        while not (match := regex.search(self.screen)):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {pattern!r} within {timeout} s; the screen shows:\n{self.screen[-2000:]!r}")
            readable, _, _ = select.select([self.master], [], [], min(remaining, 0.2))
            if readable:
                with contextlib.suppress(OSError):     # the child closed the terminal
                    self.screen += os.read(self.master, 65536).decode("utf-8", "replace")
        return match

    def type(self, text: str) -> None:
        data = text.encode()
        while data:
            try:
                data = data[os.write(self.master, data[:1024]):]
            except BlockingIOError:
                select.select([], [self.master], [], 0.2)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        os.close(self.master)


@pytest.fixture
def room():
    with running_server() as server:
        bob = CoreClient(server.port, "Bob")
        bob.join()
        alice = Terminal(server.port, "Alice")
        try:
            alice.read_until(r"\* Joined the room")
            alice.read_until(r"> $")
            bob.wait_members("Alice")
            yield alice, bob
        finally:
            alice.close()
            bob.close()


def test_a_message_arriving_while_you_type_is_printed_above_your_unfinished_line(room):
    alice, bob = room
    alice.type("half a sent")
    alice.read_until(r"> half a sent$")
    mark = len(alice.screen)
    bob.session.send_text("hi Alice")
    # The prompt line is cleared, Bob's line printed, and the prompt drawn again with the draft.
    alice.read_until(r"\r\x1b\[2K\[\d\d:\d\d:\d\d\] Bob: hi Alice\r\n> half a sent$")
    assert "half a sentBob" not in ANSI.sub("", alice.screen[mark:])
    alice.type("ence\r")
    assert bob.wait_message("half a sentence").text == "half a sentence"
    alice.read_until(r"\[\d\d:\d\d:\d\d\] Alice: half a sentence\r\n")


def test_a_line_longer_than_the_terminal_line_limit_is_read_whole(room):
    alice, bob = room
    long_line = "".join(f"{n:05d} " for n in range(1000))        # 6,000 characters
    alice.type(long_line + "\r")
    assert bob.wait_message(long_line, timeout=WAIT).text == long_line


def test_slash_commands_work_at_the_prompt_and_who_marks_you(room):
    alice, _bob = room
    alice.type("/who\r")
    alice.read_until(r"\* In the room \(2/5\): (Alice \(you\) [A-Z2-7 ]{19}, Bob|Bob [A-Z2-7 ]{19}, Alice \(you\))")
    alice.type("/quit\r")
    assert alice.proc.wait(WAIT) == 0


def test_ctrl_c_at_the_prompt_leaves_cleanly(room):
    alice, bob = room
    alice.type("a draft")
    alice.read_until(r"> a draft$")
    alice.proc.send_signal(signal.SIGINT)
    alice.read_until(r"\* Leaving the room\.\.\. \(Ctrl\+C again to quit at once\)")
    assert alice.proc.wait(WAIT) == 0
    bob.wait_for(MemberLeft, lambda e: e.member.name == "Alice" and not e.dropped)


def test_the_draft_can_be_edited_anywhere_and_lines_sent_come_back_with_up(room):
    """A tester's finding: the arrow keys, Home and End did nothing, and Up gave nothing back."""
    alice, bob = room
    alice.type("helo\x7f\x7fllo wrold\x17wrld\x1b[D\x1b[D\x1b[Do\r")    # Backspace, Ctrl+W, ← ← ←
    assert bob.wait_message("hello world").text == "hello world"
    alice.type("never sent\x15sent\r")                                  # Ctrl+U
    assert bob.wait_message("sent").text == "sent"
    alice.type("Xorld\x1b[H\x1b[3~w\x1b[F!\r")                           # Home, Delete, End
    assert bob.wait_message("world!").text == "world!"
    alice.type("\x1b[A\x1b[A\x1b[B\x7f?\r")                              # Up, Up, Down, Backspace
    assert bob.wait_message("world?").text == "world?"
    alice.type("draft\x1b[A\x1b[B then more\r")                          # Down past the last: the draft back
    assert bob.wait_message("draft then more").text == "draft then more"


def test_a_name_refused_at_the_prompt_is_asked_for_again_at_once():
    """Found by a tester: "*Alice" was taken, the passphrase asked for, and only then the
    client said the name was not allowed, and exited."""
    with running_server() as server:
        terminal = Terminal(server.port, None)
        try:
            terminal.read_until(r"Your name: $")
            terminal.type("*Alice\r")
            terminal.read_until(r"The name cannot start with '\*'.*Try again\.\r\nYour name: $")
            terminal.type("Alce\x1b[D\x1b[Di\r")          # ←← then "i": the arrows edit (a tester's finding)
            terminal.read_until(r"\* Joined the room")
            terminal.read_until(r"In the room \(1/5\): Alice \(you\)")
            terminal.type("/quit\r")
            assert terminal.proc.wait(WAIT) == 0
        finally:
            terminal.close()
