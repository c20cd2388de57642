"""The terminal's screen: permanent lines, one status line updated in place (a file
transfer's progress), and, when a person types at a terminal, a prompt that stays
whole.

Three modes, chosen once from what stdin and stdout are:

* **script** (stdout not a terminal): every line is written as it is, nothing is
  ever redrawn and there is no status line: one line per event, the contract.
* **live** (stdout a terminal, stdin not): the status line is redrawn in place;
  a permanent line clears it first and puts it back after.
* **interactive** (both terminals, POSIX): as live, and what you type is edited
  here, behind a ``> `` prompt, with the terminal in non-canonical mode (Ctrl+C
  still interrupts). A line arriving while you type is printed above the prompt,
  which is drawn again with your draft; the line you send is replaced by its
  timestamped echo. A line is never cut at the 4,095 characters that canonical
  mode keeps. Editing: Left/Right (Ctrl+B/F), Home/End (Ctrl+A/E), Backspace,
  Delete, Ctrl+U (to the start), Ctrl+K (to the end), Ctrl+W (a word), Up/Down
  (the lines sent before, this run), Ctrl+L (redraw), Ctrl+D on an empty line (end
  of input, which leaves).

Typing and printing share one lock, so the draft on screen is always the draft in
memory (an editor of our own rather than readline, whose buffer another thread
cannot read without racing its echo).
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import os
import select
import shutil
import sys
import threading
import unicodedata
from typing import TextIO

try:
    import termios
except ImportError:       # Windows: no terminal modes; lines are read plainly
    termios = None

PROMPT = "> "
CANONICAL_LINE_LIMIT = 4095     # what a Linux terminal keeps of a line in canonical mode
HISTORY_LINES = 100             # lines sent, for Up and Down
MAX_ESCAPE = 16                 # characters in a key's escape sequence, at most
ESCAPE_WAIT = 0.05              # after an Esc, how long the rest of a key's sequence may take

_CLEAR_LINE = "\r\x1b[2K"
_CLEAR_BELOW = "\x1b[J"
_UP = "\x1b[1A"
_ENTER = frozenset("\r\n")
_CTRL_D, _CTRL_L, _CTRL_U, _CTRL_W, _ESC = "\x04", "\x0c", "\x15", "\x17", "\x1b"
# Keys as they arrive (xterm and its kin, either cursor-key mode) -> what they do.
_KEYS = {"\x1b[D": "left", "\x1bOD": "left", "\x02": "left",
         "\x1b[C": "right", "\x1bOC": "right", "\x06": "right",
         "\x1b[H": "home", "\x1bOH": "home", "\x1b[1~": "home", "\x1b[7~": "home", "\x01": "home",
         "\x1b[F": "end", "\x1bOF": "end", "\x1b[4~": "end", "\x1b[8~": "end", "\x05": "end",
         "\x1b[A": "up", "\x1bOA": "up", "\x1b[B": "down", "\x1bOB": "down",
         "\x1b[3~": "delete", "\x7f": "backspace", "\b": "backspace",
         _CTRL_U: "kill start", "\x0b": "kill end", _CTRL_W: "kill word", _CTRL_L: "redraw"}


class Console:
    def __init__(self, out: TextIO = sys.stdout, inp: TextIO = sys.stdin) -> None:
        self.out, self.inp = out, inp
        self.live = _is_terminal(out)
        self.interactive = self.live and _is_terminal(inp) and termios is not None
        # Lines read from a terminal in canonical mode keep only their first 4,095 characters.
        self.lines_may_be_cut = _is_terminal(inp) and not self.interactive
        self._lock = threading.Lock()
        self._status: str | None = None
        self._prompting = False
        # What is drawn below the permanent lines now, which is what _take_down erases:
        # between two reads the status line is there without the prompt under it.
        self._drawn_status = self._drawn_prompt = False
        self._draft = ""
        self._cursor = 0                    # where in the draft the next character goes
        self._drawn_columns = 0             # the terminal's width when the prompt was drawn
        self._history: collections.deque[str] = collections.deque(maxlen=HISTORY_LINES)
        self._browsing: int | None = None   # the line of history shown (Up, Down), if any
        self._stashed = ""                  # the draft typed before browsing
        self._saved_mode = None
        self._pending: list[str] = []       # characters read after the last finished line
        # One for all lines: a read may end inside a character the next line's read completes.
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    # -- output (main thread) ---------------------------------------------------------------

    def line(self, text: str) -> None:
        """A permanent line."""
        with self._lock:
            if not self.live:
                self.out.write(text + "\n")
            else:
                self.out.write(self._take_down() + text + "\n" + self._put_back())
            self.out.flush()

    def status(self, text: str | None) -> None:
        """Show ``text`` as the status line (None: remove it). Only on a terminal."""
        if not self.live:
            return
        if text is not None:       # one row, always: a wrapped status line would leave rows behind
            text = _fitted(text, max(10, _columns() - 1))
        with self._lock:
            if text == self._status:
                return
            self.out.write(self._take_down())
            self._status = text
            self.out.write(self._put_back())
            self.out.flush()

    def _take_down(self) -> str:
        """Erase what is drawn: the prompt (all its rows) and the status line; cursor
        at line start."""
        erase = _CLEAR_LINE
        if self._drawn_prompt and _columns() != self._drawn_columns:
            # Resized since it was drawn: where its rows are now is not known (terminals
            # may reflow them), so nothing above the cursor's row is erased (a tester saw
            # received lines wiped): the rest of the prompt, below, goes.
            self._drawn_status = self._drawn_prompt = False
            return "\r" + _CLEAR_BELOW
        if self._drawn_prompt:
            (cursor_row, _), (end_row, _) = self._cursor_and_end()
            below = end_row - cursor_row
            erase = (f"\x1b[{below}B" if below else "") + erase      # from the cursor to the last row
            erase += (_UP + _CLEAR_LINE) * end_row
            if self._drawn_status:
                erase += _UP + _CLEAR_LINE
        self._drawn_status = self._drawn_prompt = False
        return erase

    def _put_back(self) -> str:
        shown = ""
        if self._status is not None:
            shown = self._status + ("\n" if self._prompting else "")
        if self._prompting:
            shown += PROMPT + self._draft + self._back_to_cursor()
            self._drawn_columns = _columns()
        self._drawn_status, self._drawn_prompt = self._status is not None, self._prompting
        return shown

    def _back_to_cursor(self) -> str:
        """From the end of the draft just drawn back to the cursor in it (on its row,
        then across: a terminal does not move left past the start of a row)."""
        if self._cursor == len(self._draft):
            return ""
        (row, column), (end_row, _) = self._cursor_and_end()
        up = end_row - row
        return (f"\x1b[{up}A" if up else "") + "\r" + (f"\x1b[{column}C" if column else "")

    def _cursor_and_end(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Where the prompt's cursor is drawn and where its end is, (row from the
        prompt's first, column), in the terminal's cells."""
        starts, end = _layout(PROMPT + self._draft, _columns())
        at = len(PROMPT) + self._cursor
        return (starts[at] if at < len(starts) else end), end

    # -- input (the reader thread) ------------------------------------------------------------

    def read_line(self) -> str | None:
        """The next line typed (None at end of input)."""
        if not self.interactive:
            line = self.inp.readline()
            return line.rstrip("\r\n") if line else None
        fd = self.inp.fileno()
        self._enter_edit_mode(fd)
        with self._lock:
            self._prompting, self._draft, self._cursor = True, "", 0
            self.out.write(self._take_down() + self._put_back())
            self.out.flush()
        escape = ""
        while True:
            if not self._pending:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    return self._finish(None)
                self._pending = list(self._decoder.decode(data))
            typed: list[str] = []
            while self._pending:
                char = self._pending.pop(0)
                if escape:      # an escape sequence: an arrow key and the like, or one we ignore
                    escape, done = _escape_step(escape, char)
                    if done is not None:
                        key = _KEYS.get(done)
                        if key is not None:
                            self._edit(typed)
                            typed = []
                            self._key(key)
                    if escape or done is not None:
                        continue
                    # Not part of a sequence (a stray Esc, then Enter): the character counts.
                if char == _ESC:
                    # A key's sequence comes in one go; Esc pressed alone has nothing after
                    # it for a while, and is then no sequence at all (so "Esc", then "OK",
                    # is "OK", not Esc O K: a third review's finding).
                    escape = char if self._pending or _more_soon(fd) else ""
                elif char in _ENTER:
                    self._edit(typed)
                    return self._finish(self._draft)
                elif char == _CTRL_D and not self._draft and not typed:
                    return self._finish(None)
                elif char in _KEYS:
                    self._edit(typed)
                    typed = []
                    self._key(_KEYS[char])
                elif char == "\t":
                    typed.append(" ")
                elif char >= " " and unicodedata.category(char) != "Cc":    # no C1 control reaches the screen
                    typed.append(char)
            self._edit(typed)

    def _edit(self, typed: list[str]) -> None:
        if not typed:
            return
        text = "".join(typed)
        with self._lock:
            if self._cursor == len(self._draft):     # typing at the end: just the new characters
                self._draft += text
                self._cursor = len(self._draft)
                self.out.write(text)
            else:
                erase = self._take_down()
                self._draft = self._draft[:self._cursor] + text + self._draft[self._cursor:]
                self._cursor += len(text)
                self.out.write(erase + self._put_back())
            self.out.flush()

    def _key(self, key: str) -> None:
        """An editing key: the draft and the cursor change, and the prompt is drawn again."""
        with self._lock:
            erase = self._take_down()
            draft, cursor = self._draft, self._cursor
            if key == "left":
                cursor = _cluster_start(draft, max(0, cursor - 1))
            elif key == "right":
                cursor = _cluster_end(draft, cursor)
            elif key == "home":
                cursor = 0
            elif key == "end":
                cursor = len(draft)
            elif key == "backspace" and cursor:
                start = _cluster_start(draft, cursor - 1)
                draft, cursor = draft[:start] + draft[cursor:], start
            elif key == "delete":
                draft = draft[:cursor] + draft[_cluster_end(draft, cursor):]
            elif key == "kill start":
                draft, cursor = draft[cursor:], 0
            elif key == "kill end":
                draft = draft[:cursor]
            elif key == "kill word":
                kept = draft[:cursor].rstrip()
                kept = kept[:len(kept) - len(kept.split(" ")[-1])]
                draft, cursor = kept + draft[cursor:], len(kept)
            elif key in ("up", "down"):
                draft = self._browse(-1 if key == "up" else 1)
                cursor = len(draft)
            self._draft, self._cursor = draft, cursor
            self.out.write(erase + self._put_back())
            self.out.flush()

    def _browse(self, step: int) -> str:
        """The draft after Up (-1) or Down (+1) through the lines sent before."""
        if self._browsing is None:
            if step > 0 or not self._history:
                return self._draft
            self._browsing, self._stashed = len(self._history), self._draft
        self._browsing = max(0, self._browsing + step)
        if self._browsing >= len(self._history):
            self._browsing = None
            return self._stashed
        return self._history[self._browsing]

    def _finish(self, line: str | None) -> str | None:
        with self._lock:
            self.out.write(self._take_down())
            if line and (not self._history or self._history[-1] != line):
                self._history.append(line)
            self._prompting, self._draft, self._cursor, self._browsing = False, "", 0, None
            self.out.write(self._put_back())
            self.out.flush()
        return line

    def _enter_edit_mode(self, fd: int) -> None:
        if self._saved_mode is not None:
            return
        with contextlib.suppress(OSError, termios.error):
            self._saved_mode = termios.tcgetattr(fd)
            mode = termios.tcgetattr(fd)
            mode[3] &= ~(termios.ICANON | termios.ECHO)     # keep ISIG: Ctrl+C still interrupts
            mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
            termios.tcsetattr(fd, termios.TCSANOW, mode)

    def restore(self) -> None:
        """Leave the terminal as it was: no prompt left behind, its own settings back.
        Safe from a signal handler: it may interrupt a write holding the lock, so it
        waits for the lock only briefly and restores the settings regardless."""
        locked = self._lock.acquire(timeout=0.2)
        try:
            if self._prompting and locked:
                self.out.write(self._take_down())
                self.out.flush()
            self._prompting = False
            if self._saved_mode is not None:
                with contextlib.suppress(OSError, termios.error):
                    termios.tcsetattr(self.inp.fileno(), termios.TCSANOW, self._saved_mode)
                self._saved_mode = None
        finally:
            if locked:
                self._lock.release()


