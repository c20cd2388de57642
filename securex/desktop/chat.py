"""The chat window of the desktop app: the parts put together, and the bars that
come and go.

From top to bottom: an alert bar (possible attacks, such as a changed safety
code; it stays until dismissed), the message view beside the members panel, the
connection banner (lost, reconnecting, ended), a question bar (leave with messages
still queued? send this file?), the message box, and the status bar.

A passive view: it draws what ``app.App`` tells it and reports what the user does
through callbacks. It knows nothing of sessions or sockets. Tk thread only.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from securex.desktop.composer import Composer, Mode
from securex.desktop.files_view import Actions, TransferCards
from securex.desktop.sidebar import Sidebar
from securex.desktop.theme import SASH_WIDTH, Theme
from securex.desktop.transcript import Transcript
from securex.desktop.widgets import Bar

RETYPE_QUESTION = "Nobody here shares your passphrase. If you may have typed it wrong, leave and type it again."


class ChatWindow(ttk.Frame):
    """``on_send(text)`` gets what the user typed (True: it was taken); ``on_send_file()``
    runs for the Send file button, ``on_change_downloads()`` for the panel's Change
    button; ``actions`` are what the file cards' buttons do."""

    def __init__(self, master: tk.Misc, theme: Theme, *, on_send: Callable[[str], bool],
                 on_send_file: Callable[[], None], on_change_downloads: Callable[[], None],
                 actions: Actions) -> None:
        super().__init__(master)
        self.theme = theme
        self.columnconfigure(0, weight=1)
        self.rowconfigure(1, weight=1)

        self.alert_bar = Bar(self, "Alert.")
        self.alert_bar.grid(row=0, column=0, sticky="ew")
        self.alert_bar.hide()

        panes = ttk.PanedWindow(self, orient="horizontal")
        panes.grid(row=1, column=0, sticky="nsew")
        self.panes = panes
        self.transcript = Transcript(panes, theme)
        panes.add(self.transcript, weight=1)
        self.sidebar = Sidebar(panes, theme, on_change_downloads=on_change_downloads)
        panes.add(self.sidebar, weight=0)
        # The panes keep the widths of their first layout when the window grows, and that
        # may have been before the panel knew its contents: it is never left narrower
        # than they need (its text would be cut at the right).
        for widget in (panes, self.sidebar):
            widget.bind("<Configure>", lambda _event: self.after_idle(self._keep_sidebar_whole), add="+")
        self.transfers = TransferCards(self.transcript, actions)

        self.banner = Bar(self, "Banner.")
        self.banner.grid(row=2, column=0, sticky="ew")
        self.banner.hide()
        self.question = Bar(self, "Banner.")
        self.question.grid(row=3, column=0, sticky="ew")
        self.question.hide()

        self.composer = Composer(self, theme, on_send=on_send, on_send_file=on_send_file)
        self.composer.grid(row=4, column=0, sticky="ew")

        status = ttk.Frame(self, style="Status.TFrame", padding=(12, 4))
        status.grid(row=5, column=0, sticky="ew")
        self.status_bar = status
        self._unconfirmed = False     # in the room, but nobody present shares our passphrase
        self.status_state = ttk.Label(status, style="Status.TLabel")
        self.status_state.grid(row=0, column=0, sticky="w")
        self.status_details = [ttk.Label(status, style="Status.Muted.TLabel") for _ in range(2)]
        for column, label in enumerate(self.status_details, start=1):
            label.grid(row=0, column=column, sticky="w", padx=(16, 0))

    def _keep_sidebar_whole(self) -> None:
        if not self.panes.winfo_exists():
            return
        needed, width = self.sidebar.winfo_reqwidth(), self.panes.winfo_width()
        if width > needed and self.sidebar.winfo_width() < needed:
            self.panes.sashpos(0, width - needed - SASH_WIDTH)

    def set_status(self, state: str, tone: str = "ok") -> None:
        """``tone`` is ok, warning or error: the colour of the state dot. The server and the
        cipher stay as ``show_in_room`` last set them."""
        p = self.theme.palette
        colour = {"ok": p.ok, "warning": p.warning, "error": p.error}[tone]
        self.status_state.configure(text=f"\u25cf {state}", foreground=colour)

    # -- the connection's state, as the window shows it ------------------------------------

    def show_in_room(self, server: str, cipher: str, own_code: str, *, unconfirmed: bool = False) -> None:
        """``unconfirmed``: members are present but none shares our passphrase (we joined
        anyway, or the one here disagrees): said in the status bar until someone does."""
        self.banner.hide()
        self._unconfirmed = unconfirmed
        if unconfirmed:
            self.set_status("Connected \u00b7 nobody here shares your passphrase yet", "warning")
        else:
            self.set_status("Connected")
        for label, text in zip(self.status_details, (server, f"End-to-end {cipher}"), strict=True):
            label.configure(text=text)
        self.sidebar.set_own_code(own_code)

    def offer_to_retype(self, retype: Callable[[], None]) -> None:
        """Nobody present shares our passphrase: it may be our own typo. Offer to leave
        and type it again (the question goes once someone confirms it)."""
        self.question.show(RETYPE_QUESTION, ("Retype passphrase", retype), ("Stay", self.question.hide))

    def someone_shares_the_passphrase(self) -> None:
        """A member verified us: the room is no longer ours alone."""
        if self._unconfirmed:
            self._unconfirmed = False
            self.set_status("Connected")
        if self.question.showing(RETYPE_QUESTION):      # not another question asked since
            self.question.hide()

    def show_lost(self, reason: str, retry_in: int, reconnect_now: Callable[[], None]) -> None:
        """Lost, waiting ``retry_in`` seconds to retry (called again as the seconds go by)."""
        self.set_status("Connection lost", "error")
        self.sidebar.dim()
        self.banner.show(f"{reason} Trying again in {retry_in} s.", ("Reconnect now", reconnect_now))

    def show_reconnecting(self, reason: str, attempt: int, reconnect_now: Callable[[], None]) -> None:
        self.set_status(f"Reconnecting (attempt {attempt})\u2026", "warning")
        self.banner.show(f"{reason} Reconnecting (attempt {attempt})\u2026", ("Reconnect now", reconnect_now))

    def show_ended(self, reason: str, connect_again: Callable[[], None]) -> None:
        """The session is over: the conversation stays, nothing can be sent."""
        self.set_status("Ended", "error")
        self.sidebar.dim()
        self.question.hide()
        self.composer.set_mode(Mode.OFF, "The session has ended; the conversation stays here to read. "
                                         "Connect again\u2026 starts a new one.")
        self.transfers.stop_all("Stopped: the session ended.")
        self.banner.show(f"{reason} This session is over: nothing more is sent or received.",
                         ("Connect again\u2026", connect_again))

    @property
    def status_text(self) -> str:
        return "  ".join(str(label.cget("text")) for label in (self.status_state, *self.status_details))
