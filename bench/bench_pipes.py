"""The reply protocol between the benchmark and its member processes: each reply is
``(kind, value)``, with ``("error", text)`` for a failure in the member."""

from __future__ import annotations

from multiprocessing.connection import Connection


def unpack_reply(pipe: Connection, expected: str, who: str, error: type[Exception]):
    """The value of the next reply on ``pipe`` (already known to be waiting), which
    must be of kind ``expected``; anything else raises ``error`` saying why."""
    try:
        kind, value = pipe.recv()
    except EOFError:
        raise error(f"{who}'s process ended before {expected!r}") from None
    if kind == "error":
        raise error(value)
    if kind != expected:
        raise error(f"{who} said {kind!r}, expected {expected!r}")
    return value