def _escape_step(escape: str, char: str) -> tuple[str, str | None]:
    """One more character after Esc: (the sequence so far, or "" once it is over; the
    whole sequence if ``char`` completed it). ECMA-48's shape: Esc [ then parameter and
    intermediate bytes then a final one, or Esc O and one; anything else ends it there,
    and the character is read as itself (a second review found a stray Esc ate the next
    Enter). Bounded: a pasted "Esc [ 1 2 3 ..." cannot grow it without end."""
    if escape == _ESC:
        return (escape + char, None) if char in "[O" else ("", None)
    if escape in (_ESC + "O", _ESC + "[["):     # SS3, and the Linux console's F1 to F5
        return ("", escape + char) if "@" <= char <= "~" else ("", None)
    if escape == _ESC + "[" and char == "[":
        return escape + char, None
    if "@" <= char <= "~":
        return "", escape + char
    if " " <= char <= "?":       # past MAX_ESCAPE, the rest is passed over, not typed
        return (escape + char if len(escape) < MAX_ESCAPE else escape), None
    return "", None


def _more_soon(fd: int) -> bool:
    """Whether more input comes within ESCAPE_WAIT seconds."""
    try:
        return bool(select.select([fd], [], [], ESCAPE_WAIT)[0])
    except (OSError, ValueError):
        return False


