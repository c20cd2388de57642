"""Right-to-left text in a read-only ``tk.Text``: drawn in the right order,
wrapped in the right order, copied as typed.

Tk 8.6 draws stored characters left to right, so text with Hebrew or Arabic in
it is stored in drawing order (``securex.bidi``) instead. Tk's own word wrap
would then break such a line from its left, which puts the end of a
right-to-left paragraph on its first screen line; so these paragraphs are broken
here, in typing order, to the view's width, each screen line put in drawing
order, and laid out again when the width changes. Each inserted text (a whole
message, however many lines) is one record with a tag of its own (``rtl<N>``)
that maps every drawn character back to what was typed, so copying a selection
(and ``logical_text``) gives the text as typed.

Text without a right-to-left letter is inserted as it is. Tk thread only.
"""

from __future__ import annotations

import re
import tkinter as tk
from dataclasses import dataclass, field
from tkinter import font as tkfont

from securex.bidi import VisualLine, logical_indices, needs_reordering, visual_pieces

RTL_TAG = "rtl"                  # every reordered text, for finding them
RIGHT_ALIGNED_TAG = "rtl_paragraph"
_RECORD_TAG = re.compile(r"rtl(\d+)$")
_WORDS = re.compile(r"\S+\s*|\s+")
MAX_REMEMBERED_WIDTHS = 20_000   # words whose width is kept
RELAYOUT_CHARS = 20_000          # characters laid out again per turn of the event loop after a resize


@dataclass
class _Piece:
    offset: int                  # where it starts in the record's typed text
    drawn: VisualLine
    newline: int | None          # the typed newline after it (None: a break this layout added)


@dataclass
class _Record:
    typed: str
    tags: tuple[str, ...]
    align: bool                  # right-to-left paragraphs aligned right, broken to the width
    pieces: list[_Piece] = field(default_factory=list)
    widths: list[int] | None = None      # pixels of each typed paragraph on one screen line

    def drawn_segments(self) -> list[tuple[str, bool]]:
        """(drawn text with its line end, right to left?) of each screen line."""
        return [(piece.drawn.text + ("\n" if index < len(self.pieces) - 1 else ""), piece.drawn.right_to_left)
                for index, piece in enumerate(self.pieces)]

    def typed_indices(self, start: int, end: int) -> list[int]:
        """The typed characters that drawn characters ``start:end`` stand for (a line
        break this layout added stands for nothing; a typed one for its newline)."""
        indices: set[int] = set()
        position = 0
        for piece in self.pieces:
            text = piece.drawn.text
            low, high = max(start - position, 0), min(end - position, len(text))
            indices.update(piece.offset + i for i in logical_indices(piece.drawn, low, high))
            position += len(text)
            if piece.newline is not None and start <= position < end:
                indices.add(piece.newline)
            position += 1
        return sorted(indices)


