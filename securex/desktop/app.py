"""The desktop front end of Secure X: ``securex`` (or ``python3 client.py``) opens it.

``main.run(options)`` builds the window and runs Tk's main loop. ``App`` is the
controller: it shows the connect dialog (``dialog.py``) or the chat window
(``chat.py``), owns the ``ChatSession`` and turns its events into what the user
sees, through the same ``on_<event>`` dispatch as the terminal (the events about
the room go to ``conversation.py``, those about the connection are handled here);
what the user types is understood by the same ``commands.parse_input``. Files are
driven from ``transfers.py``. Tests build ``App(root, options)`` on their own Tk
root and pump it with ``root.update()``; no part of it blocks.

Thread contract: every method here runs on the Tk thread and only ever calls the
session's queueing methods, which never touch a socket. The session's network
thread never touches a widget: it puts events on a bounded ``queue.Queue`` that
``App._pump`` drains with ``after()``, at most ``BATCH`` events per tick so a
burst of messages cannot freeze the window. Disk work (checking a file, saving
the settings, opening a folder) runs on the errand thread (``background.py``),
whose results the same pump delivers. Each connection attempt gets a fresh event
queue, so a cancelled or abandoned session can never disturb the one after it.

Where the terminal and the desktop meet the same situation they decide it the
same way: a server that shuts down ends the session (the desktop keeps the
conversation on screen and offers to connect again, it does not retry); /who and
/help answer locally; an unknown /command is never sent; /quit leaves at once,
except that the desktop first asks when leaving would drop queued messages or
stop a transfer; safety codes are written "K4F2 9XQ7 M3TB 6PLA" everywhere.
"""

from __future__ import annotations

import enum
import logging
import queue
import tkinter as tk
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from crypto_utils import passphrase_warning
from securex.commands import Action, help_lines, parse_input, refusal
from securex.desktop import settings as stored
from securex.desktop.chat import ChatWindow
from securex.desktop.composer import Mode
from securex.desktop.conversation import Conversation
from securex.desktop.dialog import ConnectDialog, ConnectRequest
from securex.desktop.attention import Attention
from securex.desktop.background import Background
from securex.desktop.rooms import BrowserFactory
from securex.desktop.theme import apply_theme, palette_from_env
from securex.desktop.transcript import Delivery, unbroken_codes
from securex.desktop.transfers import Transfers
from securex.desktop.window import centre_on_screen, geometry, grow_to_fit, resize_keeping_centre
from securex.discovery import RoomBrowser
from securex.errors import (EXIT_OK, MessageTooLongError, SecureXError, SendQueueFullError, WrongPassphraseError,
                            exit_status)
from securex.events import (Closed, Connected, ConnectionLost, Event, EventHandler, Joined, Notice, Reconnecting,
                            Severity, dispatch)
from securex.protocol import DEFAULT_PORT
from securex.session.runner import DEFAULT_DOWNLOADS, EVENT_QUEUE_SIZE, ChatSession, SessionOptions

log = logging.getLogger(__name__)

EARLY_NOTICES = 20       # notices kept from before the chat window opens
BATCH = 200              # events handled per tick at most: the window redraws between batches
ERRAND_BATCH = 20        # errand results delivered per tick at most
BUSY_MS = 20             # next tick soon while events are waiting (or while leaving)
IDLE_MS = 100            # otherwise a slow, cheap poll: 10 wake-ups a second
QUIT_TIMEOUT_MS = 3000   # leaving waits this long for the session to say it is closed
INTERRUPT_TIMEOUT_MS = 250   # Ctrl+C in the terminal: the goodbye gets this long, then the window goes
CHAT_SIZE = (960, 660)
DIALOG_SLACK = 40        # pixels of height kept free in the dialog for an error message
MIN_SIZE = (640, 460)

SessionFactory = Callable[[SessionOptions, "queue.Queue[Event]"], ChatSession]


@dataclass(frozen=True)
class AppOptions:
    """What the command line gave the desktop app (all optional)."""
    host: str | None = None
    port: int | None = None
    name: str | None = None
    passphrase: str | None = field(default=None, repr=False)
    auto_reconnect: bool = True
    downloads: Path | None = None        # --downloads: where accepted files go, for this run
    max_file_bytes: int | None = None    # --max-file-size
    join_anyway: bool = False            # --join-anyway: enter even if the members share another passphrase


