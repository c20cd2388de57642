"""The terminal front end: ``python client.py --cli``.

Stable output for people and scripts, one line per event::

    [14:03:22] Bob: hello                      a message (embedded newlines shown as ⏎)
    [14:03:25] * Carol joined                  membership
    [14:03:40] * Carol left
    [14:03:41] ! 2 messages from Bob were not received    notices and warnings

The main thread prints events from the session's queue; a reader thread feeds
stdin lines to the session. Neither touches the socket.
"""

from __future__ import annotations

import queue
import signal
import sys
import threading

from securex.session import runner as chat_session
from securex.session.runner import ChatSession
from securex.events import (ChatMessage, Closed, Connected, ConnectionLost, Event,
                          MemberJoined, MemberLeft, MembersChanged, Notice, Reconnecting)
from crypto_utils import passphrase_warning
from securex.errors import EXIT_USAGE, SecureXError, exit_status

WHO_COMMAND = "/who"


def ask(prompt: str, flag: str) -> str:
    """Ask the person at the terminal; without one, say which flag to pass."""
    if not sys.stdin.isatty():
        raise SecureXError(f"No terminal to ask for it: pass {flag}.")
    return input(prompt).strip()


def format_event(event: Event) -> str | None:
    """The line printed for an event, or None for events with no line of their own."""
    stamp = event.at.strftime("[%H:%M:%S]")
    if isinstance(event, ChatMessage):
        return None if event.own else f"{stamp} {event.sender}: {event.text.replace(chr(10), ' ⏎ ')}"
    if isinstance(event, MemberJoined):
        return f"{stamp} * {event.name} joined"
    if isinstance(event, MemberLeft):
        return f"{stamp} * {event.name} left"
    if isinstance(event, Notice):
        return f"{stamp} ! {event.text}"
    if isinstance(event, Connected):
        verb = "Reconnected" if event.reconnected else "Joined the room"
        return (f"{stamp} {verb} at {event.server} ({event.cipher}). Room key fingerprint: "
                f"{event.fingerprint} (compare it out loud with the others)")
    if isinstance(event, ConnectionLost):
        return f"{stamp} ! {event.reason} Reconnecting in {event.retry_in:g} s (Ctrl+C to quit)."
    if isinstance(event, Reconnecting):
        return f"{stamp} ! Reconnecting (attempt {event.attempt})..."
    return None


def _feed_stdin(session: ChatSession, members: list[MembersChanged]) -> None:
    for line in sys.stdin:
        text = line.rstrip("\r\n")
        if text.strip() == WHO_COMMAND:
            if members:
                latest = members[-1]
                print(f"In the room ({len(latest.names)}/{latest.capacity}): "
                      + ", ".join(latest.names), flush=True)
            continue
        session.send_text(text)
    session.leave()


def tolerate_any_encoding() -> None:
    """On a terminal that cannot show some characters (an ASCII or Latin-1 locale),
    print a replacement character instead of crashing: chat text is anyone's to choose."""
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")


def run(host: str, port: int, name: str, passphrase: str, *, auto_reconnect: bool = True) -> int:
    tolerate_any_encoding()
    try:
        name = chat_session.validate_name(name)
    except ValueError as error:
        print(f"Error: {error}", file=sys.stderr)
        return EXIT_USAGE
    warning = passphrase_warning(passphrase)
    if warning:
        print(f"Warning: {warning}", file=sys.stderr)
    events: queue.Queue[Event] = queue.Queue()
    session = ChatSession(host, port, name, passphrase, events, auto_reconnect=auto_reconnect)
    # SIGTERM leaves as cleanly as Ctrl+C does.
    signal.signal(signal.SIGTERM, lambda *_: session.leave())
    members: list[MembersChanged] = []     # latest only; replaced whole, read by /who
    session.start()
    while True:
        try:
            status = _show_next_event(events, session, members)
        except KeyboardInterrupt:      # Ctrl+C may land anywhere in the loop
            session.leave()
            continue
        if status is not None:
            return status


def _show_next_event(events: queue.Queue[Event], session: ChatSession,
                     members: list[MembersChanged]) -> int | None:
    """Print one event; return the exit status once the session is over."""
    try:
        event = events.get(timeout=1.0)
    except queue.Empty:
        return None
    if isinstance(event, MembersChanged):
        members[:] = [event]
    line = format_event(event)
    if line:
        print(line, flush=True)
    if isinstance(event, Connected) and not event.reconnected:
        threading.Thread(target=_feed_stdin, args=(session, members), name="stdin", daemon=True).start()
    if isinstance(event, Closed):
        if event.error is None:
            print(event.reason, flush=True)
        else:
            print(f"Error: {event.reason}", file=sys.stderr, flush=True)
        return exit_status(event.error)
    return None
