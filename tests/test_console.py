"""securex/console.py without a real terminal: what it writes, byte for byte."""

from __future__ import annotations

import io
import os
import re
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from helpers import WAIT, wait_until
from securex.console import Console


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_status_line_never_wraps_whatever_the_file_name(monkeypatch):
    """A wrapped status line leaves a stale row behind on every update."""
    monkeypatch.setenv("COLUMNS", "80")
    out = FakeTerminal()
    console = Console(out, io.StringIO())
    for percent in (10, 20, 30):
        console.status(f"  Receiving {'long name ' * 20}.iso from Mallory: {percent}%")
    rows = out.getvalue().split("\r\x1b[2K")
    assert all(len(row) < 80 for row in rows)


def test_without_a_terminal_lines_are_written_as_they_are_and_no_status():
    out = io.StringIO()
    console = Console(out, io.StringIO())
    console.status("  Receiving x: 50%")
    console.line("[12:00:00] Bob: hi")
    assert out.getvalue() == "[12:00:00] Bob: hi\n"


def screen(written: str, columns: int = 200) -> list[str]:
    """The rows a terminal shows after ``written`` (the few controls Console uses)."""
    return terminal_state(written, columns)[0]


def terminal_state(written: str, columns: int, then: tuple[str, int] | None = None,
                   ) -> tuple[list[str], tuple[int, int]]:
    """The rows, and where the cursor is, as an xterm ``columns`` wide draws ``written``
    (and, resized to ``then[1]`` columns without reflowing what is there, ``then[0]``):
    a character in the last column leaves the cursor there until the next one wraps."""
    rows, row, column, wrap_next = [""], 0, 0, False
    parts = [(written, columns)] + ([then] if then else [])

    def to_row(number: int) -> int:
        rows.extend([""] * (number + 1 - len(rows)))
        return number

    for token, columns in ((token, width) for text, width in parts
                           for token in re.findall(r"\x1b\[\d*[A-DJK]|.|\n", text, re.DOTALL)):
        if token.startswith("\x1b["):
            count, move = int(token[2:-1] or 1), token[-1]
            if move == "K":
                rows[row] = ""
                continue
            if move == "J":           # from the cursor to the end of the screen
                rows[row] = rows[row][:column]
                del rows[row + 1:]
                continue
            wrap_next = False
            # Down stops at the last row written, as at the bottom of a screen (where a prompt is).
            row = max(0, row - count) if move == "A" else min(row + count, len(rows) - 1) if move == "B" else row
            column = (min(columns - 1, column + count) if move == "C" else
                      max(0, column - count) if move == "D" else column)
        elif token in "\r\n":
            row, column, wrap_next = to_row(row + 1) if token == "\n" else row, 0, False
        else:
            wide = unicodedata.east_asian_width(token) in ("W", "F")      # two cells: the second kept empty
            if wrap_next or (wide and column == columns - 1):
                row, column, wrap_next = to_row(row + 1), 0, False
            cell = token + ("\0" if wide else "")
            rows[row] = rows[row][:column].ljust(column) + cell + rows[row][column + len(cell):]
            column += len(cell)
            if column >= columns:
                column, wrap_next = columns - 1, True
    return [row.replace("\0", "") for row in rows], (row, column)


class Keyboard:
    """A Console whose keyboard is a pseudo-terminal (``type`` presses keys) and whose
    screen is a FakeTerminal (``out``); ``read`` starts a reader thread as the terminal
    client's, ``lines`` waits for what it read."""

    def __init__(self, out: FakeTerminal) -> None:
        self.main, typed_into = os.openpty()
        self.keyboard = os.fdopen(typed_into, "r")
        self.out = out
        self.console = Console(out, self.keyboard)
        self.read_so_far: list[str | None] = []
        self._reader: threading.Thread | None = None

    def read(self, lines: int = 1) -> None:
        def read_lines() -> None:
            for _ in range(lines):
                self.read_so_far.append(self.console.read_line())
        self._reader = threading.Thread(target=read_lines)
        self._reader.start()
        # Keys sent before the reader has the terminal in its editing mode would meet the
        # line discipline's own editing (Backspace erasing a byte of an emoji).
        wait_until(lambda: self.console._prompting, "the prompt")

    def type(self, keys: str) -> None:
        os.write(self.main, keys.encode())

    def lines(self) -> list[str | None]:
        assert self._reader is not None
        self._reader.join(WAIT)
        return self.read_so_far


