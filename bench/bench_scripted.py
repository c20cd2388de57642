"""Members driven by hand in this process: ``helpers.ScriptedMember`` (the client's
RoomCore on a socket) pumped together by one thread, for the phases that need to
see every byte a member sends and receives (overhead, the relay-hop latency).

``scripted_room`` joins them one after another, each once everyone before it is
verified by everyone, exactly as clients join; ``pump_together`` moves bytes for
all of them at once, since a join needs the members present to answer.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import bench_setup  # noqa: F401  (the project on sys.path)
from helpers import WAIT, ScriptedMember


def pump_together(members: list[ScriptedMember], until: Callable[[], bool], what: str) -> None:
    """Move bytes both ways for every member at once until ``until()`` holds."""
    deadline = time.monotonic() + WAIT
    by_socket = {member.sock: member for member in members}
    while True:
        for member in members:
            data = member.core.data_to_send()
            if data:
                member.sock.sendall(data)
            member.events += member.core.take_events()
        if until():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {WAIT:g} s")
        for sock in select.select(list(by_socket), [], [], 0.01)[0]:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the relay closed a connection")
            by_socket[sock].core.receive_data(data)
        for member in members:
            member.core.tick()


@contextmanager
def scripted_room(port: int, size: int) -> Iterator[list[ScriptedMember]]:
    """``size`` scripted members, all in the room and verified by each other; their
    sockets are closed at the end (the relay sees them drop)."""
    members: list[ScriptedMember] = []
    try:
        for index in range(size):
            members.append(ScriptedMember(port, f"member{index}"))
            pump_together(members, lambda: all(m.core.in_room and len(m.core.peers) == len(members) - 1
                                               for m in members), f"room of {len(members)}")
        yield members
    finally:
        for member in members:
            member.close()
