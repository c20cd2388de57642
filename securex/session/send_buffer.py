"""What the network thread has yet to write to the relay's socket.

A list of pieces rather than one growing bytearray: a file chunk (half a
megabyte) goes to the socket as it is, with the gather form of send
(``sendmsg``), instead of being copied into a buffer that is itself reallocated
as it grows and shrinks. On loopback those copies, each into freshly mapped
memory, cost the sender more than encrypting the chunk.
"""

from __future__ import annotations

import socket
from collections import deque

from crypto_utils import Bytes

MAX_PIECES_PER_SEND = 64     # well under any system's IOV_MAX (1024 on Linux)
_GATHER = hasattr(socket.socket, "sendmsg")    # not on Windows: one piece per send there


class SendBuffer:
    """Pieces waiting for the socket, oldest first; a piece is sent whole, in order."""

    def __init__(self) -> None:
        self._pieces: deque[memoryview] = deque()
        self._bytes = 0

    def __len__(self) -> int:
        """Bytes not yet sent."""
        return self._bytes

    def extend(self, pieces: list[Bytes]) -> None:
        for piece in pieces:
            if len(piece):
                view = memoryview(piece).cast("B")
                self._pieces.append(view)
                self._bytes += len(view)

    def send_some(self, sock: socket.socket) -> int | None:
        """Send what a non-blocking ``sock`` takes now: the byte count (0 if it takes
        nothing), or None if the connection is broken."""
        if not self._pieces:
            return 0
        try:
            if _GATHER:
                sent = sock.sendmsg([self._pieces[i] for i in range(min(len(self._pieces), MAX_PIECES_PER_SEND))])
            else:
                sent = sock.send(self._pieces[0])
        except BlockingIOError:
            return 0
        except OSError:
            return None
        self._drop(sent)
        return sent

    def _drop(self, sent: int) -> None:
        self._bytes -= sent
        while sent:
            first = self._pieces[0]
            if len(first) <= sent:
                sent -= len(first)
                self._pieces.popleft()
            else:
                self._pieces[0] = first[sent:]
                sent = 0
