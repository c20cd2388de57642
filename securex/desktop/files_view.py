"""File transfers in the message view: one card per transfer.

An offer from a member shows the file's name, its size and who sends it, with
Accept and Decline. Once accepted, a progress bar with the speed and the time left,
and Cancel; when the file is saved and its SHA-256 checked, "Saved to …, verified"
with Open folder. A file you offer gets a card with a row per recipient (each with
its own progress) and one Cancel for the whole transfer.

The cards follow the session's file events (``FileOffered``, ``FileProgress``,
``FileFinished``) and report what the user presses through the callbacks; they
never touch the session or the disk. Tk thread only.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tkinter import ttk

from securex.bidi import drawn
from securex.desktop.paths import display_path
from securex.desktop.transcript import Transcript
from securex.events import FileFinished, FileOffered, FileProgress
from securex.text import human_size

CARD_TEXT_WIDTH = 430      # pixels: a card reads as one block, not a line across a wide window
BAR_LENGTH = 240
MAX_CARDS = 500            # cards remembered for updates; the oldest are forgotten (they stay on screen)
CONFIRM_MS = 4000          # a first click on Cancel waits this long for the second that stops the transfer
SETTLE_MS = 500            # buttons that just appeared on a card ignore clicks this long


def time_left(seconds: float) -> str:
    """A duration as people say it: "8 s", "2 min 5 s", "1 h 4 min"."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60} min"


def progress_line(done: int, total: int, rate: float) -> str:
    """ "42% · 4.2 MB of 10.0 MB · 3.1 MB/s · 2 s left" """
    percent = 100 * done // total if total else 100
    line = f"{percent}% \u00b7 {human_size(done)} of {human_size(total)}"
    if rate > 0 and done < total:
        line += f" \u00b7 {human_size(int(rate))}/s \u00b7 {time_left((total - done) / rate)} left"
    return line


def progress_text(event: FileProgress) -> str:
    """A card's progress line for ``event``: paused while the other's connection is down,
    waiting while nothing moves (rather than a speed and a time left from before)."""
    line = progress_line(event.done, event.total, event.rate)
    if event.stage == "paused":
        return line + " \u00b7 paused until the connection is back"
    if event.stage == "waiting":
        return line + " \u00b7 nothing has moved for a few seconds"
    return line


@dataclass(frozen=True)
class Actions:
    """What the buttons on the cards do (each gets the transfer's id)."""
    accept: Callable[[str], None]
    decline: Callable[[str], None]
    cancel: Callable[[str], None]
    open_folder: Callable[[Path], None]


class _Card(ttk.Frame):
    cancel_button: ttk.Button      # placed by each kind of card

    def __init__(self, master: tk.Misc, file_id: str, actions: Actions) -> None:
        super().__init__(master, style="Transfer.TFrame", padding=(12, 8, 12, 10))
        self.file_id = file_id
        self.actions = actions
        self.finished = False
        self.columnconfigure(0, weight=1)
        self._cancel_armed: str | None = None      # the timer that takes a first click back

    def _cancel_button(self, parent: tk.Misc) -> ttk.Button:
        return ttk.Button(parent, text="Cancel", style="Small.TButton", command=self._cancel_clicked)

    def _cancel_clicked(self) -> None:
        """A transfer under way is not stopped by one stray click (the chat scrolls cards
        under the pointer): the first click asks, a second within a few seconds stops it."""
        if self._cancel_armed is None:
            self.cancel_button.configure(text="Click again to cancel", style="SmallWarning.TButton")
            self._cancel_armed = self.after(CONFIRM_MS, self._disarm_cancel)
            return
        self._disarm_cancel()
        self.actions.cancel(self.file_id)

    def _disarm_cancel(self) -> None:
        if self._cancel_armed is not None:
            self.after_cancel(self._cancel_armed)
            self._cancel_armed = None
        if self.winfo_exists():
            self.cancel_button.configure(text="Cancel", style="Small.TButton")

    def _settle(self, *buttons: ttk.Button) -> None:
        """Buttons that just appeared where the pointer may be (a new card, or a card
        that changed state under it) ignore clicks for a moment: a click, or the second
        of a double-click, meant for what was there must not land on them."""
        for button in buttons:
            button.state(["disabled"])
        self.after(SETTLE_MS, lambda: [button.state(["!disabled"]) for button in buttons if button.winfo_exists()])

    def _label(self, row: int, text: str = "", style: str = "Card.TLabel", **grid) -> ttk.Label:
        label = ttk.Label(self, text=drawn(text), style=style, wraplength=CARD_TEXT_WIDTH, justify="left")
        label.grid(row=row, column=0, sticky="w", **grid)
        return label

    def stop(self, message: str) -> None:
        """The session ended with the transfer unfinished."""
        raise NotImplementedError


