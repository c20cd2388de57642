"""The events a session posts are the whole interface between the network side and
a front end: every event type is a frozen dataclass with a handler name, dispatch
reaches that handler, and every front end decides what each one means (a new
event type cannot be silently ignored by a front end that never heard of it)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from securex import events
from securex.events import EVENT_TYPES, Event, EventHandler, dispatch, handler_name
from securex.terminal import TerminalFrontEnd


def test_every_event_type_is_listed_frozen_and_has_a_default_handler():
    defined = {cls for _, cls in inspect.getmembers(events, inspect.isclass)
               if issubclass(cls, Event) and cls is not Event}
    assert defined == set(EVENT_TYPES)
    for event_type in EVENT_TYPES:
        assert dataclasses.is_dataclass(event_type) and event_type.__dataclass_params__.frozen
        assert callable(getattr(EventHandler, handler_name(event_type)))


def test_dispatch_calls_the_handler_named_after_the_event():
    seen = []

    class Recorder(EventHandler):
        pass

    for event_type in EVENT_TYPES:
        setattr(Recorder, handler_name(event_type), lambda self, event: seen.append(type(event)))
    recorder = Recorder()
    for event_type in EVENT_TYPES:
        fields = {f.name: None for f in dataclasses.fields(event_type) if f.init and f.name != "at"
                  and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        dispatch(recorder, event_type(**fields))
    assert seen == list(EVENT_TYPES)


def front_ends() -> list[tuple[str, list[type[EventHandler]]]]:
    """Each front end and the handler classes its events are dispatched to."""
    found: list[tuple[str, list[type[EventHandler]]]] = [("terminal", [TerminalFrontEnd])]
    try:
        import tkinter  # noqa: F401
    except ImportError:        # no tkinter here: the desktop tests say so
        return found
    from securex.desktop.app import App
    from securex.desktop.conversation import Conversation
    return [*found, ("desktop", [App, Conversation])]


@pytest.mark.parametrize("handlers", [h for _, h in front_ends()], ids=[name for name, _ in front_ends()])
def test_every_front_end_handles_every_event_itself(handlers):
    def handled(event_type: type[Event]) -> bool:
        name = handler_name(event_type)
        return any(getattr(cls, name) is not getattr(EventHandler, name) for cls in handlers)

    assert [handler_name(t) for t in EVENT_TYPES if not handled(t)] == [], "left to the do-nothing default"


def test_a_message_shows_when_it_arrived_and_a_much_earlier_time_as_its_senders_word():
    """New-user finding: a message typed while the server was down showed, in the
    terminal, the time it was finally sent. Third review: taking the sender's time as
    the line's own let any member (or a slow clock) put a live message at 09:00."""
    from datetime import datetime, timedelta

    arrived = datetime(2026, 11, 25, 20, 42, 15)
    bob = events.Member("Bob", "ABCD EFGH", "Bob")

    def message(written_before: float, **flags) -> events.ChatMessage:
        return events.ChatMessage(bob, "hi", own=False, sent_at=arrived - timedelta(seconds=written_before),
                                  at=arrived, **flags)

    for before in (3, -30, 88, 5 * 3600):               # a clock a little off, ahead, queued, lying
        assert message(before).shown_at == arrived
    assert message(3).written_earlier is None and message(-30).written_earlier is None
    assert message(88).written_earlier == arrived - timedelta(seconds=88)       # shown beside, as theirs
    assert message(5, late=True).shown_at == arrived - timedelta(seconds=5)      # marked "late" where shown
    assert message(5, caught_up=True).shown_at == arrived - timedelta(seconds=5)
