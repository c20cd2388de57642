"""A server address as people write it: ``HOST``, ``HOST:PORT``, ``[IPv6]:PORT``."""

from __future__ import annotations


def split_host_port(text: str) -> tuple[str, int | None]:
    """The host, and the port if the text carries one (``--discover`` prints rooms as
    ``192.168.1.23:5050``, so that is what people paste). A bare IPv6 address (more
    than one colon, no brackets) is all host. Raises ValueError for a bad port."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else rest
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not port:
        return host, None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{port!r} in {text!r} is not a port: a port is a number from 1 to 65535.")
    return host, int(port)