class IncomingCard(_Card):
    """A member's offer to us, and what became of it."""

    def __init__(self, master: tk.Misc, event: FileOffered, actions: Actions) -> None:
        super().__init__(master, event.file_id, actions)
        self.event = event
        self.title = self._label(0, self._title("offers"), "Card.Bold.TLabel")
        self.status = self._label(1, "Accept it to save it in your downloads folder.", "Card.Muted.TLabel",
                                  pady=(2, 0))
        self.bar = ttk.Progressbar(self, orient="horizontal", length=BAR_LENGTH, mode="determinate", maximum=1000)
        self.buttons = ttk.Frame(self, style="Card.TFrame")
        self.buttons.grid(row=3, column=0, sticky="w", pady=(8, 0))
        self.accept_button = ttk.Button(self.buttons, text="Accept", style="SmallAccent.TButton",
                                        command=self.accept)
        self.decline_button = ttk.Button(self.buttons, text="Decline", style="Small.TButton",
                                         command=self.decline)
        self.cancel_button = self._cancel_button(self.buttons)
        self.open_button = ttk.Button(self.buttons, text="Open folder", style="Small.TButton",
                                      command=self._open_folder)
        self.accept_button.grid(row=0, column=0, padx=(0, 6))
        self.decline_button.grid(row=0, column=1)
        self._settle(self.accept_button, self.decline_button)
        self.saved_to: Path | None = None
        self.accepted = self.declined = False

    @property
    def under_way(self) -> bool:
        return self.accepted and not self.finished

    def _title(self, verb: str) -> str:
        return f"{self.event.sender.label} {verb} {self.event.name} \u00b7 {human_size(self.event.size)}"

    def accept(self) -> None:
        self.accepted = True
        self.title.configure(text=drawn(self._title("sends")))     # no longer just an offer
        self._show_buttons(self.cancel_button)
        self.status.configure(text=drawn(f"Accepted; waiting for {self.event.sender.label} to start sending\u2026"),
                              style="Card.Muted.TLabel")
        self.actions.accept(self.file_id)

    def reopen(self, problem: str) -> None:
        """Accepting failed in a way the user can put right (no room on the disk, a
        folder that cannot be written to): the offer is open again, and the card says why."""
        self.accepted = False
        self.title.configure(text=drawn(self._title("offers")))
        self.bar.grid_remove()
        self.status.configure(text=drawn(f"{problem} Choose another folder for downloads, or put this one right, "
                                         "then accept it again."), style="Card.Warning.TLabel")
        self._show_buttons(self.accept_button, self.decline_button)

    def decline(self) -> None:
        self.declined = True
        self._show_buttons()
        self.actions.decline(self.file_id)

    def _open_folder(self) -> None:
        if self.saved_to is not None:
            self.actions.open_folder(self.saved_to.parent)

    def _show_buttons(self, *buttons: ttk.Button) -> None:
        for child in self.buttons.grid_slaves():
            child.grid_remove()
        for column, button in enumerate(buttons):
            button.grid(row=0, column=column, padx=(0, 6))
        self._settle(*buttons)
        if buttons:
            self.buttons.grid()
        else:       # an emptied frame keeps its last size in Tk: a blank band under the card
            self.buttons.grid_remove()

    def progress(self, event: FileProgress) -> None:
        if self.finished:
            return
        if not self.bar.winfo_manager():
            self.bar.grid(row=2, column=0, sticky="w", pady=(6, 0))
            self._show_buttons(self.cancel_button)
        self.bar.configure(value=1000 * event.done // event.total if event.total else 1000)
        if event.stage == "checking":
            self.status.configure(text="All there; checking its SHA-256\u2026")
        else:
            self.status.configure(text=drawn(progress_text(event)))

    def finish(self, event: FileFinished) -> None:
        self.finished = True
        self.bar.grid_remove()
        if event.ok and event.path:
            self.saved_to = Path(event.path)
            self.title.configure(text=drawn(self._title("sent")))
            self.status.configure(text=drawn(f"\u2713  Saved to {display_path(self.saved_to)}, verified (SHA-256)."),
                                  style="Card.Ok.TLabel")
            self._show_buttons(self.open_button)
        else:
            muted = self.declined or event.by_choice
            self.title.configure(text=drawn(self._title("offered")))    # not "sends" under "Cancelled"
            self.status.configure(text=drawn(event.message),
                                  style="Card.Muted.TLabel" if muted else "Card.Warning.TLabel")
            self._show_buttons()

    def stop(self, message: str) -> None:
        if not self.finished:
            self.finished = True
            self.title.configure(text=drawn(self._title("offered")))
            self.bar.grid_remove()
            self.status.configure(text=drawn(message), style="Card.Warning.TLabel")
            self._show_buttons()


class OutgoingCard(_Card):
    """A file we offer: a row per member offered it (waiting for an answer, then its
    progress, then how it ended), one Cancel for all of them."""

    def __init__(self, master: tk.Misc, event: FileProgress, actions: Actions) -> None:
        super().__init__(master, event.file_id, actions)
        self.total = event.total
        self.offered_to = event.peer
        self.expected = len(event.recipients)
        self.what = f"{event.name} \u00b7 {human_size(event.total)}"
        self.title = self._label(0, f"You offer {self.what}", "Card.Bold.TLabel")
        self.status = self._label(1, f"Offered to {event.peer}; waiting for them to accept.", "Card.Muted.TLabel",
                                  pady=(2, 0))
        self.rows_frame = ttk.Frame(self, style="Card.TFrame")
        self.rows_frame.grid(row=2, column=0, sticky="w")
        self.rows_frame.columnconfigure(2, weight=1)
        self.rows: dict[str, tuple[ttk.Label, ttk.Progressbar, ttk.Label]] = {}
        self.done_peers: set[str] = set()
        self.delivered_peers: set[str] = set()
        self.cancel_button = self._cancel_button(self)
        self.cancel_button.grid(row=3, column=0, sticky="w", pady=(8, 0))
        self._settle(self.cancel_button)
        for peer in event.recipients:
            _, bar, stats = self._row(peer)
            bar.grid_remove()
            stats.configure(text="waiting for an answer")

    @property
    def under_way(self) -> bool:
        return not self.finished

    @property
    def only_offered(self) -> bool:
        """Nobody has accepted yet (or every copy under way has ended): an offer waiting."""
        return not any(bar.winfo_manager() for peer, (_, bar, _) in self.rows.items() if peer not in self.done_peers)

    def _row(self, peer: str) -> tuple[ttk.Label, ttk.Progressbar, ttk.Label]:
        row = self.rows.get(peer)
        if row is None:
            index = len(self.rows)
            name = ttk.Label(self.rows_frame, text=drawn(peer), style="Card.TLabel")
            bar = ttk.Progressbar(self.rows_frame, orient="horizontal", length=BAR_LENGTH // 2,
                                  mode="determinate", maximum=1000)
            stats = ttk.Label(self.rows_frame, style="Card.Muted.TLabel")
            name.grid(row=index, column=0, sticky="w", padx=(0, 10), pady=(6, 0))
            bar.grid(row=index, column=1, sticky="w", padx=(0, 10), pady=(6, 0))
            stats.grid(row=index, column=2, sticky="w", pady=(6, 0))
            row = self.rows[peer] = (name, bar, stats)
        return row

    def progress(self, event: FileProgress) -> None:
        if self.finished or event.peer in self.done_peers:
            return
        _, bar, stats = self._row(event.peer)
        if event.stage == "offered":      # again, from the start: their Secure X restarted
            bar.grid_remove()
            stats.configure(text="offered again: waiting for an answer")
            return
        bar.grid()
        bar.configure(value=1000 * event.done // event.total if event.total else 1000)
        stats.configure(text=progress_text(event))
        self._show_state()

    def finish(self, event: FileFinished) -> None:
        if not event.peer:   # the whole transfer: cancelled, or the file could not be read
            self.stop(event.message, by_choice=event.by_choice)
            return
        _, bar, stats = self._row(event.peer)
        self.done_peers.add(event.peer)
        bar.grid_remove()
        if event.ok:
            stats.configure(text="\u2713  delivered, verified", style="Card.Ok.TLabel")
        else:
            # The row already names the member: "declined report.pdf.", not "Bob   Bob declined ...".
            stats.configure(text=event.message.removeprefix(f"{event.peer} "),
                            style="Card.Muted.TLabel" if event.by_choice else "Card.Warning.TLabel",
                            wraplength=CARD_TEXT_WIDTH - 120)
        if event.ok:
            self.delivered_peers.add(event.peer)
        if len(self.done_peers) >= self.expected:
            self.finished = True
            self.cancel_button.grid_remove()
            self._past_tense()
            self.status.configure(text=f"Finished: delivered to {len(self.delivered_peers)} of {len(self.done_peers)}.")
        else:
            self._show_state()

    def _past_tense(self) -> None:
        self.title.configure(text=drawn(f"You offered {self.what}"))

    def _show_state(self) -> None:
        """The line under the title, from the rows: who is getting it, who has it, who has
        not answered yet."""
        under_way = [peer for peer in self.rows if peer not in self.done_peers]
        sending = sum(1 for peer in under_way if self.rows[peer][1].winfo_manager())
        waiting = len(under_way) - sending
        parts = [f"sending to {sending} of {self.expected or len(self.rows)}"] if sending else []
        if self.delivered_peers:
            parts.append(f"delivered to {len(self.delivered_peers)}")
        if waiting:
            parts.append(f"{waiting} {'has' if waiting == 1 else 'have'} not answered yet")
        if parts:
            text = "; ".join(parts)
            self.status.configure(text=f"{text[0].upper()}{text[1:]}.")

    def stop(self, message: str, *, by_choice: bool = False) -> None:
        if self.finished:
            return
        self.finished = True
        self.cancel_button.grid_remove()
        self._past_tense()
        style = "Card.Muted.TLabel" if by_choice else "Card.Warning.TLabel"     # a choice is no failure
        self.status.configure(text=drawn(message), style=style)
        for peer, (_, bar, stats) in self.rows.items():
            if peer not in self.done_peers:
                bar.grid_remove()
                stats.configure(text="stopped", style=style)


class TransferCards:
    """Every transfer's card, by direction and id, added to ``transcript`` as they start."""

    def __init__(self, transcript: Transcript, actions: Actions) -> None:
        self.transcript = transcript
        self.actions = actions
        self.cards: dict[tuple[str, str], IncomingCard | OutgoingCard] = {}

    def offered(self, event: FileOffered) -> IncomingCard:
        card = self.cards.get(("in", event.file_id))
        if event.problem and isinstance(card, IncomingCard) and card.winfo_exists():
            card.reopen(event.problem)     # offered again: the same card, saying why
            return card
        card = IncomingCard(self.transcript.text, event, self.actions)
        self._add(("in", event.file_id), card)
        return card

    def progress(self, event: FileProgress) -> None:
        key = (event.direction, event.file_id)
        card = self.cards.get(key)
        if card is None and event.direction == "out" and event.stage == "offered":
            self._add(key, OutgoingCard(self.transcript.text, event, self.actions))
        elif card is not None and card.winfo_exists():
            card.progress(event)

    def finished(self, event: FileFinished) -> bool:
        """Show the end on the transfer's card; False if it has none (the caller shows a line)."""
        card = self.cards.get((event.direction, event.file_id))
        if card is None or not card.winfo_exists():
            return False
        card.finish(event)
        return True

    def stop_all(self, message: str) -> None:
        """The session ended: what was under way will not go on."""
        for card in self.cards.values():
            if card.winfo_exists():
                card.stop(message)

    @property
    def active(self) -> int:
        """Transfers under way or waiting for an answer."""
        return sum(1 for card in self.cards.values() if card.under_way and card.winfo_exists())

    @property
    def offers_waiting(self) -> int:
        """Of those, our offers nobody has started to take yet."""
        return sum(1 for card in self.cards.values() if isinstance(card, OutgoingCard) and card.under_way
                   and card.only_offered and card.winfo_exists())

    def card(self, direction: str, file_id: str) -> IncomingCard | OutgoingCard | None:
        return self.cards.get((direction, file_id))

    def _add(self, key: tuple[str, str], card: IncomingCard | OutgoingCard) -> None:
        self.cards[key] = card
        while len(self.cards) > MAX_CARDS:
            del self.cards[next(iter(self.cards))]
        self.transcript.add_widget(card)
