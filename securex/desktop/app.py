"""The desktop front end of Secure X: ``python client.py`` opens it.

``run(args, passphrase)`` builds the window and runs Tk's main loop. ``App``
is the controller: it shows the connect dialog (``desktop_dialog``) or the chat
window (``desktop_chat``), owns the ``ChatSession`` and turns its events into
what the user sees. Tests build ``App(root, args, passphrase)`` on their own
Tk root and pump it with ``root.update()``; no part of it blocks.

Thread contract: every method here runs on the Tk thread and only ever calls
the session's queueing methods (``send_text``, ``leave``, ``reconnect_now``),
which never touch a socket. The session's network threads never touch a
widget: they put events on a ``queue.Queue`` that ``App._pump`` drains with
``after()``, at most ``BATCH`` events per tick so a burst of messages cannot
freeze the window. Idle, the pump wakes every ``IDLE_MS`` and does nothing.

Each connection attempt gets a fresh queue, so a cancelled or abandoned
session can never disturb the one that replaced it.

Dark mode: ``SECUREX_THEME=dark`` (or ``light``); see ``desktop_theme``.
"""

from __future__ import annotations

import argparse
import logging
import queue
import signal
import sys
import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from securex.session.runner import (QUIT_COMMANDS, ChatMessage, ChatSession, Closed, Connected, ConnectionLost,
                          Event, MemberJoined, MemberLeft, MembersChanged, Notice, Reconnecting)
from securex.protocol import DEFAULT_PORT
from securex.desktop.chat import ChatWindow
from securex.desktop.dialog import ConnectDialog, ConnectRequest, load_last_used, save_last_used
from securex.desktop.theme import apply_theme, palette_from_env, tk_safe
from securex.errors import EXIT_ERROR, EXIT_OK, SecureXError, WrongPassphraseError, exit_status

log = logging.getLogger(__name__)

BATCH = 200            # events handled per tick at most: the window redraws between batches
BUSY_MS = 20           # next tick soon while events are waiting
IDLE_MS = 100          # otherwise a slow, cheap poll: 10 wake-ups a second
QUIT_TIMEOUT_MS = 3000  # leaving waits this long for the session to say it is closed
CHAT_GEOMETRY = "940x640"

NO_DISPLAY = """\
Cannot open a window: {error}
There is no graphical display here (is DISPLAY set?). Use the terminal client instead:
  python client.py --cli"""

SessionFactory = Callable[..., ChatSession]


@dataclass
class PumpStats:
    """What the event pump has done; tests use it to check batches stay bounded."""
    ticks: int = 0
    events: int = 0
    largest_batch: int = 0


