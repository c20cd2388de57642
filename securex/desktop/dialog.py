"""The connect dialog of the desktop app (what it remembers is kept by ``settings.py``).

The dialog is a page inside the main window rather than a modal Toplevel, so
nothing ever blocks (tests drive it with ``invoke()``) and a failed connection
simply shows it again with the error. Like idlelib's query dialogs, widgets are
built in ``create_widgets`` and ``entry_ok`` returns a ``ConnectRequest`` or
None after showing the problem inline, in red, next to the fields.

Above the address fields, a live list of the rooms announced on the LAN
(``rooms.py``) fills in the address and port when one is picked; it browses
while the dialog is on screen and stops when it is not. Manual entry always works.

The fields are the one source of truth: every connection attempt, also the one
the command line asks for, is made from what they show, so an error message and
the fields always name the same server. A field marked red turns back as soon as
it is fixed; Ctrl+A selects a field's text; Escape cancels a connection attempt,
goes back to the conversation (when the dialog was opened from one) or quits.
The passphrase is never written anywhere. Tk thread only.
"""

from __future__ import annotations

import contextlib
import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass, field
from tkinter import ttk

from crypto_utils import generate_passphrase, passphrase_warning
from securex.address import split_host_port
from securex.desktop.rooms import BrowserFactory, RoomList
from securex.desktop.theme import Theme
from securex.discovery import Room, RoomBrowser
from securex.text import validate_name

HIDDEN_CHAR = "\u2022"


@dataclass(frozen=True)
class ConnectRequest:
    host: str
    port: int
    name: str
    passphrase: str = field(default="", repr=False)   # never printed by accident
    join_anyway: bool = False    # enter even if the members present share another passphrase


# -- the dialog ---------------------------------------------------------------

