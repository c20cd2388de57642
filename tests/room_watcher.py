"""A RoomBrowser in its own process, for the LAN tests (it runs inside a network namespace):

    python tests/room_watcher.py [--max-rooms N]

Prints one JSON line per event the browser reports and exits 0 when its stdin ends:

    {"event": "found" | "updated" | "lost", "at": SECONDS_SINCE_START, "room": {...},
     "count": ROOMS_KNOWN}
    {"event": "unavailable", "reason": "..."}

A line ``READY`` comes first, once the browser has been started.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from securex.discovery import (MAX_ROOMS, DiscoveryUnavailable, Room, RoomBrowser,
                               RoomsChanged, queue_sink)


def room_fields(room: Room) -> dict:
    return {"name": room.name, "addresses": list(room.addresses), "port": room.port, "taken": room.taken,
            "capacity": room.capacity, "version": room.version, "line": room.describe()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-rooms", type=int, default=MAX_ROOMS)
    args = parser.parse_args()
    events: queue.Queue = queue.Queue(maxsize=1024)
    browser = RoomBrowser(queue_sink(events), max_rooms=args.max_rooms)
    started = time.monotonic()
    browser.start()
    print("READY", flush=True)
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    while not done.is_set():
        try:
            event = events.get(timeout=0.05)
        except queue.Empty:
            continue
        if isinstance(event, RoomsChanged):
            line = {"event": event.change.value, "at": round(time.monotonic() - started, 3),
                    "room": room_fields(event.room), "count": len(event.rooms)}
        elif isinstance(event, DiscoveryUnavailable):
            line = {"event": "unavailable", "reason": event.reason}
        print(json.dumps(line), flush=True)
    browser.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
