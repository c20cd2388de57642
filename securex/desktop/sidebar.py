"""The chat window's side panel: who is in the room with their safety codes, your own
safety code, and where accepted files go.

When the panel is short of height (a full room with a banner showing, a small
window) the explanation under your safety code is dropped first, so the downloads
folder and its Change button stay in view; hovering over your code still shows it.
Shorter still (a full room in the smallest window), the panel scrolls: a scroll
bar appears, and the mouse wheel over the panel moves it.

A passive view. Each member gets a colour of their own (``ColourAssigner``) that
the message view uses for their name too; it stays theirs while they stay.
``on_change_downloads()`` runs when the user asks to change the downloads folder.
Tk thread only.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from pathlib import Path
from tkinter import ttk

from securex.bidi import drawn
from securex.desktop.paths import display_path
from securex.desktop.theme import ColourAssigner, Theme
from securex.desktop.tooltip import Tooltip
from securex.events import Member

WIDTH = 236
TEXT_WIDTH = WIDTH - 28     # wrap length of the panel's text
CODE_HINT = "Read your code to the others and check theirs: the code under a name proves it is really them."


class Sidebar(ttk.Frame):
    def __init__(self, master: tk.Misc, theme: Theme, *, on_change_downloads: Callable[[], None]) -> None:
        super().__init__(master, style="Sidebar.TFrame")
        self.theme = theme
        self.colours = ColourAssigner(theme.palette)
        self.members: tuple[Member, ...] = ()
        self.capacity = 0
        self.rows: list[tuple[ttk.Label, ttk.Label]] = []
        self.tooltip = Tooltip(self, theme)
        # The panel's content lives in a frame on a canvas, which scrolls it when it is
        # taller than the panel; the canvas asks for the content's width.
        self.rowconfigure(0, weight=1)
        self.columnconfigure(0, weight=1)
        self.canvas = tk.Canvas(self, background=theme.palette.sidebar, highlightthickness=0, borderwidth=0,
                                width=WIDTH, height=1)
        self.canvas.grid(row=0, column=0, sticky="nsew")
        self.scrollbar = ttk.Scrollbar(self, orient="vertical", command=self.canvas.yview)
        self.scrollbar.grid(row=0, column=1, sticky="ns")
        self.scrollbar.grid_remove()
        self.canvas.configure(yscrollcommand=self._scrolled)
        self.body = ttk.Frame(self.canvas, style="Sidebar.TFrame", padding=(14, 14, 10, 12))
        self._body_item = self.canvas.create_window(0, 0, window=self.body, anchor="nw")
        self._wheel_tag = f"SidebarWheel{id(self)}"
        for sequence, step in (("<MouseWheel>", None), ("<Button-4>", -1), ("<Button-5>", 1)):
            self.bind_class(self._wheel_tag, sequence, lambda event, step=step: self._wheel(event, step))
        self.create_widgets(on_change_downloads)
        self.body.bind("<Configure>", self._body_changed, add="+")
        self.canvas.bind("<Configure>", self._canvas_changed, add="+")
        self._wheel_over(self.canvas, self.body)

    def create_widgets(self, on_change_downloads: Callable[[], None]) -> None:
        self.body.columnconfigure(0, weight=1)
        heading = ttk.Frame(self.body, style="Sidebar.TFrame")
        heading.grid(row=0, column=0, sticky="ew", pady=(0, 6))
        heading.columnconfigure(0, weight=1)
        ttk.Label(heading, text="MEMBERS", style="Sidebar.Heading.TLabel").grid(row=0, column=0, sticky="w")
        self.member_count = ttk.Label(heading, text="", style="Sidebar.Heading.TLabel")
        self.member_count.grid(row=0, column=1, sticky="e")
        self.members_panel = ttk.Frame(self.body, style="Sidebar.TFrame")
        self.members_panel.grid(row=1, column=0, sticky="nsew")
        self.members_panel.columnconfigure(0, weight=1)

        ttk.Label(self.body, text="YOUR SAFETY CODE", style="Sidebar.Heading.TLabel").grid(
            row=2, column=0, sticky="w", pady=(12, 4))
        self.own_code = ttk.Label(self.body, text="\u2014", style="Sidebar.Mono.TLabel")
        self.own_code.grid(row=3, column=0, sticky="w")
        self.own_code.bind("<Enter>", lambda event: self.tooltip.show(CODE_HINT, event.x_root, event.y_root))
        self.own_code.bind("<Leave>", lambda _event: self.tooltip.hide())
        self.code_hint = ttk.Label(self.body, text=CODE_HINT, style="Sidebar.Small.TLabel", wraplength=TEXT_WIDTH,
                                   justify="left")
        self.code_hint.grid(row=4, column=0, sticky="w", pady=(4, 0))

        ttk.Label(self.body, text="FILES YOU ACCEPT GO TO", style="Sidebar.Heading.TLabel").grid(
            row=5, column=0, sticky="w", pady=(14, 4))
        self.downloads_label = ttk.Label(self.body, style="Sidebar.Small.TLabel", wraplength=TEXT_WIDTH,
                                         justify="left")
        self.downloads_label.grid(row=6, column=0, sticky="w")
        self.downloads_button = ttk.Button(self.body, text="Change\u2026", style="Small.TButton",
                                           command=on_change_downloads)
        self.downloads_button.grid(row=7, column=0, sticky="w", pady=(4, 0))

    def set_members(self, members: tuple[Member, ...], capacity: int) -> None:
        """``members[0]`` is this user. Each row: the name in that member's colour, and
        its safety code underneath."""
        self.members, self.capacity = members, capacity
        self.colours.keep_only([m.safety_code for m in members if not m.you])
        self.member_count.configure(text=f"{len(members)}/{capacity}")
        for name_label, code_label in self.rows:
            name_label.destroy()
            code_label.destroy()
        self.rows = []
        for index, member in enumerate(members):
            label = f"\u25cf  {drawn(member.label)}" + (" (you)" if member.you else "")
            name = ttk.Label(self.members_panel, text=label,
                             style="Sidebar.Member.TLabel", foreground=self.colour_of(member),
                             wraplength=TEXT_WIDTH)
            code = ttk.Label(self.members_panel, text=member.safety_code, style="Sidebar.Code.TLabel")
            name.grid(row=2 * index, column=0, sticky="w", pady=(6 if index else 0, 0))
            code.grid(row=2 * index + 1, column=0, sticky="w", padx=(22, 0))
            self._wheel_over(name, code)
            self.rows.append((name, code))
        self.after_idle(self._refit)

    def colour_of(self, member: Member) -> str:
        return self.theme.palette.accent_text if member.you else self.colours.colour(member.safety_code)

    def dim(self) -> None:
        """Grey the list out: while disconnected nobody is known to be there."""
        for name_label, _ in self.rows:
            name_label.configure(foreground=self.theme.palette.muted)

    def set_own_code(self, code: str) -> None:
        self.own_code.configure(text=code)

    def set_downloads(self, folder: Path) -> None:
        self.downloads_label.configure(text=display_path(folder))
        self.after_idle(self._refit)

    def _refit(self) -> None:
        """``_fit`` once the grid has measured what changed: the panel's own size may not
        change (so no <Configure>), only what it needs."""
        if self.winfo_exists():
            self.update_idletasks()
            self._fit()

    # -- scrolling ---------------------------------------------------------------------------

    def _wheel_over(self, *widgets: tk.Misc) -> None:
        """The mouse wheel over these, and all inside them, scrolls the panel (a bind tag,
        after their own)."""
        for widget in widgets:
            widget.bindtags((*widget.bindtags(), self._wheel_tag))
            self._wheel_over(*widget.winfo_children())

    def _wheel(self, event: tk.Event, step: int | None) -> None:
        if self.scrollbar.winfo_manager():       # only when there is something to scroll
            self.canvas.yview_scroll(step if step is not None else (-1 if event.delta > 0 else 1), "units")

    def _body_changed(self, _event: object = None) -> None:
        width, height = self.body.winfo_reqwidth(), self.body.winfo_reqheight()
        self.canvas.configure(width=width, scrollregion=(0, 0, width, height))

    def _canvas_changed(self, event: tk.Event) -> None:
        self.canvas.itemconfigure(self._body_item, width=event.width)
        self._fit()

    def _scrolled(self, first: str, last: str) -> None:
        self.scrollbar.set(first, last)
        if float(first) <= 0.0 and float(last) >= 1.0:
            self.scrollbar.grid_remove()
        else:
            self.scrollbar.grid()

    def _fit(self, _event: object = None) -> None:
        """Drop the explanation under your code when the panel is too short for everything,
        and bring it back when there is room again. The heights compared are the grid's own
        measurements, so the two conditions cannot undo each other back and forth."""
        if not self.winfo_exists():
            return
        shown = bool(self.code_hint.winfo_manager())
        hint_height = self.code_hint.winfo_reqheight() + 4      # its label and the space above it
        needed_without = self.body.winfo_reqheight() - (hint_height if shown else 0)
        fits = needed_without + hint_height <= self.canvas.winfo_height()
        if shown and not fits:
            self.code_hint.grid_remove()
        elif fits and not shown:
            self.code_hint.grid()

    def summary(self) -> str:
        """What /who shows: a member a line, the safety codes lined up (the terminal, with one
        line per event, puts them on one line: the same words, the same codes)."""
        if not self.members:
            return "Not in the room yet."
        names = [f"{m.label}{' (you)' if m.you else ''}" for m in self.members]
        width = max(len(name) for name in names)
        rows = [f"  {name:<{width}}  {m.safety_code}" for name, m in zip(names, self.members, strict=True)]
        return "\n".join([f"In the room ({len(self.members)}/{self.capacity}):", *rows])
