"""Small widgets the chat window shares: a bar of text with buttons, and labels whose
text wraps to the width they are given. Tk thread only."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

BAR_WRAP = 520      # pixels: the bars' text wraps rather than widening the window (until laid out)
MIN_WRAP = 200


def wrap_to_width(label: ttk.Label) -> None:
    """From now on, wrap ``label``'s text at the width the layout gives it, so a long text
    takes more lines instead of asking for a wider window (and being cut off at the
    window's minimum size). The label should be gridded to fill its column."""
    def follow(event: tk.Event) -> None:
        wrap = max(MIN_WRAP, event.width - 4)
        if int(str(label.cget("wraplength")) or 0) != wrap:
            label.configure(wraplength=wrap)
    label.bind("<Configure>", follow, add="+")


class Bar(ttk.Frame):
    """A line of text with buttons, shown above or below the conversation. The text wraps
    to the width the buttons leave, so a long alert takes lines, not the window's width."""

    def __init__(self, master: tk.Misc, area: str) -> None:
        super().__init__(master, style=f"{area}TFrame", padding=(14, 8))
        self.columnconfigure(0, weight=1)
        self.label = ttk.Label(self, style=f"{area}TLabel", wraplength=BAR_WRAP, justify="left")
        self.label.grid(row=0, column=0, sticky="ew")
        wrap_to_width(self.label)
        self.buttons: list[ttk.Button] = []
        self._shown: tuple[str, list[tuple[str, Callable[[], None]]]] | None = None

    def show(self, text: str, *buttons: tuple[str, Callable[[], None]]) -> None:
        """Show ``text`` with these (label, action) buttons; the first is the default."""
        if (text, list(buttons)) != self._shown:
            # Called on every pump tick during a countdown: only rebuild on change.
            self._shown = (text, list(buttons))
            self.label.configure(text=text)
            for button in self.buttons:
                button.destroy()
            self.buttons = []
            for column, (label, action) in enumerate(buttons, start=1):
                button = ttk.Button(self, text=label, command=action,
                                    style="Accent.TButton" if column == 1 and len(buttons) > 1 else "TButton")
                button.grid(row=0, column=column, sticky="e", padx=(12 if column == 1 else 6, 0))
                self.buttons.append(button)
        self.grid()

    def hide(self) -> None:
        self.grid_remove()

    @property
    def visible(self) -> bool:
        return bool(self.winfo_manager())

    def showing(self, text: str) -> bool:
        """This text is what the bar shows now (another question may have taken it)."""
        return self.visible and self._shown is not None and self._shown[0] == text

    def button(self, label: str) -> ttk.Button:
        return next(b for b in self.buttons if b.cget("text") == label)