def _cells(char: str) -> int:
    """How many columns a terminal gives ``char``: none to a combining mark or a format
    character, two to a wide one (most CJK, many emoji), else one (a second review
    found a CJK file name wrapping the status line, and wide drafts drawn askew)."""
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


_ZWJ, _EMOJI_STYLE = "\u200d", "\ufe0f"
_SKIN_TONES = range(0x1F3FB, 0x1F400)


def _widths(text: str) -> list[int]:
    """Each character's columns, in context: an emoji-style selector widens a narrow
    character to two, and a skin tone or a character joined by ZWJ adds none (a family
    emoji is one picture). Terminals differ here; this is what most draw."""
    widths: list[int] = []
    for index, char in enumerate(text):
        width = _cells(char)
        if char == _EMOJI_STYLE and widths and widths[-1] == 1:
            widths[-1] = 2
        elif index and (ord(char) in _SKIN_TONES or text[index - 1] == _ZWJ):
            width = 0
        widths.append(width)
    return widths


def _cluster_start(text: str, index: int) -> int:
    """Back from ``index`` to the start of the picture it is part of: the cursor never
    stops inside an emoji, nor splits a letter from its accent (a tester's finding)."""
    widths = _widths(text)
    while index > 0 and widths[index] == 0:
        index -= 1
    return index