class RightToLeftText:
    def __init__(self, text: tk.Text, body_font: tkfont.Font, margins: int) -> None:
        self.text = text
        self.font = body_font
        self.margins = margins
        self._records: dict[int, _Record] = {}      # in insertion order, which is the view's
        self._next = 0
        self._width = 0
        self._widths: dict[str, int] = {}
        self._generation = 0             # bumped by each new width: older passes stop
        text.tag_configure(RIGHT_ALIGNED_TAG, justify="right")
        text.bind("<<Copy>>", self._copy, add="+")
        # X11's other clipboard (select, then middle-click): the typed text too.
        self._primary_cache: tuple[tuple[str, ...], str] | None = None
        for kind in ("STRING", "UTF8_STRING"):
            text.selection_handle(self._primary, selection="PRIMARY", type=kind)
        text.bind("<Configure>", self._on_resize, add="+")

    def insert(self, index: str, typed: str, tags: tuple[str, ...], *, align: bool = True) -> None:
        """Insert ``typed`` (any number of lines) at ``index``, in drawing order if it
        needs it. ``align`` (a member's message): a right-to-left paragraph takes its
        own direction, is aligned right and broken to the view's width. Otherwise
        (names, the client's own lines) every line reads left to right as a whole, so a
        member's name cannot carry the client's sentence around it."""
        if not needs_reordering(typed):
            self.text.insert(index, typed, tags)
            return
        self._next += 1
        record = _Record(typed, tags, align)
        self._records[self._next] = record
        self._lay_out(self._next, record, index)

    def _lay_out(self, number: int, record: _Record, index: str) -> None:
        record.pieces = []
        offset = 0
        for paragraph in record.typed.split("\n"):
            end = offset + len(paragraph)
            starts = self._break(paragraph) if record.align else [0]
            pieces = visual_pieces(paragraph, starts, right_to_left=None if record.align else False)
            # A piece's spans count from its paragraph's start (pieces share one resolution).
            record.pieces.extend(_Piece(offset, drawn, None) for drawn in pieces)
            if end < len(record.typed):
                record.pieces[-1].newline = end
            offset = end + 1
        base = (*record.tags, RTL_TAG, f"{RTL_TAG}{number}")
        aligned = (*base, RIGHT_ALIGNED_TAG)
        pairs: list[str | tuple[str, ...]] = []
        for segment, right_to_left in record.drawn_segments():
            pairs += [segment, aligned if right_to_left and record.align else base]
        self.text.insert(index, *pairs)      # one call: Tk places each after the one before

    def _available(self) -> int:
        return self.text.winfo_width() - 2 * self.margins - 8

    def _fits(self, record: _Record) -> bool:
        """True if no paragraph was broken and none needs to be at the view's width
        (most messages: a new width need not touch them)."""
        if record.widths is None:
            record.widths = [self.font.measure(paragraph) for paragraph in record.typed.split("\n")]
        broken = len(record.pieces) > len(record.widths)
        return not broken and max(record.widths) <= self._available()

    def _break(self, paragraph: str) -> list[int]:
        """Where the screen lines of ``paragraph`` start (typed offsets) at the view's width."""
        width = self._available()
        if width < 100:      # not laid out yet: one piece, laid out again when it is
            return [0]
        starts, used = [0], 0
        for match in _WORDS.finditer(paragraph):
            word = match.group()
            # Words measured one at a time (not the growing line again for each):
            # linear in the line's length, and kerning across a space is nil.
            if used and used + self._measure(word.rstrip()) > width:
                starts.append(match.start())
                used = 0
            used += self._measure(word)
        return starts

    def _measure(self, word: str) -> int:
        """A word's width in pixels, remembered (words repeat; a Tk call each is slow)."""
        width = self._widths.get(word)
        if width is None:
            if len(self._widths) >= MAX_REMEMBERED_WIDTHS:
                self._widths.clear()
            width = self._widths[word] = self.font.measure(word[:500])
        return width

    # -- a new width ----------------------------------------------------------------------

    def _on_resize(self, event: tk.Event) -> None:
        if event.width == self._width:
            return
        self._width = event.width
        self._generation += 1
        if self._records:
            # Newest first (what is on screen when following the conversation), a slice
            # at a time, so a long history never freezes the window on a resize.
            pending = sorted(self._records, reverse=True)
            self.text.after_idle(self._lay_out_some, pending, self._generation)

    def _lay_out_some(self, pending: list[int], generation: int) -> None:
        if generation != self._generation:
            return          # the width changed again: that pass starts over
        at_end = self.text.yview()[1] >= 0.999
        taken, chars = 0, 0
        while taken < len(pending) and chars < RELAYOUT_CHARS:
            record = self._records.get(pending[taken])
            chars += len(record.typed) if record else 0
            taken += 1
        self.lay_out_again(pending[:taken])
        if at_end:
            self.text.see("end")
        if taken < len(pending):
            self.text.after(1, self._lay_out_some, pending[taken:], generation)

    def lay_out_again(self, numbers: list[int] | None = None) -> None:
        """Break reordered texts (all, or those numbered) again for the view's width."""
        state = self.text.cget("state")
        self.text.configure(state="normal")
        try:
            for number in list(self._records) if numbers is None else numbers:
                record = self._records.get(number)
                if record is None or not record.align or self._fits(record):
                    continue
                ranges = self.text.tag_ranges(f"{RTL_TAG}{number}")
                if not ranges:
                    self._forget(number)
                    continue
                start = self.text.index(ranges[0])
                self.text.delete(start, ranges[1])
                self._lay_out(number, record, start)
        finally:
            self.text.configure(state=state)

    # -- the view's oldest lines dropped --------------------------------------------------

    def clean_cut(self, index: str) -> str:
        """``index``, or the start of the reordered text it falls inside: the view drops
        whole texts, never half of one (what was left would copy wrong); one that is
        cut into stays whole until the cut passes it (a message is at most 96 KiB)."""
        found = self.text.tag_prevrange(RTL_TAG, index)
        if found and self.text.compare(found[1], ">", index):
            return self.text.index(f"{found[0]} linestart")
        return index

    def forget_deleted(self) -> None:
        """Drop the records of texts no longer in the view (after the oldest lines were
        deleted): the oldest first, stopping at the first still there."""
        for number in list(self._records):
            if self.text.tag_ranges(f"{RTL_TAG}{number}"):
                return
            self._forget(number)

    def _forget(self, number: int) -> None:
        del self._records[number]
        self.text.tag_delete(f"{RTL_TAG}{number}")

    # -- back to what was typed -----------------------------------------------------------

    def logical_text(self, first: str, last: str) -> str:
        """The view's text from ``first`` to ``last`` with reordered texts as typed."""
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

    def _typed_between(self, range_start: str, first: str, range_end: str, last: str) -> str:
        """What was typed for the drawn characters from ``first`` to the end of the range
        (or ``last``), where several records' tags may meet in one tag range."""
        text, parts = self.text, []
        position, stop = first, range_end if text.compare(range_end, "<", last) else last
        while text.compare(position, "<", stop):
            number = next(int(m.group(1)) for tag in text.tag_names(position) if (m := _RECORD_TAG.match(tag)))
            own_start, own_end = text.tag_prevrange(f"{RTL_TAG}{number}", f"{position}+1c")
            end = own_end if text.compare(own_end, "<", stop) else stop
            record = self._records[number]
            low, high = self._count(own_start, position), self._count(own_start, end)
            parts.append("".join(record.typed[i] for i in record.typed_indices(low, high)))
            position = text.index(end)
        return "".join(parts)

    def _count(self, start: str, end: str) -> int:
        if self.text.compare(end, "<=", start):
            return 0
        counted = self.text.count(start, end, "chars")
        return int(counted[0]) if counted else 0

    def _primary(self, offset: str, length: str) -> str:
        """Tk asks for the selection in slices: the typed text of it, worked out once."""
        if not self.text.tag_ranges("sel"):
            return ""
        key = (*(str(i) for i in self.text.tag_ranges("sel")), self.text.index("end"), str(self._next))
        if self._primary_cache is None or self._primary_cache[0] != key:
            self._primary_cache = (key, self.logical_text("sel.first", "sel.last"))
        start = int(offset)
        return self._primary_cache[1][start:start + int(length)]

    def _copy(self, event: tk.Event) -> str | None:
        if not self.text.tag_ranges("sel"):
            return None
        selected = self.logical_text("sel.first", "sel.last")
        self.text.clipboard_clear()
        self.text.clipboard_append(selected)
        return "break"

