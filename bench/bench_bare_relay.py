"""The bare relay: the baseline the Secure X relay is measured against.

It has the Secure X relay's framing and nothing else. Frames are encoded and
decoded by the same functions (``securex.protocol``: a u32 length, a type byte,
ROUTE becomes ROUTED by swapping the recipient's id for the sender's), but:

* one thread per connection reads frames and sends each routed frame straight
  to its recipient, one ``sendall`` under that recipient's lock: no outboxes,
  no writer threads, no batching, no back-pressure (a full socket just blocks
  the sending member's thread);
* no limits, timeouts, pings or ready/confirmed bookkeeping. It speaks only as
  much of joining as real clients need to join through it: WELCOME with a
  random id, a ROSTER listing everyone as ready and confirmed after each HELLO
  and each departure, CLOSE in answer to LEAVE. STATUS and PING are ignored.

Run as a program it serves on 127.0.0.1, on a free port, until killed::

    python bench/bench_bare_relay.py
    Bare relay on 127.0.0.1:PORT (up to 5 members)

Like the real relay's process, it loads no cryptography.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from dataclasses import dataclass, field

import bench_setup  # noqa: F401  (the project on sys.path)
from securex import protocol
from securex.errors import ProtocolError
from securex.protocol import DEFAULT_MAX_CLIENTS, ID_BYTES, CloseReason, FrameType

READ_BYTES = 65536
LEAVE_LINGER = 2.0     # how long a leaving member may take to hang up after CLOSE


@dataclass(eq=False)
class BareMember:
    sock: socket.socket
    member_id: bytes
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, frame: bytes) -> None:
        with self.lock, contextlib.suppress(OSError):    # a member that went away just misses it
            self.sock.sendall(frame)


class BareRelay:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, capacity: int = DEFAULT_MAX_CLIENTS) -> None:
        self.listener = socket.create_server((host, port), backlog=64)
        self.capacity = capacity
        self.run_id = os.urandom(ID_BYTES)
        self._lock = threading.Lock()
        self._members: dict[bytes, BareMember] = {}

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def serve_forever(self) -> None:
        while True:
            sock, _ = self.listener.accept()
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        me = BareMember(sock, os.urandom(ID_BYTES))
        decoder = protocol.FrameDecoder()
        try:
            me.send(protocol.encode_welcome(self.capacity, me.member_id, self.run_id))
            while data := sock.recv(READ_BYTES):
                for frame in decoder.feed(data):
                    if frame.type == FrameType.ROUTE:
                        target = self._members.get(frame.payload[:ID_BYTES])
                        if target is not None and target is not me:
                            target.send(protocol.routed_from_route(me.member_id, frame.payload))
                    elif frame.type == FrameType.HELLO:
                        with self._lock:
                            self._members[me.member_id] = me
                            self._send_roster_locked()
                    elif frame.type == FrameType.LEAVE:
                        self._remove(me)
                        self._say_goodbye(me)
                        return
        except (OSError, ProtocolError):
            pass
        finally:
            self._remove(me)
            sock.close()

    def _remove(self, member: BareMember) -> None:
        with self._lock:
            if self._members.get(member.member_id) is member:
                del self._members[member.member_id]
                self._send_roster_locked()

    def _send_roster_locked(self) -> None:
        frame = protocol.encode_roster([protocol.RosterEntry(member_id, True, True) for member_id in self._members])
        for member in self._members.values():
            member.send(frame)

    @staticmethod
    def _say_goodbye(member: BareMember) -> None:
        """CLOSE, then wait for the member to hang up: closing with its bytes unread
        would reset the connection and could lose the CLOSE."""
        member.send(protocol.encode_close(CloseReason.GOODBYE, "Goodbye."))
        with contextlib.suppress(OSError):
            member.sock.shutdown(socket.SHUT_WR)
            member.sock.settimeout(LEAVE_LINGER)
            while member.sock.recv(READ_BYTES):
                pass


def main() -> int:
    relay = BareRelay()
    print(f"Bare relay on 127.0.0.1:{relay.port} (up to {relay.capacity} members)", flush=True)
    relay.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
