"""Secure X relay server: ``python server.py``.

A blind relay. It hands out the room salt, admits members whose key check
matches, and forwards sealed frames it cannot read. It never holds the
passphrase or a key, and never sees names or text (they travel encrypted).

This file is only the command line: arguments, the address to give out, and
signals. The relay itself lives in ``securex/relay/``.
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
import threading

from netinfo import detect_lan_addresses
from securex.protocol import DEFAULT_MAX_CLIENTS, DEFAULT_PORT
from securex.relay.engine import RelayServer


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Secure X relay server. Forwards encrypted messages it cannot read.")
    parser.add_argument("--host", default="0.0.0.0",
                        help="address to listen on (default: 0.0.0.0, every interface)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"TCP port to listen on; 0 picks a free one (default: {DEFAULT_PORT})")
    parser.add_argument("--max-clients", type=int, default=DEFAULT_MAX_CLIENTS, metavar="N",
                        help=f"most members in the room at once, 1-255 (default: {DEFAULT_MAX_CLIENTS})")
    parser.add_argument("--handshake-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="drop connections that have not joined within this time (default: 10)")
    parser.add_argument("--idle-timeout", type=float, default=20.0, metavar="SECONDS",
                        help="drop members not heard from for this long (default: 20)")
    parser.add_argument("--max-queue-bytes", type=int, default=4 * 1024 * 1024, metavar="BYTES",
                        help="per-member outgoing buffer; a member that falls this far behind "
                             "is disconnected (default: 4 MiB)")
    parser.add_argument("--quiet", action="store_true", help="log only warnings")
    args = parser.parse_args(argv)
    if not 1 <= args.max_clients <= 255:
        parser.error("--max-clients must be between 1 and 255")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    return args


def announce(server: RelayServer, host: str) -> None:
    """Tell the host which address to give out, and the exact client command."""
    port, limit = server.port, server.registry.max_members
    if host in ("0.0.0.0", ""):
        lan = detect_lan_addresses()
        addresses = lan.addresses
        if lan.loopback_only:
            print("Warning: no LAN address found; only this machine can connect.", file=sys.stderr)
    else:
        addresses = [host]
    print(f"Secure X server on {addresses[0]}:{port} (up to {limit} members)")
    for other in addresses[1:]:
        print(f"  also reachable at {other}:{port}")
    print(f"Members join with: python client.py --host {addresses[0]} --port {port}")
    print("Press Ctrl+C to stop.", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        server = RelayServer(args.host, args.port, max_clients=args.max_clients,
                             handshake_timeout=args.handshake_timeout,
                             idle_timeout=args.idle_timeout, max_queue_bytes=args.max_queue_bytes)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            print(f"Error: port {args.port} is already in use (another server running?). "
                  "Pick another with --port.", file=sys.stderr)
        else:
            print(f"Error: cannot listen on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return 1

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                               name="accept", daemon=True)
    serving.start()
    announce(server, args.host)
    while not stop.wait(1.0):
        pass
    print("Shutting down; telling every member.", flush=True)
    server.stop()
    print("Server stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