@contextmanager
def keyboard() -> Iterator[Keyboard]:
    typing = Keyboard(FakeTerminal())
    try:
        yield typing
    finally:
        typing.console.restore()
        typing.keyboard.close()
        os.close(typing.main)


def test_pressing_enter_under_a_status_line_never_erases_the_line_above():
    """New-user finding: with a transfer's progress line showing, each Enter wiped the
    line printed before it ("Bob's connection dropped", a message...)."""
    with keyboard() as typing:
        console = typing.console
        assert console.interactive
        console.line("[12:00:00] * Bob's connection dropped")
        console.status("  Sending huge.iso to Bob: 69%")
        for word in ("first", "second"):
            typing.read()
            typing.type(f"{word}\r")
            assert typing.lines()[-1] == word
            console.line(f"[12:00:01] Carol: {word}")
    assert [row for row in screen(typing.out.getvalue()) if row] == [
        "[12:00:00] * Bob's connection dropped", "[12:00:01] Carol: first", "[12:00:01] Carol: second",
        "  Sending huge.iso to Bob: 69%"]


def test_a_reconnect_wait_is_said_in_whole_seconds():
    """New-user finding: "Reconnecting in 79.7304 s"."""
    from securex.events import ConnectionLost
    from securex.terminal import TerminalFrontEnd

    out = io.StringIO()
    front_end = TerminalFrontEnd(None, Console(out, io.StringIO()))   # type: ignore[arg-type]  (prints only)
    front_end.on_connection_lost(ConnectionLost("The room is refusing new members.", 79.7304, 0))
    front_end.on_connection_lost(ConnectionLost("Still refusing.", 0.5, 1))
    assert "Reconnecting in 80 s (Ctrl+C to quit)." in out.getvalue()
    assert "Next try in 0.5 s." in out.getvalue()


def test_a_message_written_well_before_it_arrived_says_when_beside_the_arrival_time():
    from datetime import datetime, timedelta

    from securex.events import ChatMessage, Member
    from securex.terminal import TerminalFrontEnd

    out = io.StringIO()
    front_end = TerminalFrontEnd(None, Console(out, io.StringIO()))   # type: ignore[arg-type]  (prints only)
    arrived = datetime(2026, 11, 25, 20, 42, 15)
    front_end.on_chat_message(ChatMessage(Member("Carol", "C", "Carol"), "typed while down", own=False,
                                          sent_at=arrived - timedelta(seconds=90), at=arrived))
    assert out.getvalue() == "[20:42:15] Carol: typed while down (written 20:40)\n"


def test_who_typed_just_after_joining_waits_for_the_list_instead_of_saying_not_in_the_room():
    """Found by a tester: ``printf 'msg\\n/who\\n' | client.py --cli`` printed "Joined the
    room", then "Not in the room yet", then the list."""
    from securex.events import Joined, Member, MembersChanged
    from securex.terminal import TerminalFrontEnd

    out = io.StringIO()
    front_end = TerminalFrontEnd(None, Console(out, io.StringIO()))   # type: ignore[arg-type]  (prints only)
    front_end.show_members()
    assert "Not in the room yet: the members are listed once you are in." in out.getvalue()
    me = Member("Dan", "DDDD", "Dan", you=True)
    front_end.on_joined(Joined("127.0.0.1:5050", "AES-256-GCM", me, 0, 0, False))
    before = out.getvalue()
    front_end.show_members()                   # /who between the join and the list
    assert out.getvalue() == before
    front_end.on_members_changed(MembersChanged((me, Member("Eve", "EEEE", "Eve")), 5))
    assert out.getvalue().count("In the room (2/5): Dan (you) DDDD, Eve EEEE") == 1


def test_a_message_caught_up_after_you_were_away_says_so_beside_its_time():
    """Found by a tester: after "Back in the room" at 22:07:26 came "[22:07:21] Alice: ..."
    unmarked, as if the clock had gone back."""
    from datetime import datetime, timedelta

    from securex.events import ChatMessage, Member
    from securex.terminal import TerminalFrontEnd

    out = io.StringIO()
    front_end = TerminalFrontEnd(None, Console(out, io.StringIO()))   # type: ignore[arg-type]  (prints only)
    arrived = datetime(2026, 11, 25, 22, 7, 26)
    front_end.on_chat_message(ChatMessage(Member("Alice", "A", "Alice"), "typed while down", own=False,
                                          sent_at=arrived - timedelta(seconds=5), caught_up=True, at=arrived))
    assert out.getvalue() == "[22:07:21] Alice: typed while down (sent while you were away)\n"


