"""What the desktop app does about files: offering one (the Send file button, /send, or
a path pasted into the message box), answering offers, the downloads folder, and
opening a folder in the file manager.

Every check of a path (does it exist, can it be read, how big is it), every write
of the settings file and every start of the file manager runs on the errand thread
(``background.py``); its answer comes back on the Tk thread, where the session is
asked to act. The file dialogs are the only thing here that waits on the Tk thread,
as a dialog must. The cards that show transfers are ``files_view.TransferCards``.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from tkinter import filedialog
from typing import Protocol

from securex.commands import Action
from securex.desktop import settings as stored
from securex.desktop.background import Background
from securex.desktop.chat import ChatWindow
from securex.desktop.files_view import Actions, IncomingCard, TransferCards
from securex.desktop.paths import display_path, open_folder, path_in_draft
from securex.errors import SendQueueFullError
from securex.events import Severity
from securex.session.files import PREPARING_NOTE_BYTES, nobody_to_receive, why_not_sendable
from securex.session.runner import ChatSession
from securex.storage import folder_problem
from securex.text import human_size

BUSY = "Secure X is busy with other work on files; try again in a moment."


class Host(Protocol):
    """What the transfers need from the app."""
    root: tk.Tk
    chat: ChatWindow
    background: Background
    session: ChatSession | None
    settings: stored.Settings
    downloads: Path

    @property
    def in_room(self) -> bool: ...
    def note(self, text: str, severity: Severity = Severity.INFO) -> None: ...
    def send_text(self, text: str) -> bool: ...


def _check(path: Path) -> tuple[str | None, int]:
    """(why it cannot be sent, or None; its size). Errand thread."""
    problem = why_not_sendable(path)
    if problem is not None:
        return problem, 0
    try:
        return None, path.stat().st_size
    except OSError as error:
        return f"Cannot send {path}: {error.strerror or error}.", 0


class Transfers:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.actions = Actions(accept=self.accept, decline=self.decline, cancel=self.cancel,
                               open_folder=self.open_folder)
        self._pasted: str | None = None    # the draft whose path is being checked
        self._asked: str | None = None     # the question asked about it, while it may be up
        self._browse_from = Path.home()     # where Send file opens: home, then the last file's folder

    @property
    def cards(self) -> TransferCards:
        return self.host.chat.transfers

    # -- offering a file -----------------------------------------------------------------

    def choose_file(self) -> None:
        """The Send file button: pick a file, then offer it."""
        chosen = filedialog.askopenfilename(parent=self.host.root, title="Send a file to the room",
                                            initialdir=str(self._browse_from))
        if chosen:
            self._browse_from = Path(chosen).parent
            self.offer(Path(chosen))

    def offer(self, path: Path) -> None:
        """Check ``path`` off the Tk thread, then offer it to the room."""
        if not self.host.in_room:
            self.host.note("Files can be sent only while you are in the room; nothing was sent.", Severity.WARNING)
            return
        if all(member.you for member in self.host.chat.sidebar.members):
            # Said now, not after reading the whole file for its SHA-256 only to find nobody to send it to.
            self.host.note(nobody_to_receive(path.name), Severity.WARNING)
            return
        session = self.host.session

        def checked(result: tuple[str | None, int] | Exception) -> None:
            if session is not self.host.session or session is None:
                return    # that session is over
            if isinstance(result, Exception):
                self.host.note(f"Cannot send {path}: {result}.", Severity.WARNING)
                return
            problem, size = result
            if problem is not None:
                self.host.note(problem, Severity.WARNING)
                return
            try:
                session.send_file(path)
            except SendQueueFullError as error:
                self.host.note(str(error), Severity.WARNING)
                return
            if size >= PREPARING_NOTE_BYTES:     # a small file's card comes at once: no note to linger
                self.host.note(f"Preparing {path.name} ({human_size(size)}) to offer it: computing its SHA-256\u2026")

        self._submit(lambda: _check(path), checked)

    def offer_pasted_path(self, draft: str) -> bool:
        """If the draft is a file path (pasted or dropped as text), check it and ask what to
        do; True if it was taken as one (the draft stays in the box until the user answers)."""
        path = path_in_draft(draft)
        if path is None:
            return False
        self._pasted = draft

        def checked(result: tuple[str | None, int] | Exception) -> None:
            if self._pasted != draft or self.host.chat.composer.draft != draft:
                return    # the user has moved on
            problem, size = result if not isinstance(result, Exception) else (str(result), 0)
            question = self.host.chat.question
            if problem is not None:
                slash = " To send the text itself, start it with //." if draft.lstrip().startswith("/") else ""
                self.host.note(f"{problem} Nothing was sent.{slash}", Severity.WARNING)
                return
            self._asked = f"{path.name} ({human_size(size)}) is a file on this computer. Offer it to the room?"
            question.show(self._asked,
                          ("Send file", lambda: self._answer(draft, lambda: self.offer(path))),
                          ("Send as text", lambda: self._answer(draft, lambda: self.host.send_text(draft))),
                          ("Cancel", question.hide))

        self._submit(lambda: _check(path), checked)
        return True

    def _answer(self, draft: str, action: Callable[[], object]) -> None:
        self.host.chat.question.hide()
        self._pasted = None
        if self.host.chat.composer.draft != draft:
            return     # edited since (a tester's finding: "Send as text" sent a path no longer in view)
        if action() is not False:
            self.host.chat.composer.clear()

    def moved_on(self) -> None:
        """The user sent something else: a question about an earlier draft is stale."""
        self._pasted = None
        if self._asked is not None and self.host.chat.question.showing(self._asked):
            self.host.chat.question.hide()
        self._asked = None

    # -- answering offers, cancelling -------------------------------------------------------

    def command(self, action: Action, argument: str) -> None:
        """/send PATH, /accept ID, /decline ID, /cancel ID typed in the message box."""
        if action == Action.SEND_FILE:
            self.offer(Path(argument).expanduser())
            return
        card = self.cards.card("in", argument.strip().lower())
        if isinstance(card, IncomingCard) and not card.accepted and not card.finished:
            # The same as pressing the card's button, so the card shows it.
            (card.accept if action == Action.ACCEPT_FILE else card.decline if action == Action.DECLINE_FILE
             else lambda: self.cancel(argument))()
            return
        {Action.ACCEPT_FILE: self.accept, Action.DECLINE_FILE: self.decline,
         Action.CANCEL_FILE: self.cancel}[action](argument)

    def accept(self, file_id: str) -> None:
        """Accept into the downloads folder, once a look at it (off the Tk thread) finds
        nothing that would stop the file being saved there: a folder chosen on another
        day may have become read-only or a file since."""
        folder, session = self.host.downloads, self.host.session

        def checked(problem: str | Exception | None) -> None:
            if session is not self.host.session:
                return     # that session is over
            card = self.cards.card("in", file_id)
            if isinstance(problem, str) and isinstance(card, IncomingCard):
                card.reopen(f"Files cannot be saved in {display_path(folder)}: {problem}.")
                return
            self._ask_session(lambda session: session.accept_file(file_id, folder))   # else the worker says why

        self._submit(lambda: folder_problem(folder), checked)

    def decline(self, file_id: str) -> None:
        self._ask_session(lambda session: session.decline_file(file_id))

    def cancel(self, file_id: str) -> None:
        self._ask_session(lambda session: session.cancel_file(file_id))

    def _ask_session(self, request: Callable[[ChatSession], None]) -> None:
        session = self.host.session
        if session is None:
            self.host.note("The session has ended: transfers cannot be answered any more.", Severity.WARNING)
            return
        try:
            request(session)
        except SendQueueFullError as error:
            self.host.note(str(error), Severity.WARNING)

    # -- folders --------------------------------------------------------------------------------

    def open_folder(self, folder: Path) -> None:
        def opened(result: str | Exception | None) -> None:
            if result is not None:
                self.host.note(str(result), Severity.WARNING)
        self._submit(lambda: open_folder(folder), opened)

    def choose_downloads(self) -> None:
        """The panel's Change button: pick the folder accepted files go to; remembered."""
        chosen = filedialog.askdirectory(parent=self.host.root, title="Save accepted files in",
                                         initialdir=str(self.host.downloads), mustexist=False)
        if chosen:
            self.set_downloads(Path(chosen))

    def set_downloads(self, folder: Path) -> None:
        """Accepted files go to ``folder`` from now on, and next time too."""
        self.host.downloads = folder
        self.host.settings = replace(self.host.settings, downloads=folder)
        self.host.chat.sidebar.set_downloads(folder)
        self.host.note(f"Files you accept now go to {display_path(folder)}.")
        self.save_settings()

    def save_settings(self) -> None:
        settings = self.host.settings

        def saved(result: str | Exception | None) -> None:
            if result is not None:
                self.host.note(str(result), Severity.WARNING)
        self._submit(lambda: stored.save(settings), saved)

    def _submit(self, work: Callable[[], object], done: Callable[[object], None]) -> None:
        if not self.host.background.submit(work, done):
            self.host.note(BUSY, Severity.WARNING)
