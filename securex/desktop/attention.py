"""Telling the user that something arrived while they were looking elsewhere: an unread
count in the window title, and the bell.

Whatever arrives during one pump tick costs at most one bell and one title change
(``flush``), however many messages came. Focusing the window clears the count.
Tk thread only.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable


class Attention:
    """``title()`` gives the window's title without the count (None: leave the title alone)."""

    def __init__(self, root: tk.Tk, title: Callable[[], str | None]) -> None:
        self.root = root
        self.title = title
        self.focused = False
        self.unread = 0
        self._ring = False      # something to ring the bell for since the last flush
        root.bind("<FocusIn>", self._focus_in, add="+")
        root.bind("<FocusOut>", self._focus_out, add="+")

    def unseen(self, *, loud: bool = False) -> None:
        """Something from the others arrived; ``loud`` rings even if the window is in front
        (a possible attack)."""
        if not self.focused:
            self.unread += 1
            self._ring = True
        elif loud:
            self._ring = True

    def flush(self) -> None:
        """At the end of a pump tick: one title update and one bell for all of it."""
        if self._ring:
            self._ring = False
            self.update_title()
            self.root.bell()

    def update_title(self) -> None:
        title = self.title()
        if title is not None:
            self.root.title(f"({self.unread}) {title}" if self.unread else title)

    def _focus_in(self, event: tk.Event) -> None:
        self.focused = True
        if self.unread:
            self.unread = 0
            self.update_title()

    def _focus_out(self, event: tk.Event) -> None:
        self.focused = False