def test_a_file_offered_again_from_the_start_clears_its_paused_status_line():
    """Tester's finding: after "Carol's Secure X restarted while receiving huge.bin: it is
    offered to them again." the status line still said "paused at 60%"."""
    from securex.events import FileProgress
    from securex.terminal import TerminalFrontEnd

    out = FakeTerminal()
    front_end = TerminalFrontEnd(None, Console(out, io.StringIO()))   # type: ignore[arg-type]  (prints only)
    front_end.on_file_progress(FileProgress("3f2a9c1b", "huge.bin", "out", "Carol", 0, 10**9, 0.0, "offered"))
    front_end.on_file_progress(FileProgress("3f2a9c1b", "huge.bin", "out", "Carol", 6 * 10**8, 10**9, 0.0, "paused"))
    assert "paused at 60%" in out.getvalue()
    front_end.on_file_progress(FileProgress("3f2a9c1b", "huge.bin", "out", "Carol", 0, 10**9, 0.0, "offered"))
    assert "paused" not in out.getvalue().rsplit("\n", 1)[-1]        # the row under the lines: no status now
    assert out.getvalue().count("* Offering huge.bin") == 2
    front_end.on_file_progress(FileProgress("3f2a9c1b", "huge.bin", "out", "Carol", 10**8, 10**9, 5e7, "sending"))
    assert out.getvalue().count("* Sending huge.bin") == 2            # started again: said again


