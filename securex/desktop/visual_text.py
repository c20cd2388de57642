"""Right-to-left lines in a read-only ``tk.Text``: drawn in the right order,
wrapped in the right order, copied as typed.

Tk 8.6 draws stored characters left to right, so a line with Hebrew or Arabic in
it is stored in drawing order (``securex.bidi``) instead. Tk's own word wrap
would then break such a line from its left, which puts the end of a
right-to-left paragraph on its first screen line; so these lines are broken
here, in typing order, to the view's width, each piece put in drawing order,
and laid out again when the width changes. Each such line carries a tag of its
own (``rtl<N>``) that maps every drawn character back to what was typed, so
copying a selection (and ``logical_text``) gives the text as typed.

Lines without a right-to-left letter are inserted as they are. Tk thread only.
"""

from __future__ import annotations

import re
import tkinter as tk
from dataclasses import dataclass
from tkinter import font as tkfont

from securex.bidi import VisualLine, needs_reordering, visual_line

RTL_TAG = "rtl"                  # every reordered line, for finding them
RIGHT_ALIGNED_TAG = "rtl_paragraph"
_RECORD_TAG = re.compile(r"rtl(\d+)$")
_WORDS = re.compile(r"\S+\s*|\s+")
MAX_REMEMBERED_WIDTHS = 20_000   # words whose width is kept
RELAYOUT_SLICE = 25              # lines laid out again per turn of the event loop after a resize


@dataclass
class _Line:
    typed: str
    tags: tuple[str, ...]
    pieces: list[tuple[int, VisualLine]]     # (offset in ``typed``, that piece drawn)
    align: bool
    width: int | None = None                 # pixels, the whole line on one screen line
    right_to_left: bool | None = None        # the paragraph's direction, once known

    @property
    def drawn(self) -> str:
        return "\n".join(piece.text for _, piece in self.pieces)

    def typed_indices(self, start: int, end: int) -> list[int]:
        """The typed characters that drawn characters ``start:end`` stand for (the
        breaks this layout added stand for nothing)."""
        indices: set[int] = set()
        position = 0
        for offset, piece in self.pieces:
            low, high = max(start - position, 0), min(end - position, len(piece.text))
            for first, last in piece.spans[low:high] if low < high else ():
                indices.update(range(offset + first, offset + last))
            position += len(piece.text) + 1
        return sorted(indices)