def _cluster_end(text: str, index: int) -> int:
    """Past the picture that starts at ``index``."""
    if index >= len(text):
        return len(text)
    widths = _widths(text)
    index += 1
    while index < len(text) and widths[index] == 0:
        index += 1
    return index


def _fitted(text: str, width: int) -> str:
    """``text`` cut to ``width`` columns, with an ellipsis if it was cut."""
    widths = _widths(text)
    if sum(widths) <= width:
        return text
    kept, used = [], 0
    for char, cells in zip(text, widths, strict=True):
        used += cells
        if used > width - 1:
            break
        kept.append(char)
    return "".join(kept) + "\u2026"


def _layout(text: str, columns: int) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Where each character of ``text`` is drawn, (row, column), as a terminal
    ``columns`` wide draws it from a row's start, and where its cursor is after it. A
    character in the last column leaves the cursor there until the next one wraps; a
    wide one that does not fit goes to the next row."""
    starts, row, column, wrap_next = [], 0, 0, False
    for width in _widths(text):
        if width == 0:          # drawn in the cell before
            starts.append((row, column if wrap_next else max(0, column - 1)))
            continue
        if wrap_next or column + width > columns:
            row, column, wrap_next = row + 1, 0, False
        starts.append((row, column))
        column += width
        if column >= columns:
            column, wrap_next = columns - 1, True
    return starts, (row, column)


def _columns() -> int:
    return max(1, shutil.get_terminal_size().columns)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
