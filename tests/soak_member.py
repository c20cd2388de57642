"""One soak-test member in its own process (its own GIL): a real ChatSession over
a real socket, driven by tests/test_soak.py through stdin and stdout.

    SECUREX_PASSPHRASE=... python tests/soak_member.py --port P --name Alice \
        --peers Bob,Carol,Dave,Eve --messages 2000

Protocol with the test (one line each):

    -> READY                  every peer is in the room
    <- GO                     send the burst now, as fast as the session takes it
    -> GOT <sender> <count>   progress, every --progress messages from a sender
    -> LEFT <name>            a member left
    -> RESULT <json>          every peer's burst is in (or it left), or --timeout
    <- BYE                    leave the room and exit 0

Messages are ``"<name> <index> <padding>"``. The RESULT says, per sender, how many
arrived, how many were duplicates, how many arrived out of order and a SHA-256
over the texts in arrival order (compared with the sender's own ``sent_sha256``),
plus every Notice and connection drop the session reported.
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

from securex.session.runner import (ChatMessage, ChatSession, Closed, Connected, ConnectionLost,
                          MemberLeft, MembersChanged, Notice)


def message_text(name: str, index: int, size: int) -> str:
    head = f"{name} {index} "
    return head + "x" * max(0, size - len(head))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--peers", required=True, help="comma-separated names of the other members")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64, help="characters per message")
    parser.add_argument("--window", type=int, default=0,
                        help="queue at most this many unsent messages (0: the whole burst at once)")
    parser.add_argument("--until-left", default="",
                        help="comma-separated peers whose burst only ends when they leave")
    parser.add_argument("--progress", type=int, default=0, help="print GOT every this many messages")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up waiting after this long")
    args = parser.parse_args()
    peers = [p for p in args.peers.split(",") if p]
    until_left = {p for p in args.until_left.split(",") if p}

    events: queue.Queue = queue.Queue()
    session = ChatSession("127.0.0.1", args.port, args.name, os.environ["SECUREX_PASSPHRASE"], events,
                          auto_reconnect=False)
    go = threading.Event()
    bye = threading.Event()

    def read_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "GO":
                go.set()
            elif line.strip() == "BYE":
                bye.set()
        bye.set()

    def say(line: str) -> None:
        print(line, flush=True)

    threading.Thread(target=read_stdin, daemon=True).start()
    session.start()

    counts = {p: 0 for p in peers}
    last_index = {p: -1 for p in peers}
    duplicates = {p: 0 for p in peers}
    out_of_order = {p: 0 for p in peers}
    digests = {p: hashlib.sha256() for p in peers}
    seen_indices: dict[str, set[int]] = {p: set() for p in peers}
    left: list[str] = []
    notices: list[str] = []
    drops: list[str] = []
    unexpected: list[str] = []
    sent_digest = hashlib.sha256()
    own_echoes = queued = 0
    ready = started = False
    go_at = done_at = None
    deadline = time.monotonic() + args.timeout

    def everyone_done() -> bool:
        return (all(p in left or (counts[p] >= args.messages and p not in until_left) for p in peers)
                and own_echoes >= args.messages)

    while time.monotonic() < deadline:
        if go.is_set() and not started:
            started, go_at = True, time.monotonic()
        # Without --window every message is queued at once and the session sends as
        # fast as it can; with one, at most that many wait unsent at any time.
        while started and queued < args.messages and (not args.window or queued - own_echoes < args.window):
            text = message_text(args.name, queued, args.size)
            sent_digest.update(text.encode() + b"\n")
            session.send_text(text)
            queued += 1
        if started and everyone_done():
            done_at = time.monotonic()
            break
        try:
            event = events.get(timeout=0.05)
        except queue.Empty:
            continue
        if isinstance(event, MembersChanged):
            if not ready and len(event.names) == len(peers) + 1:
                ready = True
                say("READY")
        elif isinstance(event, ChatMessage):
            if event.own:
                own_echoes += 1
                continue
            sender, index_text, _ = [*event.text.split(" ", 2), "", ""][:3]
            if sender not in counts or event.sender != sender or not index_text.isdigit():
                unexpected.append(event.text[:80])
                continue
            index = int(index_text)
            if index in seen_indices[sender]:
                duplicates[sender] += 1
                continue
            seen_indices[sender].add(index)
            if index != last_index[sender] + 1:
                out_of_order[sender] += 1
            last_index[sender] = index
            counts[sender] += 1
            digests[sender].update(event.text.encode() + b"\n")
            if args.progress and counts[sender] % args.progress == 0:
                say(f"GOT {sender} {counts[sender]}")
        elif isinstance(event, MemberLeft):
            left.append(event.name)
            say(f"LEFT {event.name}")
        elif isinstance(event, Notice):
            notices.append(event.text)
        elif isinstance(event, (ConnectionLost, Closed)):
            drops.append(f"{type(event).__name__}: {event.reason}")
            if isinstance(event, Closed):
                break
        elif isinstance(event, Connected) and event.reconnected:
            drops.append("reconnected")

    result = {
        "name": args.name,
        "ready": ready,
        "sent": own_echoes,
        "sent_sha256": sent_digest.hexdigest(),
        "received": counts,
        "duplicates": duplicates,
        "out_of_order": out_of_order,
        "sha256": {p: d.hexdigest() for p, d in digests.items()},
        "left": left,
        "notices": notices,
        "drops": drops,
        "unexpected": unexpected,
        "seconds": None if go_at is None or done_at is None else round(done_at - go_at, 3),
        "timed_out": done_at is None,
    }
    say("RESULT " + json.dumps(result))
    # Keep reporting who leaves until the test says BYE.
    bye_deadline = time.monotonic() + args.timeout
    while not bye.is_set() and time.monotonic() < bye_deadline:
        try:
            event = events.get(timeout=0.05)
        except queue.Empty:
            continue
        if isinstance(event, MemberLeft):
            say(f"LEFT {event.name}")
    session.leave()
    session.join(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
