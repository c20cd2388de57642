"""What the room says, drawn into the chat window: messages with their delivery marks,
the members panel and the membership lines, and file transfer cards.

``Conversation`` handles the session's events about the room (``HANDLES``); the
app (``app.py``) handles those about the connection's life and routes the rest
here, through the same ``on_<event>`` dispatch. It never touches the session:
what the user does on a card goes to the callbacks the cards were given.
Tk thread only.
"""

from __future__ import annotations

from collections.abc import Callable

from securex.desktop.chat import ChatWindow
from securex.desktop.theme import Theme
from securex.desktop.transcript import Delivery
from securex.events import (ChatMessage, DeliveryChanged, Event, EventHandler, FileFinished, FileOffered,
                            FileProgress, MemberJoined, MemberLeft, MembersChanged, Severity)


# A session numbers its own messages from 1; the view keeps every session's messages,
# so their marks are keyed by (session, message): session * this + message id.
MARKS_PER_SESSION = 1 << 32


class Conversation(EventHandler):
    HANDLES: tuple[type[Event], ...] = (MembersChanged, MemberJoined, MemberLeft, ChatMessage, DeliveryChanged,
                                        FileOffered, FileProgress, FileFinished)

    def __init__(self, chat: ChatWindow, theme: Theme, *, on_unseen: Callable[[], None]) -> None:
        self.chat = chat
        self.transcript = chat.transcript
        self.theme = theme
        self.on_unseen = on_unseen      # something from the others arrived (for the unread count)
        self.members_listed = False     # this session has listed who is in the room
        self._session = 0               # sessions so far in this window

    def new_session(self) -> None:
        self.members_listed = False
        self._session += 1

    def mark_key(self, message_id: int) -> int:
        """The transcript's key for this session's message ``message_id`` (0: none)."""
        return self._session * MARKS_PER_SESSION + message_id if message_id else 0

    def on_members_changed(self, event: MembersChanged) -> None:
        self.chat.sidebar.set_members(event.members, event.capacity)
        if len(event.members) > 1:
            self.chat.someone_shares_the_passphrase()
        if not self.members_listed:   # as the terminal: who is here, once, on joining
            self.members_listed = True
            self.transcript.add_info(self.chat.sidebar.summary())

    def on_member_joined(self, event: MemberJoined) -> None:
        self.transcript.add_notice(f"{event.member.label} joined \u00b7 safety code {event.member.safety_code}",
                                   at=event.at)

    def on_member_left(self, event: MemberLeft) -> None:
        how = "'s connection dropped" if event.dropped else " left"
        self.transcript.add_notice(f"{event.member.label}{how}", at=event.at,
                                   severity=Severity.WARNING if event.dropped else Severity.INFO)

    def on_chat_message(self, event: ChatMessage) -> None:
        delivery = None
        if event.own and event.message_id:
            delivery = Delivery("pending" if event.pending else "sent")
        colour = self.chat.sidebar.colour_of(event.sender)
        self.transcript.add_message(event.sender.label, event.text, own=event.own, at=event.shown_at, colour=colour,
                                    late=event.late, caught_up=event.caught_up, written=event.written_earlier,
                                    delivery=delivery,
                                    message_id=self.mark_key(event.message_id))
        if not event.own:
            self.on_unseen()

    def on_delivery_changed(self, event: DeliveryChanged) -> None:
        self.transcript.set_delivery(self.mark_key(event.message_id), Delivery(event.state, event.delivered_to,
                                                                event.waiting_for, event.given_up))

    def on_file_offered(self, event: FileOffered) -> None:
        self.chat.transfers.offered(event)
        self.on_unseen()

    def on_file_progress(self, event: FileProgress) -> None:
        self.chat.transfers.progress(event)

    def on_file_finished(self, event: FileFinished) -> None:
        if not self.chat.transfers.finished(event):   # no card: it ended before it was offered
            self.transcript.add_notice(event.message, at=event.at,
                                       severity=Severity.INFO if event.ok or event.by_choice else Severity.WARNING)
