"""A room member in a process of its own (its own GIL) for the soak tests: a real
ChatSession over a real socket that sends a numbered burst when told to and
accounts for every message it receives. Driven by tests/test_soak.py through
stdin and stdout, one line each:

    SECUREX_PASSPHRASE=... python tests/burst_member.py --port P --name Alice \
        --peers Bob,Carol,Dave,Eve --messages 300

    -> READY                   every peer is in the room (verified with us)
    <- GO                      send the burst now, as fast as the session takes it
    -> GOT <sender> <count>    progress, every --progress messages from a sender
    -> LEFT <name> goodbye|dropped     a member left (an authenticated goodbye, or not)
    -> JOINED <name>           a member (re)joined after READY
    -> RESULT <json>           every peer's burst is in (or it left), or --timeout passed
    <- SAY <text>              send one message (not counted in the burst)
    <- BYE                     leave the room and exit 0

Burst messages are ``"<name> <index> <padding>"``. The RESULT says, per sender,
how many arrived, how many were duplicates, how many arrived out of order and a
SHA-256 over the texts in arrival order (compared with the sender's own
``sent_sha256``); the longest wait between two received messages; every warning
the session gave and every loss of its own connection.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from securex.errors import SendQueueFullError
from securex.events import (ChatMessage, Closed, Connected, ConnectionLost, Event, EventHandler, MemberJoined,
                            MemberLeft, MembersChanged, Notice, Severity, dispatch)
from securex.session.runner import COMMAND_QUEUE_SIZE, EVENT_QUEUE_SIZE, ChatSession, SessionOptions

# Commands wait in the session's bounded queue until its thread seals them; keeping
# well under its size unsent means send_text never has to refuse one.
DEFAULT_WINDOW = COMMAND_QUEUE_SIZE // 2


def say(line: str) -> None:
    print(line, flush=True)


def message_text(name: str, index: int, size: int) -> str:
    head = f"{name} {index} "
    return head + "x" * max(0, size - len(head))


class BurstMember(EventHandler):
    """Counts what arrives, per sender, and reports to the test through stdout."""

    def __init__(self, name: str, peers: list[str], messages: int, progress: int, until_left: set[str]) -> None:
        self.name, self.peers, self.messages = name, peers, messages
        self.progress, self.until_left = progress, until_left
        self.ready = False
        self.counts = dict.fromkeys(peers, 0)
        self.last_index = dict.fromkeys(peers, -1)
        self.duplicates = dict.fromkeys(peers, 0)
        self.out_of_order = dict.fromkeys(peers, 0)
        self.digests = {p: hashlib.sha256() for p in peers}
        self.seen_indices: dict[str, set[int]] = {p: set() for p in peers}
        self.left: list[str] = []
        self.warnings: list[str] = []
        self.link_losses: list[str] = []
        self.unexpected: list[str] = []
        self.closed = False
        self.own_echoes = 0
        self.last_received_at: float | None = None
        self.longest_wait = 0.0

    def everyone_done(self) -> bool:
        """Every peer's burst is in, or it left; ours is all sealed and sent."""
        return (self.own_echoes >= self.messages
                and all(p in self.left or (p not in self.until_left and self.counts[p] >= self.messages)
                        for p in self.peers))

    # -- events -----------------------------------------------------------------------

    def on_members_changed(self, event: MembersChanged) -> None:
        if not self.ready and {m.name for m in event.members if not m.you} >= set(self.peers):
            self.ready = True
            say("READY")

    def on_member_joined(self, event: MemberJoined) -> None:
        if self.ready:
            say(f"JOINED {event.member.name}")

    def on_member_left(self, event: MemberLeft) -> None:
        self.left.append(event.member.name)
        say(f"LEFT {event.member.name} {'dropped' if event.dropped else 'goodbye'}")

    def on_chat_message(self, event: ChatMessage) -> None:
        if event.own:
            self.own_echoes += event.text.startswith(f"{self.name} ")    # burst messages, not SAY
            return
        now = time.monotonic()
        if self.last_received_at is not None:
            self.longest_wait = max(self.longest_wait, now - self.last_received_at)
        self.last_received_at = now
        sender, index_text, _ = [*event.text.split(" ", 2), "", ""][:3]
        if sender not in self.counts or event.sender.name != sender or not index_text.isdigit():
            self.unexpected.append(f"{event.sender.name}: {event.text[:60]}")
            return
        index = int(index_text)
        if index in self.seen_indices[sender]:
            self.duplicates[sender] += 1
            return
        self.seen_indices[sender].add(index)
        if index != self.last_index[sender] + 1 or event.late:
            self.out_of_order[sender] += 1
        self.last_index[sender] = index
        self.counts[sender] += 1
        self.digests[sender].update(event.text.encode() + b"\n")
        if self.progress and self.counts[sender] % self.progress == 0:
            say(f"GOT {sender} {self.counts[sender]}")

    def on_notice(self, event: Notice) -> None:
        if event.severity != Severity.INFO:      # "you are the first here" and the like are fine
            self.warnings.append(event.text)

    def on_connected(self, event: Connected) -> None:
        if event.reconnected:
            self.link_losses.append("reconnected")

    def on_connection_lost(self, event: ConnectionLost) -> None:
        self.link_losses.append(f"lost: {event.reason}")

    def on_closed(self, event: Closed) -> None:
        self.closed = True
        if event.error is not None:
            self.link_losses.append(f"closed: {event.reason}")

    # -- the report -------------------------------------------------------------------

    def result(self, sent_digest: str, seconds: float | None) -> dict:
        return {
            "name": self.name,
            "ready": self.ready,
            "sent": self.own_echoes,
            "sent_sha256": sent_digest,
            "received": self.counts,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "sha256": {p: d.hexdigest() for p, d in self.digests.items()},
            "left": self.left,
            "warnings": self.warnings,
            "link_losses": self.link_losses,
            "unexpected": self.unexpected,
            "longest_wait": round(self.longest_wait, 3),
            "seconds": None if seconds is None else round(seconds, 3),
            "timed_out": seconds is None,
        }