@pytest.mark.parametrize("columns", [20, 80])
def test_a_draft_edited_in_its_middle_and_over_rows_is_drawn_where_it_is(monkeypatch, columns):
    """The cursor moves back over a wrapped draft; what is typed goes in there; a line
    arriving meanwhile is printed above the prompt, which comes back with the cursor
    where it was."""
    monkeypatch.setenv("COLUMNS", str(columns))
    with keyboard() as typing:
        console, out = typing.console, typing.out
        typing.read()
        typing.type("the quick brown fox jumps over the dog" + "\x1b[D" * 3 + "lazy ")
        wait_until(lambda: console._draft == "the quick brown fox jumps over the lazy dog", "the keys")
        console.line("[12:00:01] Carol: hi")
        rows, cursor = terminal_state(out.getvalue(), columns)
        drawn = "> the quick brown fox jumps over the lazy dog"
        assert [row for row in rows if row] == [
            "[12:00:01] Carol: hi", *[drawn[i:i + columns] for i in range(0, len(drawn), columns)]]
        before_cursor = len("> the quick brown fox jumps over the lazy ")
        assert cursor == (1 + before_cursor // columns, before_cursor % columns)
        typing.type("\x1b[H\x1b[3~T\x1b[F!\r")
        assert typing.lines() == ["The quick brown fox jumps over the lazy dog!"]
        assert [row for row in screen(out.getvalue(), columns) if row] == ["[12:00:01] Carol: hi"]


def test_an_unfinished_escape_sequence_never_eats_the_enter_or_letters_after_it():
    """Second review's finding: Esc [ 1 2, then Enter, then "hello" sent "ello"; and a C1
    control character typed or pasted reached the terminal as is."""
    with keyboard() as typing:
        typing.read(3)
        typing.type("\x1b[12\rhello\r\x1bx\u009b31mred\r")
        assert typing.lines() == ["", "hello", "x31mred"]
        assert "\u009b" not in typing.out.getvalue()
        typing.type("\x1b[" + "1" * 100 + "A")      # a sequence too long to be a key
        typing.read()
        typing.type("\r")
        assert typing.lines()[-1] == ""            # passed over whole, not typed (a third review's finding)


@pytest.mark.parametrize("columns", [21, 40])
def test_a_draft_of_wide_characters_is_drawn_and_edited_in_place(monkeypatch, columns):
    """Second review's finding: columns were counted in characters, so a draft of CJK
    characters edited in its middle left stale copies of the prompt behind."""
    monkeypatch.setenv("COLUMNS", str(columns))
    with keyboard() as typing:
        console = typing.console
        typing.read()
        draft = "\u4f60\u597d\u4e16\u754c" * 5 + "abc"              # 40 cells, then three
        typing.type(draft + "\x1b[D" * 10 + "\u5927")
        expected = draft[:13] + "\u5927" + draft[13:]
        wait_until(lambda: console._draft == expected, "the keys")
        console.line("[12:00:01] Carol: hi")
        rows, cursor = terminal_state(typing.out.getvalue(), columns)
        shown = [row for row in rows if row]
        assert shown[0] == "[12:00:01] Carol: hi" and "".join(shown[1:]) == "> " + expected
        before = terminal_state("> " + expected[:14], columns)[1]       # just after the character typed
        assert cursor == (before[0] + 1, before[1])
        typing.type("\r")
        assert typing.lines() == [expected]


def test_a_status_line_of_wide_characters_is_cut_to_the_row(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = FakeTerminal()
    console = Console(out, io.StringIO())
    name = "\u5199\u771f" * 40 + ".zip"
    console.status(f"  Receiving {name} from Mallory: 50%")
    assert len(terminal_state(out.getvalue(), 80)[0]) == 1          # one row, nothing wrapped


def test_keys_sequences_are_read_by_their_shape():
    """Third review's findings: the Linux console's F1 (Esc [ [ A) typed an "A", and the
    tail of an over-long sequence was typed into the draft."""
    from securex.console import MAX_ESCAPE, _escape_step

    def read(keys: str) -> tuple[str, list[str]]:
        escape, done = "", []
        for char in keys:
            if not escape:
                escape = char if char == "\x1b" else ""
                if not escape:
                    done.append(char)
                continue
            escape, finished = _escape_step(escape, char)
            if finished is None and not escape:
                done.append(char)
        return escape, done

    assert read("\x1b[[A") == ("", [])
    assert read("\x1b[" + "1" * (3 * MAX_ESCAPE) + "~y") == ("", ["y"])
    assert read("\x1b[12\r") == ("", ["\r"])
    assert read("\x1bOK") == ("", [])            # all in one go: a key's sequence (SS3)


def test_emoji_are_measured_as_terminals_draw_them():
    from securex.console import _widths

    for text in ("\u2764\ufe0f", "\U0001f44d\U0001f3fd", "\U0001f468\u200d\U0001f469\u200d\U0001f467",
                 "\U0001f3f3\ufe0f\u200d\U0001f308", "\u4f60"):
        assert sum(_widths(text)) == 2, text
    assert sum(_widths("a\u0301")) == 1


def test_a_resized_terminal_never_loses_the_lines_above_the_prompt(monkeypatch):
    """Tester's finding: a window resized while the cursor was inside a long draft, then a
    key pressed: the prompt was taken down for the old width and two received lines
    above it were erased with it."""
    monkeypatch.setenv("COLUMNS", "40")
    with keyboard() as typing:
        console, out = typing.console, typing.out
        console.line("[12:00:01] Bob: marker line 7")
        console.line("[12:00:02] Bob: marker line 8")
        typing.read()
        draft = " ".join(f"yy{n:02}" for n in range(1, 25))           # three rows at 40 columns
        typing.type(draft + "\x1b[H" + "\x1b[C" * 10)
        wait_until(lambda: console._draft == draft and console._cursor == 10, "the keys")
        monkeypatch.setenv("COLUMNS", "30")                          # the window is made narrower
        before = len(out.getvalue())
        typing.type("@")
        wait_until(lambda: console._draft.startswith("yy01 yy02 @"), "the key")
        console.line("[12:00:03] Bob: marker line 9")
        rows, _ = terminal_state(out.getvalue()[:before], 40, (out.getvalue()[before:], 30))
        for marker in ("marker line 7", "marker line 8", "marker line 9"):
            assert any(marker in row for row in rows), marker
        typing.type("\r")
        typing.lines()


def test_the_cursor_moves_over_a_whole_emoji_and_backspace_takes_it_whole():
    """Tester's finding: Left stopped between 👍 and its skin tone, so what was typed
    there split it; Backspace took one part of a family emoji."""
    with keyboard() as typing:
        typing.read(2)
        typing.type("a\U0001f600\U0001f44d\U0001f3fdb\x1b[D\x1b[D|\r")
        typing.type("x\U0001f468\u200d\U0001f469\u200d\U0001f467\x7fy\r")
        assert typing.lines() == ["a\U0001f600|\U0001f44d\U0001f3fdb", "xy"]