class AppState(enum.Enum):
    DIALOG = "asking where to connect"
    CONNECTING = "connecting and checking the passphrase"
    IN_ROOM = "in the room"
    LOST = "connection lost; waiting to retry"
    RECONNECTING = "reconnecting"
    ENDED = "the session ended; the conversation stays readable"
    LEAVING = "leaving"
    CLOSED = "the window is closing"


@dataclass
class PumpStats:
    """What the event pump has done; tests use it to check batches stay bounded."""
    ticks: int = 0
    events: int = 0
    largest_batch: int = 0


class App(EventHandler):
    def __init__(self, root: tk.Tk, options: AppOptions, *, session_factory: SessionFactory = ChatSession,
                 settings: stored.Settings | None = None, browser_factory: BrowserFactory = RoomBrowser) -> None:
        self.root = root
        self.options = options
        self.session_factory = session_factory
        self.settings = settings if settings is not None else stored.load()
        # Where accepted files go: --downloads for this run, else the folder chosen before, else the default.
        self.downloads: Path = options.downloads or self.settings.downloads or DEFAULT_DOWNLOADS
        self.theme = apply_theme(root, palette_from_env())
        self.background = Background()
        self.exit_status: int | None = None     # set once the app has finished
        self.state = AppState.DIALOG
        self.stats = PumpStats()
        self.session: ChatSession | None = None
        self.request: ConnectRequest | None = None
        self._events: queue.Queue[Event] | None = None
        self._joined = False          # the current session has been in the room
        self._conversation = False    # the chat window has been shown: there is something to go back to
        # Notices of a first join that came before the chat window (a changed safety code is
        # found while joining): shown in the conversation once it opens, never lost with the dialog.
        self._early_notices: deque[Notice] = deque(maxlen=EARLY_NOTICES)
        self._last_error: SecureXError | None = None
        self._retry_at: float | None = None     # when the core retries, for the banner countdown
        self._lost_reason = ""
        self._lost_noted = False
        self._retyping = False        # left to type the passphrase again: the dialog follows
        self._quit_timer: str | None = None
        self.quit_requested = False   # set by a signal handler; the pump acts on it

        root.title("Secure X")
        root.minsize(*MIN_SIZE)
        root.report_callback_exception = self._report_callback_error
        root.protocol("WM_DELETE_WINDOW", self.request_quit)
        for sequence in ("<Control-q>", "<Control-Q>"):
            root.bind(sequence, self.request_quit)
        root.bind("<Destroy>", self._on_destroy, add="+")
        root.columnconfigure(0, weight=1)
        root.rowconfigure(0, weight=1)

        self.dialog = ConnectDialog(root, self.theme, self._initial_request(), on_connect=self.connect,
                                    on_cancel=self.cancel_connect, on_quit=self.request_quit,
                                    browser_factory=browser_factory)
        self.transfers = Transfers(self)
        self.chat = ChatWindow(root, self.theme, on_send=self.send, on_send_file=self.transfers.choose_file,
                               on_change_downloads=self.transfers.choose_downloads, actions=self.transfers.actions)
        self.transcript = self.chat.transcript
        self.attention = Attention(root, self._title)
        self.conversation = Conversation(self.chat, self.theme, on_unseen=self.attention.unseen)
        self.chat.sidebar.set_downloads(self.downloads)
        self._pump_id: str | None = root.after(IDLE_MS, self._pump)

        self.show_dialog()
        centre_on_screen(root, slack=DIALOG_SLACK)
        # The dialog keeps its size while lines of text come and go, and grows (around the
        # same centre) only if it must.
        self.dialog.bind("<Configure>", lambda e: self.dialog.winfo_manager() and grow_to_fit(root, self.dialog),
                         add="+")
        if options.host and options.name and options.passphrase:
            self.dialog.ok()   # from the fields, like a click: they are the one source of truth

    def _initial_request(self) -> ConnectRequest:
        """The dialog's first contents: the command line, else what was remembered. A
        remembered port belongs to the remembered server, so it is used only with it."""
        options, remembered = self.options, self.settings
        host = options.host or remembered.host
        port = options.port or (remembered.port if host == remembered.host else DEFAULT_PORT)
        return ConnectRequest(host, port, options.name or remembered.name, options.passphrase or "")

    @property
    def in_room(self) -> bool:
        return self.session is not None and self.state == AppState.IN_ROOM

    # -- state and pages ----------------------------------------------------------

    def _set_state(self, state: AppState) -> None:
        """The one place the app's state changes."""
        log.debug("state %s -> %s", self.state.name, state.name)
        self.state = state

    def show_dialog(self, error: str = "", *, wrong_passphrase: bool = False,
                    join_anyway: Callable[[], None] | None = None) -> None:
        self._set_state(AppState.DIALOG)
        self.chat.grid_remove()
        self.dialog.grid(row=0, column=0, sticky="nsew")
        self.dialog.set_busy(False)
        self.dialog.set_back(self._back_to_conversation if self._conversation else None)
        self.dialog.offer_join_anyway(join_anyway)
        self.root.title("Secure X \u2014 Connect")
        if wrong_passphrase:
            self.dialog.show_error(error, self.dialog.passphrase_entry)
        else:
            self.dialog.show_error(error)
            self.dialog.focus_first_empty()

    def _show_chat(self) -> None:
        if not self.chat.winfo_manager():
            first = not self._conversation
            before = geometry(self.root)
            self.dialog.grid_remove()
            self.chat.grid(row=0, column=0, sticky="nsew")
            self._conversation = True
            if first:   # from the dialog's size to the chat's, around the same centre
                resize_keeping_centre(self.root, *CHAT_SIZE, before)
        self.attention.update_title()

    def _back_to_conversation(self) -> None:
        """From the dialog opened by "Connect again…" back to the ended conversation."""
        self._set_state(AppState.ENDED)
        self._show_chat()

    # -- session lifecycle ----------------------------------------------------------

    def connect(self, request: ConnectRequest) -> None:
        """Start a session for ``request``; its events arrive through the pump."""
        self._early_notices.clear()      # a failed attempt's are not this one's
        self.chat.alert_bar.hide()       # the last session's alert is not about this one (a tester's finding)
        self.dialog.offer_join_anyway(None)
        events: queue.Queue[Event] = queue.Queue(maxsize=EVENT_QUEUE_SIZE)
        files = {} if self.options.max_file_bytes is None else {"max_file_bytes": self.options.max_file_bytes}
        try:
            session = self.session_factory(
                SessionOptions(request.host, request.port, request.name, request.passphrase,
                               auto_reconnect=self.options.auto_reconnect, retry_after_shutdown=True,
                               downloads=self.downloads,
                               join_anyway=request.join_anyway or self.options.join_anyway, **files),
                events)
        except ValueError as error:   # a name the dialog let through but the session refuses
            self.show_dialog(str(error))
            return
        self.request, self.session, self._events = request, session, events
        self._joined = self._lost_noted = False
        self.conversation.new_session()
        self._set_state(AppState.CONNECTING)
        where = f"{request.host}:{request.port}"
        self.dialog.set_busy(True, f"Connecting to {where}\u2026")
        self.chat.set_status(f"Connecting to {where}\u2026", "warning")
        session.start()

    def cancel_connect(self) -> None:
        """Give up on a connection attempt; its session is told to leave and forgotten."""
        if self.session is not None:
            self.session.detach()
        self.session = self._events = None
        self.show_dialog("Connection cancelled.")

    @property
    def can_send(self) -> bool:
        """True while what is typed is sent or queued by the session."""
        return self.session is not None and self.state in (AppState.IN_ROOM, AppState.LOST, AppState.RECONNECTING)

    def send(self, text: str) -> bool:
        """What the user typed in the message box. True if it was taken (the box
        empties); False keeps the draft (nothing was sent)."""
        parsed = parse_input(text)
        self.transfers.moved_on()
        if parsed.action in (Action.SEND, Action.UNKNOWN) and self.transfers.offer_pasted_path(text):
            return False   # a file path: the draft stays until the user says what to do with it
        with self.transcript.batch():
            if parsed.action == Action.QUIT:
                self.request_quit()
            elif parsed.action == Action.WHO:
                self.transcript.add_info(self.chat.sidebar.summary())
            elif parsed.action == Action.HELP:
                self.transcript.add_info("\n".join(help_lines(desktop=True)))
            elif parsed.action in (Action.UNKNOWN, Action.REFUSED, Action.MISSING_ARGUMENT):
                self.note(refusal(parsed), Severity.WARNING)
                return False
            elif parsed.action in (Action.SEND_FILE, Action.ACCEPT_FILE, Action.DECLINE_FILE, Action.CANCEL_FILE):
                self.transfers.command(parsed.action, parsed.argument)
            elif parsed.action == Action.TRUST:
                if self.session is None:
                    self.note("Not connected: /trust needs the member to be in the room with you.", Severity.WARNING)
                    return False
                self.session.trust_code(parsed.argument)
            else:
                return self.send_text(parsed.text)
        return True

    def send_text(self, text: str) -> bool:
        """Hand a message to the session (it queues it while we are away); False, with
        the reason shown, keeps the draft."""
        if not self.can_send or self.session is None:
            self.note("Not connected: the message was not sent (it is still in the box).", Severity.WARNING)
            return False
        try:
            self.session.send_text(text)
        except (MessageTooLongError, SendQueueFullError) as error:
            self.note(f"{error} Your text is still in the box.", Severity.WARNING)
            return False
        return True

    def note(self, text: str, severity: Severity = Severity.INFO) -> None:
        """A line of the app's own in the conversation (or, before there is one, in the dialog)."""
        if not self._conversation:
            if severity != Severity.INFO:
                self.dialog.show_error(text)
            return
        with self.transcript.batch():
            self.transcript.add_notice(text, at=datetime.now(), severity=severity)

    # -- leaving ------------------------------------------------------------------------

    def unfinished_business(self) -> str:
        """What leaving now would drop, in words ("" for nothing)."""
        parts = []
        queued = len(self.transcript.pending_ids())
        if queued:
            parts.append(f"{queued} message{'s' if queued != 1 else ''} you typed "
                         f"{'are' if queued != 1 else 'is'} still waiting to be sent")
        waiting = self.transfers.cards.offers_waiting
        moving = self.transfers.cards.active - waiting
        if moving:
            parts.append(f"{moving} file transfer{'s' if moving != 1 else ''} {'are' if moving != 1 else 'is'} "
                         "under way")
        if waiting:     # a tester's finding: an offer nobody had answered was "a transfer under way"
            parts.append(f"{waiting} file offer{'s' if waiting != 1 else ''} {'are' if waiting != 1 else 'is'} "
                         "waiting for an answer")
        return " and ".join(parts)

    def request_quit(self, event: tk.Event | None = None, *, confirmed: bool = False) -> str:
        """Ctrl+Q, the window's close button, Quit, or /quit: leave cleanly, then close.
        Like the terminal it leaves at once, unless that would drop queued messages or
        stop a transfer: then it asks first."""
        if self.exit_status is not None or self.state == AppState.LEAVING:
            return "break"
        if self.session is None or not self.session.is_alive:
            self.finish(exit_status(self._last_error))
            return "break"
        lost = self.unfinished_business()
        if lost and not confirmed and self.chat.winfo_manager():
            self.chat.question.show(f"{lost[0].upper()}{lost[1:]}. Leave anyway?",
                                    ("Leave", lambda: self.request_quit(confirmed=True)),
                                    ("Stay", self.chat.question.hide))
            return "break"
        self.chat.question.hide()
        self._leave(QUIT_TIMEOUT_MS)
        return "break"

    def interrupt_soon(self) -> None:
        """From a signal handler (it may run in the middle of any callback): only a flag and
        a timer; the pump, run at once, calls ``interrupt``."""
        self.quit_requested = True
        self._reschedule_pump(0)

    def interrupt(self) -> None:
        """Ctrl+C or SIGTERM from outside: leave without asking, and quickly; a second one
        closes at once."""
        if self.exit_status is not None:
            return
        if self.state == AppState.LEAVING or self.session is None or not self.session.is_alive:
            self.finish(exit_status(self._last_error))
        else:
            self._leave(INTERRUPT_TIMEOUT_MS)

    def _leave(self, timeout_ms: int) -> None:
        assert self.session is not None
        self._set_state(AppState.LEAVING)
        self.session.leave()
        self.chat.composer.set_mode(Mode.OFF, "Leaving the room\u2026")
        self.chat.set_status("Leaving\u2026", "warning")
        # A session stuck in a connect timeout must not keep the window open for long.
        if self._quit_timer is not None:
            self.root.after_cancel(self._quit_timer)
        self._quit_timer = self.root.after(timeout_ms, lambda: self.finish(EXIT_OK))
        self._reschedule_pump(BUSY_MS)

    def finish(self, status: int) -> None:
        """Stop the pump and close the window; ``run`` returns ``status``."""
        if self.exit_status is not None:
            return
        self.exit_status = status
        self._set_state(AppState.CLOSED)
        self._stop_timers()
        self.background.stop()
        if self.session is not None:
            self.session.detach()
        # Destroy from the event loop, never from inside a pump batch that still
        # holds the message view open.
        self.root.after_idle(self.root.destroy)

    def _on_destroy(self, event: tk.Event) -> None:
        """The window went away without ``finish`` (killed by the window manager, or a
        test tearing down): stop the timers and let the session leave on its own."""
        if event.widget is not self.root or self.exit_status is not None:
            return
        self.exit_status = exit_status(self._last_error)
        self._set_state(AppState.CLOSED)
        self._stop_timers()
        self.background.stop()
        if self.session is not None:
            self.session.detach()

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

    # -- the event pump -----------------------------------------------------------------

    def _reschedule_pump(self, delay_ms: int) -> None:
        if self._pump_id is not None:
            self.root.after_cancel(self._pump_id)
            self._pump_id = self.root.after(delay_ms, self._pump)

    def _pump(self) -> None:
        self._pump_id = None
        handled = 0
        try:
            if self.quit_requested:
                self.quit_requested = False
                self.interrupt()
            events = self._events
            if events is not None:
                with self.transcript.batch():
                    while handled < BATCH and events is self._events and self.exit_status is None:
                        try:
                            event = events.get_nowait()
                        except queue.Empty:
                            break
                        handled += 1
                        # What the room says is drawn by the conversation; the connection's
                        # life is the app's own business.
                        dispatch(self.conversation if type(event) in Conversation.HANDLES else self, event)
            if self.exit_status is None:
                self.background.deliver(ERRAND_BATCH)
            self.attention.flush()   # one bell and one title change per tick, not per message
            self._update_countdown()
        finally:   # an error in one event must not stop the pump for good
            self.stats.ticks += 1
            self.stats.events += handled
            self.stats.largest_batch = max(self.stats.largest_batch, handled)
            if self.exit_status is None:
                busy = handled == BATCH or self.state == AppState.LEAVING
                self._pump_id = self.root.after(BUSY_MS if busy else IDLE_MS, self._pump)

    # -- events (each runs inside a transcript batch) ---------------------------------------

    def on_connected(self, event: Connected) -> None:
        self.dialog.set_busy(True, f"Checking the passphrase with the members at {event.server}\u2026")
        self.chat.set_status("Checking the passphrase\u2026", "warning")

    def on_joined(self, event: Joined) -> None:
        first = not self._joined
        self._joined, self._last_error, self._retry_at, self._lost_noted = True, None, None, False
        if self.state != AppState.LEAVING:
            self._set_state(AppState.IN_ROOM)
        if first and self.request is not None:
            request = self.request
            self.settings = replace(self.settings, host=request.host, port=request.port, name=request.name)
            self.transfers.save_settings()
        self._show_chat()
        chat = self.chat
        unconfirmed = event.present > 0 and event.verified == 0
        chat.show_in_room(event.server, event.cipher, event.you.safety_code, unconfirmed=unconfirmed)
        if unconfirmed and first and not (self.request and self.request.join_anyway):
            chat.offer_to_retype(self._retype_passphrase)
        if event.reconnected:
            self.transcript.add_notice("Back in the room.", at=event.at)
        else:
            self.transcript.add_notice(f"You joined {event.server}. End-to-end encrypted with {event.cipher}; "
                                       f"your safety code is {event.you.safety_code}.", at=event.at)
            warning = passphrase_warning(self.request.passphrase if self.request else "")
            if warning:   # as the terminal warns at start
                self.transcript.add_notice(warning + " (Generate in the connect dialog makes one too.)",
                                           at=event.at, severity=Severity.WARNING)
        while self._early_notices:
            self.on_notice(self._early_notices.popleft())
        if self.state == AppState.IN_ROOM:
            chat.composer.set_mode(Mode.READY)
            if first:
                chat.composer.input.focus_set()   # ready to type at once

    def on_notice(self, event: Notice) -> None:
        if not self._conversation:
            if event.severity != Severity.INFO:
                self.dialog.show_error(event.text)
            if all(kept.text != event.text for kept in self._early_notices):   # many alike push out none
                self._early_notices.append(event)
            return
        self.transcript.add_notice(event.text, at=event.at, severity=event.severity)
        if event.severity == Severity.ALERT:   # possibly an attack: loud, and it stays until dismissed
            self.chat.alert_bar.show(f"\u26d4  {unbroken_codes(event.text)}", ("Dismiss", self.chat.alert_bar.hide))
            self.attention.unseen(loud=True)   # the bell rings even with the window in front

    def on_connection_lost(self, event: ConnectionLost) -> None:
        if not self._joined:   # the relay is busy: still connecting, from the dialog
            self.dialog.set_busy(True, f"{event.reason} Trying again in {event.retry_in:.0f} s\u2026")
            return
        self._retry_at = event.at.timestamp() + event.retry_in
        self._lost_reason = event.reason
        if self.state != AppState.LEAVING:
            self._set_state(AppState.LOST)
            self.chat.composer.set_mode(Mode.QUEUED)
        if not self._lost_noted:   # once per outage: failed retries only update the banner
            self._lost_noted = True
            self.transcript.add_notice(f"{event.reason} Reconnecting automatically; what you send meanwhile "
                                       "is queued.", at=event.at, severity=Severity.WARNING)
        self._update_countdown()

    def on_reconnecting(self, event: Reconnecting) -> None:
        if not self._joined:
            return
        self._retry_at = None
        if self.state != AppState.LEAVING:
            self._set_state(AppState.RECONNECTING)
        self.chat.show_reconnecting(self._lost_reason, event.attempt, self._banner_action)

    def _retype_passphrase(self) -> None:
        """Leave the room (nobody in it shared the passphrase), then the dialog, ready for it."""
        self.chat.question.hide()
        if self.session is not None:
            self._retyping = True
            self.session.leave()

    def on_closed(self, event: Closed) -> None:
        self._last_error = event.error
        self.session = self._events = None
        self._retry_at = None
        queued = self.transcript.pending_ids()
        for message_id in queued:
            self.transcript.set_delivery(message_id, Delivery("unsent"))
        retyping, self._retyping = self._retyping, False
        if self.state == AppState.LEAVING:
            self.finish(exit_status(event.error))
        elif retyping:
            self._set_state(AppState.ENDED)
            self.show_dialog("Type the room's passphrase again.", wrong_passphrase=True)
        elif isinstance(event.error, WrongPassphraseError) or not self._joined:
            wrong = isinstance(event.error, WrongPassphraseError)
            request = self.request
            insist = (None if request is None or not (wrong and event.error.may_join_anyway) else
                      lambda: self.connect(replace(request, join_anyway=True)))
            self.show_dialog(event.reason, wrong_passphrase=wrong, join_anyway=insist)
        else:   # the session ended by itself (the server shut down, or it gave up): keep it readable
            self._set_state(AppState.ENDED)
            if queued:
                self.transcript.add_notice(f"{len(queued)} message{'s' if len(queued) != 1 else ''} typed while "
                                           "not in the room never went out.", at=event.at,
                                           severity=Severity.WARNING)
            self.transcript.add_notice(event.reason, at=event.at,
                                       severity=Severity.INFO if event.error is None else Severity.WARNING)
            self.chat.show_ended(event.reason, self._banner_action)

    def _update_countdown(self) -> None:
        if self._retry_at is None or self.session is None or self.state != AppState.LOST:
            return
        seconds = max(0, round(self._retry_at - datetime.now().timestamp()))
        self.chat.show_lost(self._lost_reason, seconds, self._banner_action)

    def _title(self) -> str | None:
        """The window's title in a conversation (None in the dialog: it has its own)."""
        if self.request is None or not self.chat.winfo_manager():
            return None
        return f"Secure X \u2014 {self.request.name} @ {self.request.host}:{self.request.port}"

    # -- errors ---------------------------------------------------------------------------------

    def _report_callback_error(self, kind: type[BaseException], value: BaseException, tb) -> None:
        """Tk calls this for an exception in any callback: show a line, never a traceback."""
        if issubclass(kind, KeyboardInterrupt):   # Ctrl+C in the terminal that started us
            self.interrupt()
            return
        log.debug("error in a Tk callback", exc_info=(kind, value, tb))
        if self.exit_status is not None:
            return
        self.note(f"Something went wrong inside Secure X ({kind.__name__}: {value}). The chat carries on.",
                  Severity.WARNING)