class RightToLeftLines:
    def __init__(self, text: tk.Text, body_font: tkfont.Font, margins: int) -> None:
        self.text = text
        self.font = body_font
        self.margins = margins
        self._lines: dict[int, _Line] = {}
        self._next = 0
        self._width = 0
        self._widths: dict[str, int] = {}
        self._generation = 0             # bumped by each new width: older passes stop
        text.tag_configure(RIGHT_ALIGNED_TAG, justify="right")
        text.bind("<<Copy>>", self._copy, add="+")
        text.bind("<Configure>", self._on_resize, add="+")

    def insert(self, index: str, line: str, tags: tuple[str, ...], *, align: bool = True) -> None:
        """Insert one line (no newline) at ``index``, in drawing order if it needs it.
        ``align``: a right-to-left paragraph is aligned right (not for names and
        the client's own lines, whose place in the view is fixed)."""
        if not needs_reordering(line):
            self.text.insert(index, line, tags)
            return
        self._next += 1
        record = _Line(line, tags, [], align)
        self._lines[self._next] = record
        self._lay_out(self._next, record, index)

    def _lay_out(self, number: int, record: _Line, index: str) -> None:
        if record.right_to_left is None:
            record.right_to_left = visual_line(record.typed).right_to_left
        right_to_left = record.right_to_left
        pieces = self._break(record.typed) if record.align else [(0, record.typed)]
        record.pieces = [(offset, visual_line(piece, right_to_left=right_to_left)) for offset, piece in pieces]
        extra = (RTL_TAG, f"{RTL_TAG}{number}") + ((RIGHT_ALIGNED_TAG,) if right_to_left and record.align else ())
        self.text.insert(index, record.drawn, record.tags + extra)

    def _available(self) -> int:
        return self.text.winfo_width() - 2 * self.margins - 8

    def _fits(self, record: _Line) -> bool:
        """True if the line is one piece and stays one at the view's width (most lines:
        a new width need not touch them)."""
        if record.width is None:
            record.width = self.font.measure(record.typed)
        return len(record.pieces) == 1 and record.width <= self._available()

    def _break(self, line: str) -> list[tuple[int, str]]:
        """``line`` cut, in typing order, into pieces that fit the view's width: (offset, piece)."""
        width = self._available()
        if width < 100:      # not laid out yet: one piece, laid out again when it is
            return [(0, line)]
        pieces: list[tuple[int, str]] = []
        start, used, current = 0, 0, ""
        measure = self._measure
        for match in _WORDS.finditer(line):
            word = match.group()
            # Words measured one at a time (not the growing line again for each):
            # linear in the line's length, and kerning across a space is nil.
            if current and used + measure(word.rstrip()) > width:
                pieces.append((start, current))
                start, used, current = match.start(), 0, ""
            current += word
            used += measure(word)
        pieces.append((start, current))
        return pieces

    def _measure(self, word: str) -> int:
        """A word's width in pixels, remembered (words repeat; a Tk call each is slow)."""
        width = self._widths.get(word)
        if width is None:
            if len(self._widths) >= MAX_REMEMBERED_WIDTHS:
                self._widths.clear()
            width = self._widths[word] = self.font.measure(word)
        return width

    def _on_resize(self, event: tk.Event) -> None:
        if event.width == self._width:
            return
        self._width = event.width
        self._generation += 1
        if self._lines:
            # Newest first (what is on screen when following the conversation), a slice
            # at a time, so a long history never freezes the window on a resize.
            pending = sorted(self._lines, reverse=True)
            self.text.after_idle(self._lay_out_some, pending, self._generation)

    def _lay_out_some(self, pending: list[int], generation: int) -> None:
        if generation != self._generation:
            return          # the width changed again: that pass starts over
        at_end = self.text.yview()[1] >= 0.999
        self.lay_out_again(pending[:RELAYOUT_SLICE])
        if at_end:
            self.text.see("end")
        if len(pending) > RELAYOUT_SLICE:
            self.text.after(1, self._lay_out_some, pending[RELAYOUT_SLICE:], generation)

    def lay_out_again(self, numbers: list[int] | None = None) -> None:
        """Break reordered lines (all, or those numbered) again for the view's width."""
        state = self.text.cget("state")
        self.text.configure(state="normal")
        try:
            for number in list(self._lines) if numbers is None else numbers:
                record = self._lines.get(number)
                if record is None:
                    continue
                ranges = self.text.tag_ranges(f"{RTL_TAG}{number}")
                if not ranges:
                    self.forget(number)
                    continue
                if not record.align or self._fits(record):
                    continue
                start = self.text.index(ranges[0])
                self.text.delete(start, ranges[1])
                self._lay_out(number, record, start)
        finally:
            self.text.configure(state=state)

    def forget_deleted(self) -> None:
        """Drop what is kept for lines no longer in the view (after a trim)."""
        for number in [n for n in self._lines if not self.text.tag_ranges(f"{RTL_TAG}{n}")]:
            self.forget(number)

    def forget(self, number: int) -> None:
        del self._lines[number]
        self.text.tag_delete(f"{RTL_TAG}{number}")

    # -- back to what was typed ---------------------------------------------------------

    def logical_text(self, first: str, last: str) -> str:
        """The view's text from ``first`` to ``last`` with reordered lines as typed."""
        text, parts = self.text, []
        index, last = text.index(first), text.index(last)
        while text.compare(index, "<", last):
            found = text.tag_prevrange(RTL_TAG, f"{index}+1c")
            if not found or text.compare(found[1], "<=", index):
                found = text.tag_nextrange(RTL_TAG, index, last)
            if not found:
                parts.append(text.get(index, last))
                break
            start, end = (text.index(i) for i in found)
            if text.compare(start, ">", index):
                parts.append(text.get(index, start))
            parts.append(self._typed_between(start, index if text.compare(index, ">", start) else start, end, last))
            index = end if text.compare(end, "<", last) else last
        return "".join(parts)

    def _typed_between(self, line_start: str, first: str, line_end: str, last: str) -> str:
        text = self.text
        number = next(int(m.group(1)) for tag in text.tag_names(line_start) if (m := _RECORD_TAG.match(tag)))
        record = self._lines[number]
        low = self._count(line_start, first)
        high = self._count(line_start, line_end if text.compare(line_end, "<", last) else last)
        return "".join(record.typed[i] for i in record.typed_indices(low, high))

    def _count(self, start: str, end: str) -> int:
        if self.text.compare(end, "<=", start):
            return 0
        counted = self.text.count(start, end, "chars")
        return int(counted[0]) if counted else 0

    def _copy(self, event: tk.Event) -> str | None:
        if not self.text.tag_ranges("sel"):
            return None
        selected = self.logical_text("sel.first", "sel.last")
        self.text.clipboard_clear()
        self.text.clipboard_append(selected)
        return "break"