def take_events(events: queue.Queue[Event], timeout: float, most: int = 200) -> list[Event]:
    """What is queued (up to ``most``), waiting up to ``timeout`` for the first."""
    try:
        taken = [events.get(timeout=timeout)]
    except queue.Empty:
        return []
    while len(taken) < most:
        try:
            taken.append(events.get_nowait())
        except queue.Empty:
            break
    return taken


def read_commands(commands: queue.Queue[str]) -> None:
    for line in sys.stdin:
        commands.put(line.rstrip("\n"))
    commands.put("BYE")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--peers", required=True, help="comma-separated names of the other members")
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--size", type=int, default=64, help="characters per message")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                        help="keep at most this many messages queued and not yet sent")
    parser.add_argument("--until-left", default="",
                        help="comma-separated peers whose burst only ends when they leave")
    parser.add_argument("--progress", type=int, default=0, help="print GOT every this many messages")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after this long in all")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    peers = [p for p in args.peers.split(",") if p]
    member = BurstMember(args.name, peers, args.messages, args.progress,
                         {p for p in args.until_left.split(",") if p})
    events: queue.Queue[Event] = queue.Queue(maxsize=EVENT_QUEUE_SIZE)
    session = ChatSession(SessionOptions("127.0.0.1", args.port, args.name, os.environ["SECUREX_PASSPHRASE"],
                                         auto_reconnect=False), events)
    commands: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_commands, args=(commands,), daemon=True).start()
    session.start()

    sent_digest = hashlib.sha256()
    queued = 0
    go_at: float | None = None
    reported = False
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline and not member.closed:
        try:
            command = commands.get_nowait()
        except queue.Empty:
            command = ""
        if command == "BYE":
            break
        if command == "GO" and go_at is None:
            go_at = time.monotonic()
        elif command.startswith("SAY "):
            session.send_text(command[4:])
        while go_at is not None and queued < args.messages and queued - member.own_echoes < args.window:
            text = message_text(args.name, queued, args.size)
            try:
                session.send_text(text)
            except SendQueueFullError:
                break
            sent_digest.update(text.encode() + b"\n")
            queued += 1
        if go_at is not None and not reported and member.everyone_done():
            reported = True
            say("RESULT " + json.dumps(member.result(sent_digest.hexdigest(), time.monotonic() - go_at)))
        for event in take_events(events, timeout=0.02):
            dispatch(member, event)
    if not reported:
        say("RESULT " + json.dumps(member.result(sent_digest.hexdigest(), None)))
    session.leave()
    leave_by = time.monotonic() + 10
    while session.is_alive and time.monotonic() < leave_by:   # keep its queue moving until Closed
        take_events(events, timeout=0.05)
    return 0


if __name__ == "__main__":
    sys.exit(main())
