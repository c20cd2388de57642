"""The chat window of the desktop app: message view, members, composer, status bar.

A passive view: it draws what ``desktop_app.App`` tells it and reports what the
user does through the callbacks it is given. It knows nothing of sessions or
sockets. Every string that reaches a widget goes through ``tk_safe`` first, so
characters Tk 8.6 cannot draw become U+FFFD instead of breaking the window.
Tk thread only.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from tkinter import ttk

from securex.desktop.theme import Theme, sender_colour, tk_safe

MAX_VIEW_LINES = 20_000          # older lines are dropped so memory stays bounded
GROUP_WITHIN = timedelta(minutes=3)   # consecutive messages by one sender share a header
SIDEBAR_WIDTH = 220


class ChatWindow(ttk.Frame):
    """``on_send(text)`` gets what the user typed (Enter); ``on_action()`` runs when
    the banner's button (Reconnect / Connect again) is pressed."""

    def __init__(self, master: tk.Misc, theme: Theme, *, on_send: Callable[[str], None],
                 on_action: Callable[[], None]) -> None:
        super().__init__(master)
        self.theme = theme
        self.on_send, self.on_action = on_send, on_action
        self._last_header: tuple[str, bool, datetime] | None = None
        self._colour_tags: set[str] = set()
        self._pinned = True   # the view follows new lines until the user scrolls up
        self.message_count = 0
        self.create_widgets()
        self._configure_tags()
        self.set_input_enabled(False)

    def create_widgets(self) -> None:
        p = self.theme.palette
        self.columnconfigure(0, weight=1)
        self.rowconfigure(0, weight=1)
        panes = ttk.PanedWindow(self, orient="horizontal")
        panes.grid(row=0, column=0, sticky="nsew")

        conversation = ttk.Frame(panes)
        conversation.columnconfigure(0, weight=1)
        conversation.rowconfigure(0, weight=1)
        self.transcript = tk.Text(
            conversation, wrap="word", state="disabled", cursor="arrow", takefocus=False,
            font=self.theme.font("body"), background=p.surface, foreground=p.text,
            selectbackground=p.selection, selectforeground=p.text, inactiveselectbackground=p.selection,
            borderwidth=0, highlightthickness=0, padx=0, pady=10, spacing1=1, spacing3=1)
        self.transcript.grid(row=0, column=0, sticky="nsew")
        scrollbar = ttk.Scrollbar(conversation, orient="vertical", command=self._scroll_by_user)
        scrollbar.grid(row=0, column=1, sticky="ns")
        self.transcript.configure(yscrollcommand=scrollbar.set)
        for wheel in ("<MouseWheel>", "<Button-4>", "<Button-5>", "<B1-Motion>"):
            # The class binding scrolls after this one runs: look once it has.
            self.transcript.bind(wheel, lambda e: self.after_idle(self._note_scroll_position), add="+")
        # When the view changes height (the banner comes and goes, the window is
        # resized), a view that was following the conversation keeps following it.
        self.transcript.bind("<Configure>", lambda e: self._pinned and self.transcript.see("end"))
        panes.add(conversation, weight=1)

        sidebar = ttk.Frame(panes, style="Sidebar.TFrame", padding=(14, 14, 10, 12), width=SIDEBAR_WIDTH)
        sidebar.columnconfigure(0, weight=1)
        sidebar.rowconfigure(1, weight=1)
        heading = ttk.Frame(sidebar, style="Sidebar.TFrame")
        heading.grid(row=0, column=0, sticky="ew", pady=(0, 6))
        heading.columnconfigure(0, weight=1)
        ttk.Label(heading, text="MEMBERS", style="Sidebar.Heading.TLabel").grid(row=0, column=0, sticky="w")
        self.member_count = ttk.Label(heading, text="", style="Sidebar.Heading.TLabel")
        self.member_count.grid(row=0, column=1, sticky="e")
        self.members = tk.Listbox(
            sidebar, activestyle="none", exportselection=False, takefocus=False, width=22,
            font=self.theme.font("body"), background=p.sidebar, foreground=p.text,
            selectbackground=p.sidebar, selectforeground=p.text, borderwidth=0, highlightthickness=0)
        self.members.grid(row=1, column=0, sticky="nsew")
        ttk.Label(sidebar, text="ROOM KEY", style="Sidebar.Heading.TLabel").grid(
            row=2, column=0, sticky="w", pady=(12, 4))
        self.fingerprint = ttk.Label(sidebar, text="\u2014", style="Sidebar.Mono.TLabel")
        self.fingerprint.grid(row=3, column=0, sticky="w")
        ttk.Label(sidebar, text="Everyone should see the same key. Compare it out loud.",
                  style="Sidebar.Small.TLabel", wraplength=SIDEBAR_WIDTH - 24,
                  justify="left").grid(row=4, column=0, sticky="w", pady=(4, 0))
        panes.add(sidebar, weight=0)

        self.banner = ttk.Frame(self, style="Banner.TFrame", padding=(14, 8))
        self.banner.columnconfigure(0, weight=1)
        self.banner_text = ttk.Label(self.banner, style="Banner.TLabel", wraplength=560, justify="left")
        self.banner_text.grid(row=0, column=0, sticky="w")
        self.banner_button = ttk.Button(self.banner, command=lambda: self.on_action())
        self.banner_button.grid(row=0, column=1, sticky="e", padx=(12, 0))
        self.banner.grid(row=1, column=0, sticky="ew")
        self.banner.grid_remove()

        composer = ttk.Frame(self, padding=(12, 10))
        composer.grid(row=2, column=0, sticky="ew")
        composer.columnconfigure(0, weight=1)
        self.input = tk.Text(
            composer, height=3, wrap="word", undo=True, font=self.theme.font("body"),
            background=p.surface, foreground=p.text, insertbackground=p.text,
            selectbackground=p.selection, selectforeground=p.text, relief="flat", borderwidth=0,
            padx=10, pady=7, highlightthickness=1, highlightbackground=p.border, highlightcolor=p.accent)
        self.input.grid(row=0, column=0, sticky="ew")
        self.send_button = ttk.Button(composer, text="Send", style="Accent.TButton", command=self.send)
        self.send_button.grid(row=0, column=1, sticky="se", padx=(10, 0))
        self.input.bind("<Return>", self.send)
        self.input.bind("<KP_Enter>", self.send)
        self.input.bind("<Shift-Return>", self._newline)
        self.input.bind("<Shift-KP_Enter>", self._newline)

        status = ttk.Frame(self, style="Status.TFrame", padding=(12, 4))
        status.grid(row=3, column=0, sticky="ew")
        status.columnconfigure(4, weight=1)
        self.status_state = ttk.Label(status, style="Status.TLabel")
        self.status_state.grid(row=0, column=0, sticky="w")
        self.status_details = [ttk.Label(status, style="Status.Muted.TLabel") for _ in range(3)]
        for column, label in enumerate(self.status_details, start=1):
            label.grid(row=0, column=column, sticky="w", padx=(14, 0))
        ttk.Label(status, text="Enter to send \u00b7 Shift+Enter for a new line",
                  style="Status.Muted.TLabel").grid(row=0, column=5, sticky="e")

    def _configure_tags(self) -> None:
        p, fonts = self.theme.palette, self.theme.fonts
        text = self.transcript
        margins = dict(lmargin1=18, lmargin2=18, rmargin=18)
        text.tag_configure("header", spacing1=10, **margins)
        text.tag_configure("time", font=fonts["small"], foreground=p.muted)
        text.tag_configure("body", spacing3=2, **margins)
        text.tag_configure("own", background=p.own_background, lmargincolor=p.own_background,
                           rmargincolor=p.own_background)
        text.tag_configure("own_name", font=fonts["bold"], foreground=p.accent)
        text.tag_configure("notice", font=fonts["notice"], foreground=p.muted, justify="center",
                           spacing1=8, spacing3=4, **margins)
        text.tag_configure("warning", font=fonts["small"], foreground=p.warning,
                           background=p.warning_background, lmargincolor=p.warning_background,
                           rmargincolor=p.warning_background, spacing1=8, spacing3=6, **margins)
        # Selection drawn above the "own" and "warning" backgrounds.
        text.tag_raise("sel")

    # -- message view --------------------------------------------------------

    def _scroll_by_user(self, *args: str) -> None:
        self.transcript.yview(*args)
        self._note_scroll_position()

    def _note_scroll_position(self) -> None:
        self._pinned = self.transcript.yview()[1] >= 0.999

    @property
    def following(self) -> bool:
        """True while the view shows the newest line as lines arrive."""
        return self._pinned

    @contextmanager
    def transcript_batch(self) -> Iterator[None]:
        """Group appends: one unlock, one trim, and one scroll for the whole batch.
        The view follows new lines unless the user has scrolled up."""
        self.transcript.configure(state="normal")
        try:
            yield
        finally:
            excess = int(self.transcript.index("end-1c").split(".")[0]) - MAX_VIEW_LINES
            if excess > 0:
                self.transcript.delete("1.0", f"{excess + 1}.0")
            self.transcript.configure(state="disabled")
            if self._pinned:
                self.transcript.see("end")

    def add_message(self, sender: str, text: str, *, own: bool, at: datetime) -> None:
        """Append a chat message; call inside ``transcript_batch``."""
        insert = self.transcript.insert
        block = ("own",) if own else ()
        last = self._last_header
        if last is None or last[:2] != (sender, own) or at - last[2] > GROUP_WITHIN:
            name_tag = "own_name" if own else self._colour_tag(sender)
            insert("end", tk_safe(sender), ("header", name_tag, *block),
                   "  " + at.strftime("%H:%M"), ("header", "time", *block), "\n", ("header", *block))
        self._last_header = (sender, own, at)
        insert("end", tk_safe(text) + "\n", ("body", *block))
        self.message_count += 1

    def add_notice(self, text: str, *, at: datetime, warning: bool = False) -> None:
        """Append a system line (joins, leaves, connection news); ``warning`` for
        things that went wrong, such as a dropped forgery."""
        line = f"\u26a0  {text}" if warning else f"{text}  \u00b7  {at.strftime('%H:%M')}"
        self.transcript.insert("end", tk_safe(line) + "\n", "warning" if warning else "notice")
        self._last_header = None

    def _colour_tag(self, sender: str) -> str:
        colour = sender_colour(self.theme.palette, sender)
        tag = "name" + colour
        if tag not in self._colour_tags:
            self.transcript.tag_configure(tag, font=self.theme.font("bold"), foreground=colour)
            self._colour_tags.add(tag)
        return tag

    def transcript_text(self) -> str:
        return self.transcript.get("1.0", "end-1c")

    # -- members, status, banner ------------------------------------------------

    def set_members(self, names: tuple[str, ...], capacity: int) -> None:
        """``names[0]`` is this user."""
        self.member_count.configure(text=f"{len(names)}/{capacity}")
        self.members.delete(0, "end")
        for index, name in enumerate(names):
            label = tk_safe(name) + ("  (you)" if index == 0 else "")
            self.members.insert("end", f" \u25cf  {label}")
            colour = self.theme.palette.accent if index == 0 else sender_colour(self.theme.palette, name)
            self.members.itemconfigure(index, foreground=colour, selectforeground=colour)

    def dim_members(self) -> None:
        """Grey the list out: while disconnected nobody is known to be there."""
        for index in range(self.members.size()):
            self.members.itemconfigure(index, foreground=self.theme.palette.muted)

    def set_status(self, state: str, *, tone: str = "ok", server: str = "", fingerprint: str = "",
                   cipher: str = "") -> None:
        """``tone`` is ok, warning or error: the colour of the state dot."""
        colour = {"ok": self.theme.palette.ok, "warning": self.theme.palette.warning,
                  "error": self.theme.palette.error}[tone]
        self.status_state.configure(text=f"\u25cf {state}", foreground=colour)
        details = (server, f"Key {fingerprint}" if fingerprint else "", cipher)
        for label, text in zip(self.status_details, details, strict=True):
            label.configure(text=tk_safe(text))
        if fingerprint:
            self.fingerprint.configure(text=fingerprint.replace("-", " "))

    def show_banner(self, text: str, button: str) -> None:
        text = tk_safe(text)
        if (text, button) != (self.banner_text.cget("text"), self.banner_button.cget("text")):
            # Called on every pump tick during a countdown: only redraw on change.
            self.banner_text.configure(text=text)
            self.banner_button.configure(text=button)
        self.banner.grid()

    def hide_banner(self) -> None:
        self.banner.grid_remove()

    @property
    def banner_visible(self) -> bool:
        return bool(self.banner.winfo_manager())

    # -- composer ----------------------------------------------------------------

    def set_input_enabled(self, enabled: bool) -> None:
        p = self.theme.palette
        self.input.configure(state="normal" if enabled else "disabled",
                             background=p.surface if enabled else p.window,
                             highlightcolor=p.accent if enabled else p.border)
        self.send_button.state(["!disabled"] if enabled else ["disabled"])
        if enabled:
            self.input.focus_set()

    def send(self, event: tk.Event | None = None) -> str:
        if str(self.input.cget("state")) == "normal":
            text = self.input.get("1.0", "end-1c")
            if text.strip():
                self.input.delete("1.0", "end")
                self.on_send(text)
        return "break"   # Enter never inserts a newline

    def _newline(self, event: tk.Event) -> str:
        self.input.insert("insert", "\n")
        self.input.see("insert")
        return "break"