class ConnectDialog(ttk.Frame):
    """Asks where to connect and with which name and passphrase.

    ``on_connect(request)`` is called with a valid request; ``on_cancel()`` when
    the user presses Cancel (or Escape) while a connection attempt is under way;
    ``on_quit()`` for Quit; ``on_back()``, once ``set_back`` has given one, for
    "Back to the conversation" (or Escape)."""

    def __init__(self, master: tk.Misc, theme: Theme, initial: ConnectRequest, *,
                 on_connect: Callable[[ConnectRequest], None], on_cancel: Callable[[], None],
                 on_quit: Callable[[], None], browser_factory: BrowserFactory = RoomBrowser) -> None:
        super().__init__(master)
        self.theme = theme
        self.browser_factory = browser_factory
        self.on_connect, self.on_cancel, self.on_quit = on_connect, on_cancel, on_quit
        self.on_back: Callable[[], None] | None = None
        self.host = tk.StringVar(self, initial.host)
        self.port = tk.StringVar(self, str(initial.port))
        self.name = tk.StringVar(self, initial.name)
        self.passphrase = tk.StringVar(self, initial.passphrase)
        self.show_passphrase = tk.BooleanVar(self, False)
        self.busy = False
        self._generated: str | None = None   # the passphrase Generate made, while it is unchanged
        self._error_field: ttk.Entry | None = None   # the field the error message is about
        self.create_widgets()
        self.passphrase.trace_add("write", lambda *_: self._update_hint())
        for variable, entry in self._fields():
            variable.trace_add("write", lambda *_, entry=entry: self._recheck(entry))
        self._update_hint()
        # Browse only while the dialog is on screen (the app hides it during a chat).
        self.bind("<Map>", lambda event: self.rooms.start() if event.widget is self else None, add="+")
        self.bind("<Unmap>", lambda event: self.rooms.stop() if event.widget is self else None, add="+")

    def create_widgets(self) -> None:
        self.columnconfigure(0, weight=1)
        self.rowconfigure(0, weight=1)
        card = ttk.Frame(self, style="Card.TFrame", padding=(32, 26, 32, 24), borderwidth=1, relief="solid")
        card.grid(row=0, column=0, padx=28, pady=28)   # centred in whatever space the window gives
        self.card = card
        card.columnconfigure(0, weight=1)

        ttk.Label(card, text="Secure X", style="Card.Title.TLabel").grid(row=0, column=0, columnspan=3, sticky="w")
        ttk.Label(card, text="End-to-end encrypted group chat for your local network.",
                  style="Card.Muted.TLabel").grid(row=1, column=0, columnspan=3, sticky="w", pady=(2, 18))

        self.rooms = RoomList(card, self.theme, on_pick=self.use_room, on_choose=lambda room: self.focus_first_empty(),
                              browser_factory=self.browser_factory)
        self.rooms.grid(row=2, column=0, columnspan=3, sticky="ew", pady=(0, 4))

        self._label(card, "Server address", row=3, column=0, columnspan=2)
        self._label(card, "Port", row=3, column=2)
        self.host_entry = ttk.Entry(card, textvariable=self.host, width=30)
        self.host_entry.grid(row=4, column=0, columnspan=2, sticky="ew", padx=(0, 8))
        self.port_entry = ttk.Entry(card, textvariable=self.port, width=7)
        self.port_entry.grid(row=4, column=2, sticky="ew")

        self._label(card, "Your name", row=5, column=0, columnspan=3)
        self.name_entry = ttk.Entry(card, textvariable=self.name)
        self.name_entry.grid(row=6, column=0, columnspan=3, sticky="ew")

        self._label(card, "Room passphrase", row=7, column=0, columnspan=3)
        self.passphrase_entry = ttk.Entry(card, textvariable=self.passphrase, show=HIDDEN_CHAR)
        self.passphrase_entry.grid(row=8, column=0, columnspan=2, sticky="ew", padx=(0, 8))
        self.generate_button = ttk.Button(card, text="Generate", command=self.generate)
        self.generate_button.grid(row=8, column=2, sticky="ew")
        self.show_toggle = ttk.Checkbutton(card, text="Show", variable=self.show_passphrase,
                                           command=self._apply_show, style="Card.TCheckbutton")
        self.show_toggle.grid(row=9, column=0, sticky="w", pady=(6, 0))
        self.copy_button = ttk.Button(card, text="Copy", command=self.copy_passphrase)
        self.copy_button.grid(row=9, column=2, sticky="ew", pady=(6, 0))
        self.copy_button.grid_remove()   # offered once a passphrase has been generated
        self.hint_label = ttk.Label(card, style="Card.Muted.TLabel", wraplength=380, justify="left")
        self.hint_label.grid(row=10, column=0, columnspan=3, sticky="w", pady=(4, 0))

        self.error_label = ttk.Label(card, style="Card.Error.TLabel", wraplength=380, justify="left")
        self.error_label.grid(row=11, column=0, columnspan=3, sticky="w", pady=(10, 0))
        # Room kept for each (two lines, three for errors), so the card (centred) does not
        # jump as they come and go.
        for row, label, pad, lines in ((10, self.hint_label, 4, 2), (11, self.error_label, 10, 3)):
            label.configure(text="\n" * (lines - 1))
            label.update_idletasks()
            card.rowconfigure(row, minsize=label.winfo_reqheight() + pad)
            label.configure(text="")

        # Offered only when the members present all share another passphrase (see
        # securex/session/verdict.py): a typo, most likely, or someone holding the room.
        self.join_anyway_button = ttk.Button(card, text="Join anyway", style="Small.TButton",
                                             command=self._join_anyway)
        self.join_anyway_button.grid(row=12, column=0, columnspan=3, sticky="w", pady=(6, 0))
        self.join_anyway_button.grid_remove()
        self._card = card
        self.on_join_anyway: Callable[[], None] | None = None

        buttons = ttk.Frame(card, style="Card.TFrame")
        buttons.grid(row=13, column=0, columnspan=3, sticky="ew", pady=(16, 0))
        buttons.columnconfigure(1, weight=1)
        self.back_button = ttk.Button(buttons, text="Back to the conversation", command=self._back)
        self.back_button.grid(row=1, column=0, sticky="w")
        self.back_button.grid_remove()   # offered when the dialog was opened from a conversation
        self.quit_button = ttk.Button(buttons, text="Quit", command=self._quit_or_cancel)
        self.quit_button.grid(row=1, column=2, padx=(8, 8))
        self.connect_button = ttk.Button(buttons, text="Connect", style="Accent.TButton", command=self.ok)
        self.connect_button.grid(row=1, column=3)

        self.entries = (self.host_entry, self.port_entry, self.name_entry, self.passphrase_entry)
        for entry in self.entries:
            entry.bind("<Return>", self.ok)
            entry.bind("<KP_Enter>", self.ok)
            # Tk's own binding moves to the start of the line (as in Emacs); people expect "select all".
            entry.bind("<Control-a>", self._select_all)
            entry.bind("<Control-A>", self._select_all)
        self.winfo_toplevel().bind("<Escape>", self._escape, add="+")

    def _label(self, card: ttk.Frame, text: str, **grid) -> None:
        ttk.Label(card, text=text, style="Card.TLabel").grid(sticky="w", pady=(10, 3), **grid)

    def _fields(self) -> tuple[tuple[tk.StringVar, ttk.Entry], ...]:
        return ((self.host, self.host_entry), (self.port, self.port_entry), (self.name, self.name_entry),
                (self.passphrase, self.passphrase_entry))

    # -- validation ----------------------------------------------------------

    def problem(self, entry: ttk.Entry) -> str | None:
        """What is wrong with one field, or None."""
        if entry is self.host_entry:
            try:
                split_host_port(self.host.get())
            except ValueError as error:
                return str(error)
            return None if self.host.get().strip() else "Enter the server address, as the server printed it."
        if entry is self.port_entry:
            return None if self.port_number() is not None else \
                "The port is a number from 1 to 65535 (usually 5050)."
        if entry is self.name_entry:
            try:
                validate_name(self.name.get())
            except ValueError as error:
                return str(error)
            return None
        if not self.passphrase.get().strip():
            return "Enter the room passphrase, or press Generate to make one for a new room."
        return None

    def port_number(self) -> int | None:
        try:
            port = int(self.port.get().strip())
        except ValueError:
            return None
        return port if 1 <= port <= 65535 else None

    def entry_ok(self) -> ConnectRequest | None:
        """The request the fields describe, or None with the first problem shown inline
        and the field to fix focused."""
        self.show_error("")
        with contextlib.suppress(ValueError):     # HOST:PORT pasted: the port goes to its own field
            host, port = split_host_port(self.host.get())
            if port is not None:
                self.host.set(host)
                self.port.set(str(port))
        for entry in self.entries:
            problem = self.problem(entry)
            if problem is not None:
                self.show_error(problem, entry)
                entry.state(["invalid"])
                self._error_field = entry
                return None
        port = self.port_number()
        assert port is not None   # checked above
        return ConnectRequest(self.host.get().strip(), port, validate_name(self.name.get()), self.passphrase.get())

    def _recheck(self, entry: ttk.Entry) -> None:
        """A field changed: once it is fixed, its red border and its message go. "Join
        anyway" was for what was refused: after an edit, Connect tries what is typed."""
        if self.on_join_anyway is not None:
            self.offer_join_anyway(None, keep_room=True)
            if self._error_field in (None, entry):
                self.error_label.configure(text="")    # the refusal was of what was typed before
                self._error_field = None
        if entry.instate(["invalid"]) and self.problem(entry) is None:
            entry.state(["!invalid"])
            if self._error_field is entry:
                self.error_label.configure(text="")
                self._error_field = None

    def show_error(self, message: str, focus: ttk.Entry | None = None) -> None:
        """Show ``message`` in red (empty clears it); focus and select ``focus`` for retyping."""
        self.error_label.configure(text=message)
        self._error_field = focus
        for entry in self.entries:
            entry.state(["!invalid"])
        if focus is not None:
            focus.focus_set()
            focus.select_range(0, "end")
            focus.icursor("end")

    def focus_first_empty(self) -> None:
        empty = [entry for entry in self.entries if not entry.get().strip()]
        (empty[0] if empty else self.connect_button).focus_set()

    # -- actions -------------------------------------------------------------

    def ok(self, event: tk.Event | None = None) -> str:
        if not self.busy:
            request = self.entry_ok()
            if request is not None:
                self.on_connect(request)
        return "break"

    def set_busy(self, busy: bool, message: str = "") -> None:
        """While connecting: fields locked, Connect shows progress, Quit becomes Cancel."""
        self.busy = busy
        for widget in (*self.entries, self.generate_button, self.show_toggle, self.connect_button,
                       self.back_button):
            widget.state(["disabled"] if busy else ["!disabled"])
        self.connect_button.configure(text="Connecting\u2026" if busy else "Connect")
        self.quit_button.configure(text="Cancel" if busy else "Quit")
        if busy:
            self.hint_label.configure(text=message)
        else:
            self._update_hint()

    def offer_join_anyway(self, on_join_anyway: Callable[[], None] | None, *, keep_room: bool = False) -> None:
        """Offer (or stop offering) to enter with this passphrase although the members
        present share another one. ``keep_room``: withdrawn as the user edits, its row
        keeps its height, so Connect does not move up under the pointer."""
        self.on_join_anyway = on_join_anyway
        shown = self.join_anyway_button.winfo_ismapped()
        room = self.join_anyway_button.winfo_height() + 6 if keep_room and shown else 0
        self._card.rowconfigure(12, minsize=room)
        if on_join_anyway is None:
            self.join_anyway_button.grid_remove()
        else:
            self.join_anyway_button.grid()

    def _join_anyway(self) -> None:
        if self.on_join_anyway is not None and not self.busy:
            on_join_anyway = self.on_join_anyway
            self.offer_join_anyway(None)       # once: the next refusal offers it again
            on_join_anyway()

    def set_back(self, on_back: Callable[[], None] | None) -> None:
        """Offer (or stop offering) a way back to the conversation."""
        self.on_back = on_back
        if on_back is None:
            self.back_button.grid_remove()
        else:
            self.back_button.grid()

    def use_room(self, room: Room) -> None:
        """A room picked from the list: its address and port go into the fields."""
        if self.busy:
            return
        self.host.set(room.address)
        self.port.set(str(room.port))
        self.show_error("")

    def _quit_or_cancel(self) -> None:
        (self.on_cancel if self.busy else self.on_quit)()

    def _back(self) -> None:
        if self.on_back is not None and not self.busy:
            self.on_back()

    def _escape(self, event: tk.Event) -> None:
        """Escape closes the dialog: cancels an attempt, goes back to the conversation, or quits."""
        if not self.winfo_manager():   # the chat is showing (a page hidden with grid_remove has none)
            return
        if self.busy:
            self.on_cancel()
        elif self.on_back is not None:
            self.on_back()
        else:
            self.on_quit()

    @staticmethod
    def _select_all(event: tk.Event) -> str:
        event.widget.select_range(0, "end")
        event.widget.icursor("end")
        return "break"

    def generate(self) -> None:
        """Fill in a fresh strong passphrase, show it, and offer to copy it."""
        self._generated = generate_passphrase()
        self.passphrase.set(self._generated)   # the trace updates the hint and Copy button
        self.show_passphrase.set(True)
        self._apply_show()
        self.show_error("")

    def copy_passphrase(self) -> None:
        self.clipboard_clear()
        self.clipboard_append(self.passphrase.get())
        self.copy_button.configure(text="Copied")

    def _apply_show(self) -> None:
        self.passphrase_entry.configure(show="" if self.show_passphrase.get() else HIDDEN_CHAR)

    def _update_hint(self) -> None:
        if self.busy:
            return
        passphrase = self.passphrase.get()
        if passphrase and passphrase == self._generated:
            self.copy_button.grid()
            hint = ("A new strong passphrase. Give it to the others in person or another private "
                    "way, never over this chat.")
        else:
            self.copy_button.grid_remove()
            self.copy_button.configure(text="Copy")
            if not passphrase:
                hint = "Everyone in the room types the same passphrase. It never leaves this computer."
            elif passphrase_warning(passphrase):   # one rule for "weak" in both front ends
                hint = "A short passphrase is easy to guess. Generate makes a strong one."
            else:
                hint = ""
        self.hint_label.configure(text=hint)
