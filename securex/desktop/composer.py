"""The message box of the chat window, its Send and Send file buttons, and the line
under it that says what Enter will do.

Three modes, each visible at a glance in both themes:

* READY: in the room; Enter sends.
* QUEUED: not connected right now; typing still works and what is sent is queued
  by the session and goes out when the room is back (the hint says so, in the
  warning colour, and the box gets a warning border).
* OFF: nothing can be sent (connecting, leaving, or the session ended): the box is
  locked, drawn on a darker field with muted text, and the hint says why.

Tk 8.6 draws what is typed left to right, so while the line being typed has
Hebrew or Arabic in it the hint shows that line as it will read in the view.

``on_send(text)`` returns True if the text was taken (the box empties) or False to
keep the draft. A passive view; Tk thread only.
"""

from __future__ import annotations

import enum
import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from securex.bidi import drawn, needs_reordering
from securex.desktop.theme import Theme
from securex.desktop.widgets import wrap_to_width

READY_HINT = "Enter to send \u00b7 Shift+Enter for a new line \u00b7 /help lists the commands"
QUEUED_HINT = ("Not connected: what you send now is queued, and goes out when you are back in the room.")
PREVIEW_PREFIX = "Reads as:  "
PREVIEW_CHARS = 90            # the end of a longer line: the part being typed


class Mode(enum.Enum):
    READY = "in the room"
    QUEUED = "not connected: messages are queued"
    OFF = "nothing can be sent"


class Composer(ttk.Frame):
    def __init__(self, master: tk.Misc, theme: Theme, *, on_send: Callable[[str], bool],
                 on_send_file: Callable[[], None]) -> None:
        super().__init__(master, padding=(12, 10, 12, 6))
        self.theme = theme
        self.on_send, self.on_send_file = on_send, on_send_file
        self.mode = Mode.OFF
        self.create_widgets()
        self.set_mode(Mode.OFF, "")

    def create_widgets(self) -> None:
        p = self.theme.palette
        self.columnconfigure(0, weight=1)
        self.input = tk.Text(
            self, width=30, height=3, wrap="word", undo=True, font=self.theme.font("body"),
            background=p.surface, foreground=p.text, insertbackground=p.text,
            selectbackground=p.selection, selectforeground=p.text, relief="flat", borderwidth=0,
            padx=10, pady=7, highlightthickness=1, highlightbackground=p.border, highlightcolor=p.accent)
        self.input.grid(row=0, column=0, rowspan=2, sticky="nsew")
        self.send_button = ttk.Button(self, text="Send", style="Accent.TButton", command=self.send)
        self.send_button.grid(row=0, column=1, sticky="new", padx=(10, 0))
        self.file_button = ttk.Button(self, text="Send file\u2026", command=lambda: self.on_send_file())
        self.file_button.grid(row=1, column=1, sticky="sew", padx=(10, 0), pady=(6, 0))
        self.hint = ttk.Label(self, style="Small.TLabel", wraplength=400, justify="left")
        self.hint.grid(row=2, column=0, columnspan=2, sticky="ew", pady=(5, 0))
        wrap_to_width(self.hint)   # at the window's minimum size a hint takes two lines
        for sequence in ("<Return>", "<KP_Enter>"):
            self.input.bind(sequence, self.send)
        for sequence in ("<Shift-Return>", "<Shift-KP_Enter>"):
            self.input.bind(sequence, self._newline)
        for sequence in ("<Control-a>", "<Control-A>"):
            self.input.bind(sequence, self._select_all)
        self.input.bind("<KeyRelease>", lambda e: self._show_preview(), add="+")
        self.input.bind("<<Paste>>", lambda e: self.after_idle(self._show_preview), add="+")

    # -- modes -----------------------------------------------------------------------

    def set_mode(self, mode: Mode, reason: str = "") -> None:
        """Switch mode; ``reason`` is the hint shown in OFF mode."""
        p = self.theme.palette
        self.mode = mode
        enabled = mode != Mode.OFF
        self.input.configure(
            state="normal" if enabled else "disabled",
            background=p.surface if enabled else p.disabled,
            foreground=p.text if enabled else p.muted,
            highlightbackground=p.warning if mode == Mode.QUEUED else p.border,
            highlightcolor={Mode.READY: p.accent, Mode.QUEUED: p.warning}.get(mode, p.border),
            cursor="xterm" if enabled else "arrow")
        self.send_button.state(["!disabled"] if enabled else ["disabled"])
        self.send_button.configure(text="Queue" if mode == Mode.QUEUED else "Send")
        self.file_button.state(["!disabled"] if mode == Mode.READY else ["disabled"])
        if mode == Mode.READY:
            self._mode_hint = (READY_HINT, "Small.TLabel")
        elif mode == Mode.QUEUED:
            self._mode_hint = ("\u26a0  " + QUEUED_HINT, "Warning.TLabel")
        else:
            self._mode_hint = (reason, "Small.TLabel")
        self._show_preview()

    def _show_preview(self) -> None:
        """The hint: the line being typed as it will read, if it has right-to-left
        letters; otherwise what the mode says."""
        line = self.input.get("insert linestart", "insert lineend") if self.enabled else ""
        if needs_reordering(line):
            self.hint.configure(text=PREVIEW_PREFIX + drawn(line[-PREVIEW_CHARS:]), style="Small.TLabel")
        else:
            text, style = self._mode_hint
            self.hint.configure(text=text, style=style)

    @property
    def enabled(self) -> bool:
        return self.mode != Mode.OFF

    # -- the draft ---------------------------------------------------------------------

    @property
    def draft(self) -> str:
        return self.input.get("1.0", "end-1c")

    def clear(self) -> None:
        self.input.delete("1.0", "end")
        self._show_preview()

    def send(self, event: tk.Event | None = None) -> str:
        if self.enabled:
            text = self.draft
            if text.strip() and self.on_send(text):
                self.clear()
            elif text.lstrip().startswith("/"):
                # A refused command stays to be fixed, selected: typing the next one replaces
                # it instead of running into it ("/accept/who").
                self._select_all(None)
        return "break"   # Enter never inserts a newline

    def _newline(self, event: tk.Event) -> str:
        self.input.insert("insert", "\n")
        self.input.see("insert")
        return "break"

    def _select_all(self, event: tk.Event | None) -> str:
        self.input.tag_add("sel", "1.0", "end-1c")
        self.input.mark_set("insert", "end-1c")
        return "break"