class App:
    def __init__(self, root: tk.Tk, args: argparse.Namespace, passphrase: str | None, *,
                 session_factory: SessionFactory = ChatSession) -> None:
        self.root = root
        self.args = args
        self.session_factory = session_factory
        self.theme = apply_theme(root, palette_from_env())
        self.exit_status: int | None = None     # set once the app has finished
        # dialog, connecting, connected, lost, reconnecting, disconnected, leaving or closed
        self.state = "dialog"
        self.stats = PumpStats()
        self.session: ChatSession | None = None
        self.request: ConnectRequest | None = None
        self._events: queue.Queue[Event] | None = None
        self._joined = False          # the current session has been in the room
        self._leaving = False
        self._last_error: SecureXError | None = None
        self._fingerprint = ""
        self._link_details: dict[str, str] = {}   # server, fingerprint, cipher for the status bar
        self._focused = False
        self._unread = 0
        self._retry_at: float | None = None     # when the core retries, for the banner countdown
        self._lost_reason = ""
        self._lost_noted = False
        self._quit_timer: str | None = None
        self.quit_requested = False   # set by a signal handler; the pump acts on it
        self._alert_pending = False   # a message arrived unseen during this pump tick

        root.title("Secure X")
        root.minsize(560, 420)
        root.report_callback_exception = self._report_callback_error
        root.protocol("WM_DELETE_WINDOW", self.request_quit)
        root.bind("<Control-q>", self.request_quit)
        root.bind("<Control-Q>", self.request_quit)
        root.bind("<FocusIn>", self._on_focus_in, add="+")
        root.bind("<FocusOut>", self._on_focus_out, add="+")
        root.bind("<Destroy>", self._on_destroy, add="+")
        root.columnconfigure(0, weight=1)
        root.rowconfigure(0, weight=1)

        last = load_last_used()
        initial = ConnectRequest(args.host or last.host, args.port or last.port or DEFAULT_PORT,
                                 args.name or last.name, passphrase or "")
        self.dialog = ConnectDialog(root, self.theme, initial, on_connect=self.connect,
                                    on_cancel=self.cancel_connect, on_quit=self.request_quit)
        self.chat = ChatWindow(root, self.theme, on_send=self.send, on_action=self._banner_action)
        self._pump_id: str | None = root.after(IDLE_MS, self._pump)

        if args.host and args.name and passphrase:
            self._show_chat()
            self.connect(ConnectRequest(args.host, args.port or DEFAULT_PORT, args.name, passphrase))
        else:
            self.show_dialog()

    # -- pages ---------------------------------------------------------------

    def show_dialog(self, error: str = "", *, wrong_passphrase: bool = False) -> None:
        self.state = "dialog"
        self.chat.grid_remove()
        self.dialog.grid(row=0, column=0, sticky="nsew")
        self.dialog.set_busy(False)
        self.root.title("Secure X \u2014 Connect")
        if wrong_passphrase:
            self.dialog.show_error(error, self.dialog.passphrase_entry)
        else:
            self.dialog.show_error(error)
            self.dialog.focus_first_empty()

    def _show_chat(self) -> None:
        if not self.chat.winfo_manager():
            self.dialog.grid_remove()
            self.chat.grid(row=0, column=0, sticky="nsew")
            if self.root.winfo_width() < 700:   # first time: from dialog size to chat size
                self.root.geometry(CHAT_GEOMETRY)
        self._update_title()

    # -- session lifecycle ----------------------------------------------------

    def connect(self, request: ConnectRequest) -> None:
        """Start a session for ``request``; its events arrive through the pump."""
        try:
            session = self.session_factory(
                request.host, request.port, request.name, request.passphrase,
                events := queue.Queue(), auto_reconnect=not self.args.no_reconnect,
                reconnect_after_shutdown=True)
        except ValueError as error:   # a bad --name given on the command line
            self.show_dialog(str(error))
            return
        self.request, self.session, self._events = request, session, events
        self._joined, self._fingerprint, self.state = False, "", "connecting"
        where = f"{request.host}:{request.port}"
        self.dialog.set_busy(True, f"Connecting to {where}\u2026")
        self.chat.set_status(f"Connecting to {where}\u2026", tone="warning")
        session.start()

    def cancel_connect(self) -> None:
        """Give up on a connection attempt; its session is told to leave and forgotten."""
        if self.session is not None:
            self.session.leave()
        self.session = self._events = None
        self.show_dialog("Connection cancelled.")

    def send(self, text: str) -> None:
        if text.strip() in QUIT_COMMANDS:
            self.request_quit()
        elif self.session is not None:
            self.session.send_text(text)

    def request_quit(self, event: tk.Event | None = None) -> str:
        """Ctrl+Q, the window's close button, Quit, or <quit>: leave cleanly, then close."""
        if self.exit_status is not None or self._leaving:
            return "break"
        if self.session is None or not self.session.is_alive:
            self.finish(exit_status(self._last_error))
            return "break"
        self._leaving, self.state = True, "leaving"
        self.session.leave()
        self.chat.set_input_enabled(False)
        self.chat.set_status("Leaving\u2026", tone="warning")
        # A session stuck in a connect timeout must not keep the window open for long.
        self._quit_timer = self.root.after(QUIT_TIMEOUT_MS, lambda: self.finish(EXIT_OK))
        return "break"

    def finish(self, status: int) -> None:
        """Stop the pump and close the window; ``run`` returns ``status``."""
        if self.exit_status is not None:
            return
        self.exit_status, self.state = status, "closed"
        self._stop_timers()
        # Destroy from the event loop, never from inside a pump batch that still
        # holds the message view open.
        self.root.after_idle(self.root.destroy)

    def _on_destroy(self, event: tk.Event) -> None:
        """The window went away without ``finish`` (killed by the window manager, or a
        test tearing down): stop the timers and let the session leave on its own."""
        if event.widget is not self.root or self.exit_status is not None:
            return
        self.exit_status, self.state = exit_status(self._last_error), "closed"
        self._stop_timers()
        if self.session is not None:
            self.session.leave()

    def _stop_timers(self) -> None:
        # A timer left behind would fire into a destroyed interpreter.
        for timer in (self._pump_id, self._quit_timer):
            if timer is not None:
                self.root.after_cancel(timer)
        self._pump_id = self._quit_timer = None

    def _banner_action(self) -> None:
        if self.session is not None and self.session.is_alive:
            self.session.reconnect_now()
        else:   # the session is over: let the user change something and try again
            self.show_dialog(str(self._last_error or ""))

    # -- the event pump -----------------------------------------------------------

    def _pump(self) -> None:
        self._pump_id = None
        handled, self._alert_pending = 0, False
        try:
            if self.quit_requested:
                self.quit_requested = False
                self.request_quit()
            events = self._events
            if events is not None:
                with self.chat.transcript_batch():
                    while handled < BATCH and events is self._events and self.exit_status is None:
                        try:
                            event = events.get_nowait()
                        except queue.Empty:
                            break
                        handled += 1
                        self._dispatch(event)
            if self._alert_pending:   # one bell and one title change per tick, not per message
                self._update_title()
                self.root.bell()
            self._update_countdown()
        finally:   # an error in one event must not stop the pump for good
            self.stats.ticks += 1
            self.stats.events += handled
            self.stats.largest_batch = max(self.stats.largest_batch, handled)
            if self.exit_status is None:
                self._pump_id = self.root.after(BUSY_MS if handled == BATCH else IDLE_MS, self._pump)

    def _dispatch(self, event: Event) -> None:
        chat = self.chat
        if isinstance(event, ChatMessage):
            chat.add_message(event.sender, event.text, own=event.own, at=event.at)
            if not event.own and not self._focused:
                self._unread += 1
                self._alert_pending = True
        elif isinstance(event, MembersChanged):
            chat.set_members(event.names, event.capacity)
        elif isinstance(event, MemberJoined):
            chat.add_notice(f"{event.name} joined", at=event.at)
        elif isinstance(event, MemberLeft):
            chat.add_notice(f"{event.name} left", at=event.at)
        elif isinstance(event, Notice):
            chat.add_notice(event.text, at=event.at, warning=True)
        elif isinstance(event, Connected):
            self._on_connected(event)
        elif isinstance(event, ConnectionLost):
            self._retry_at = event.at.timestamp() + event.retry_in
            self._lost_reason, self.state = event.reason, "lost"
            chat.dim_members()
            chat.set_input_enabled(False)
            chat.set_status("Connection lost", tone="error", **self._link_details)
            if not self._lost_noted:   # once per outage: failed retries only update the banner
                self._lost_noted = True
                chat.add_notice(f"{event.reason} Reconnecting automatically.", at=event.at, warning=True)
            self._update_countdown()
        elif isinstance(event, Reconnecting):
            self._retry_at, self.state = None, "reconnecting"
            chat.set_status(f"Reconnecting (attempt {event.attempt})\u2026", tone="warning",
                            **self._link_details)
            chat.show_banner(f"Connection lost. Reconnecting (attempt {event.attempt})\u2026\n{self._lost_reason}",
                             "Reconnect now")
        elif isinstance(event, Closed):
            self._on_closed(event)

    def _on_connected(self, event: Connected) -> None:
        self._joined, self._last_error, self._retry_at, self._lost_noted = True, None, None, False
        self.state = "leaving" if self._leaving else "connected"
        if self.request is not None:
            save_last_used(self.request)
        self._show_chat()
        chat = self.chat
        chat.hide_banner()
        self._link_details = dict(server=event.server, fingerprint=event.fingerprint, cipher=event.cipher)
        chat.set_status("Reconnected" if event.reconnected else "Connected", **self._link_details)
        if not event.reconnected:
            chat.add_notice(f"You joined {event.server}. End-to-end encrypted with {event.cipher}.",
                            at=event.at)
        elif event.fingerprint != self._fingerprint:
            # A restarted server picks a new salt, so the key and its fingerprint change.
            chat.add_notice(f"Reconnected. The room key changed to {event.fingerprint} "
                            "(the server restarted): compare it again.", at=event.at)
        else:
            chat.add_notice("Reconnected.", at=event.at)
        self._fingerprint = event.fingerprint
        chat.set_input_enabled(not self._leaving)

    def _on_closed(self, event: Closed) -> None:
        self._last_error = event.error
        self.session = self._events = None
        if self._leaving:
            self.finish(exit_status(event.error))
        elif isinstance(event.error, WrongPassphraseError) or not self._joined:
            self.show_dialog(event.reason, wrong_passphrase=isinstance(event.error, WrongPassphraseError))
        else:   # the session ended by itself: keep the conversation readable
            self.state = "disconnected"
            self.chat.dim_members()
            self.chat.set_input_enabled(False)
            self.chat.set_status("Disconnected", tone="error", **self._link_details)
            self.chat.add_notice(event.reason, at=event.at, warning=event.error is not None)
            self.chat.show_banner(f"Disconnected: {event.reason}", "Connect again\u2026")

    def _update_countdown(self) -> None:
        if self._retry_at is None or self.session is None:
            return
        seconds = max(0, round(self._retry_at - datetime.now().timestamp()))
        self.chat.show_banner(f"Connection lost. Trying again in {seconds} s; messages cannot be sent "
                              f"until then.\n{self._lost_reason}", "Reconnect now")

    # -- title, unread count, focus ------------------------------------------------

    def _update_title(self) -> None:
        if self.request is None or not self.chat.winfo_manager():
            return
        unread = f"({self._unread}) " if self._unread else ""
        self.root.title(tk_safe(f"{unread}Secure X \u2014 {self.request.name} @ "
                                f"{self.request.host}:{self.request.port}"))

    def _on_focus_in(self, event: tk.Event) -> None:
        self._focused = True
        if self._unread:
            self._unread = 0
            self._update_title()

    def _on_focus_out(self, event: tk.Event) -> None:
        self._focused = False

    # -- errors -----------------------------------------------------------------

    def _report_callback_error(self, kind: type[BaseException], value: BaseException, tb) -> None:
        """Tk calls this for an exception in any callback: show a line, never a traceback."""
        if issubclass(kind, KeyboardInterrupt):   # Ctrl+C in the terminal that started us
            self.request_quit()
            return
        log.debug("error in a Tk callback", exc_info=(kind, value, tb))
        if self.exit_status is not None:
            return
        message = f"Something went wrong inside Secure X ({kind.__name__}: {value}). The chat carries on."
        if self.chat.winfo_manager():
            with self.chat.transcript_batch():
                self.chat.add_notice(message, at=datetime.now(), warning=True)
        else:
            self.dialog.show_error(message)


def run(args: argparse.Namespace, passphrase: str | None) -> int:
    """Open the window and return the exit status once it closes."""
    try:
        root = tk.Tk(className="SecureX")
    except tk.TclError as error:
        print(NO_DISPLAY.format(error=error), file=sys.stderr)
        return EXIT_ERROR
    app = App(root, args, passphrase)
    # SIGTERM leaves as cleanly as closing the window; the handler only sets a flag
    # because it may run in the middle of any Tk callback.
    signal.signal(signal.SIGTERM, lambda *_: setattr(app, "quit_requested", True))
    while app.exit_status is None:
        try:
            root.mainloop()
        except KeyboardInterrupt:   # Ctrl+C in the terminal that started us: leave cleanly
            app.request_quit()
        else:
            break
    return app.exit_status if app.exit_status is not None else EXIT_ERROR
