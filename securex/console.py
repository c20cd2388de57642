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
  mode keeps. Editing: Backspace, Ctrl+U (the whole line), Ctrl+W (a word),
  Ctrl+L (redraw), Ctrl+D on an empty line (end of input, which leaves).

Typing and printing share one lock, so the draft on screen is always the draft in
memory (an editor of our own rather than readline, whose buffer another thread
cannot read without racing its echo).
"""

from __future__ import annotations

import codecs
import contextlib
import math
import os
import shutil
import sys
import threading
from typing import TextIO

try:
    import termios
except ImportError:       # Windows: no terminal modes; lines are read plainly
    termios = None

PROMPT = "> "
CANONICAL_LINE_LIMIT = 4095     # what a Linux terminal keeps of a line in canonical mode

_CLEAR_LINE = "\r\x1b[2K"
_UP = "\x1b[1A"
_ENTER = frozenset("\r\n")
_BACKSPACE = frozenset("\x7f\b")
_CTRL_D, _CTRL_L, _CTRL_U, _CTRL_W, _ESC = "\x04", "\x0c", "\x15", "\x17", "\x1b"


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
        self._saved_mode = None
        self._pending: list[str] = []       # characters read after the last finished line

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
            width = max(10, shutil.get_terminal_size().columns - 1)
            text = text if len(text) <= width else text[:width - 1] + "\u2026"
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
        if self._drawn_prompt:
            erase += (_UP + _CLEAR_LINE) * (self._prompt_rows() - 1)
            if self._drawn_status:
                erase += _UP + _CLEAR_LINE
        self._drawn_status = self._drawn_prompt = False
        return erase

    def _put_back(self) -> str:
        shown = ""
        if self._status is not None:
            shown = self._status + ("\n" if self._prompting else "")
        if self._prompting:
            shown += PROMPT + self._draft
        self._drawn_status, self._drawn_prompt = self._status is not None, self._prompting
        return shown

    def _prompt_rows(self) -> int:
        columns = max(1, shutil.get_terminal_size().columns)
        return max(1, math.ceil((len(PROMPT) + len(self._draft)) / columns))

    # -- input (the reader thread) ------------------------------------------------------------

    def read_line(self) -> str | None:
        """The next line typed (None at end of input)."""
        if not self.interactive:
            line = self.inp.readline()
            return line.rstrip("\r\n") if line else None
        fd = self.inp.fileno()
        self._enter_edit_mode(fd)
        with self._lock:
            self._prompting, self._draft = True, ""
            self.out.write(self._take_down() + self._put_back())
            self.out.flush()
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        escape = ""
        while True:
            if not self._pending:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    return self._finish(None)
                self._pending = list(decoder.decode(data))
            typed: list[str] = []
            while self._pending:
                char = self._pending.pop(0)
                if escape:      # swallow an escape sequence (arrow keys and the like)
                    escape += char
                    if (len(escape) == 2 and char not in "[O") or (len(escape) > 2 and "@" <= char <= "~"):
                        escape = ""
                    continue
                if char == _ESC:
                    escape = char
                elif char in _ENTER:
                    self._edit(typed)
                    return self._finish(self._draft)
                elif char == _CTRL_D and not self._draft and not typed:
                    return self._finish(None)
                elif char in _BACKSPACE or char in (_CTRL_U, _CTRL_W, _CTRL_L):
                    self._edit(typed)
                    typed = []
                    self._control(char)
                elif char == "\t":
                    typed.append(" ")
                elif char >= " ":
                    typed.append(char)
            self._edit(typed)

    def _edit(self, typed: list[str]) -> None:
        if not typed:
            return
        text = "".join(typed)
        with self._lock:
            self._draft += text
            self.out.write(text)
            self.out.flush()

    def _control(self, char: str) -> None:
        with self._lock:
            erase = self._take_down()
            if char in _BACKSPACE:
                self._draft = self._draft[:-1]
            elif char == _CTRL_U:
                self._draft = ""
            elif char == _CTRL_W:
                self._draft = self._draft.rstrip()
                self._draft = self._draft[:len(self._draft) - len(self._draft.split(" ")[-1])]
            self.out.write(erase + self._put_back())
            self.out.flush()

    def _finish(self, line: str | None) -> str | None:
        with self._lock:
            self.out.write(self._take_down())
            self._prompting, self._draft = False, ""
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


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
