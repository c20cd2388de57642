"""Secure X relay server: ``python server.py``.

A blind relay. It gives each connection a random id, tells everyone who is
connected, and forwards the frames members address to each other. Members prove
the passphrase to each other; the relay holds nothing derived from it and never
sees a name or a word (they travel encrypted). The process loads no
cryptography at all.

This file is only the command line: arguments, the address to give out, the
room's announcement on the LAN, and signals. The relay itself lives in
``securex/relay/``; the announcement runs in a child process
(``securex/announcer.py``), because zeroconf brings ssl with it.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading

from netinfo import detect_lan_addresses
from securex.announcer import MEMBER_COMMAND, RoomAnnouncement, not_announced
from securex.discovery import MAX_ROOM_NAME_CHARS, validate_room_name
from securex.protocol import (DEFAULT_MAX_CLIENTS, DEFAULT_PORT, HANDSHAKE_TIMEOUT, MAX_CLIENTS_LIMIT,
                              SERVER_IDLE_TIMEOUT)
from securex.relay.engine import DEFAULT_HIGH_WATER, RelayServer


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Secure X relay server. Forwards encrypted messages it cannot read.")
    parser.add_argument("--host", default="0.0.0.0",
                        help="address to listen on (default: 0.0.0.0, every interface)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"TCP port to listen on; 0 picks a free one (default: {DEFAULT_PORT})")
    parser.add_argument("--max-clients", type=int, default=DEFAULT_MAX_CLIENTS, metavar="N",
                        help=f"most members in the room at once, 1-{MAX_CLIENTS_LIMIT} "
                             f"(default: {DEFAULT_MAX_CLIENTS})")
    parser.add_argument("--handshake-timeout", type=float, default=HANDSHAKE_TIMEOUT, metavar="SECONDS",
                        help="drop connections that have not finished joining within this time "
                             f"(default: {HANDSHAKE_TIMEOUT:g})")
    parser.add_argument("--idle-timeout", type=float, default=SERVER_IDLE_TIMEOUT, metavar="SECONDS",
                        help=f"drop members not heard from for this long (default: {SERVER_IDLE_TIMEOUT:g})")
    parser.add_argument("--max-pending-per-address", type=int, default=3, metavar="N",
                        help="connections one address may have joining at once (default: 3)")
    parser.add_argument("--member-buffer", type=int, default=DEFAULT_HIGH_WATER, metavar="BYTES",
                        help="bytes queued for one member before whoever sends to it is slowed down "
                             f"(default: {DEFAULT_HIGH_WATER // 2**20} MiB)")
    parser.add_argument("--room-name", metavar="NAME", default=None,
                        help="the name members see when they look for rooms on the LAN "
                             "(default: this computer's name)")
    parser.add_argument("--no-announce", action="store_true",
                        help="do not announce the room on the LAN (members then type the address)")
    parser.add_argument("--quiet", action="store_true", help="log only warnings")
    args = parser.parse_args(argv)
    if args.room_name is None:
        args.room_name = default_room_name()
    else:
        try:
            args.room_name = validate_room_name(args.room_name)
        except ValueError as error:
            parser.error(f"--room-name: {error}")
    if not 1 <= args.max_clients <= MAX_CLIENTS_LIMIT:
        parser.error(f"--max-clients must be between 1 and {MAX_CLIENTS_LIMIT}")
    if args.max_pending_per_address < 1:
        parser.error("--max-pending-per-address must be at least 1")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    return args


def default_room_name() -> str:
    """This computer's name (its first label), cut to fit: what members see by default."""
    name = " ".join(socket.gethostname().split(".")[0].split())[:MAX_ROOM_NAME_CHARS]
    try:
        return validate_room_name(name)
    except ValueError:
        return "Secure X room"


def say(line: str) -> None:
    """A line for whoever runs the server. They may have stopped reading: Ctrl+C in
    ``server.py | tee log`` stops ``tee`` too. The server still shuts down cleanly,
    telling every member, without them."""
    try:
        print(line, flush=True)
    except OSError:       # BrokenPipeError: from now on, and at exit, write nowhere
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def announce(server: RelayServer, host: str) -> list[str]:
    """Tell the host which address to give out, and the exact client command; returns
    the addresses given out."""
    port, limit = server.port, server.registry.capacity
    if host in ("0.0.0.0", ""):
        lan = detect_lan_addresses()
        addresses = lan.addresses
        if lan.loopback_only:
            print("Warning: no LAN address found; only this machine can connect.", file=sys.stderr)
    else:
        addresses = [host]
    say(f"Secure X server on {addresses[0]}:{port} (up to {limit} members)")
    for other in addresses[1:]:
        say(f"  also reachable at {other}:{port}")
    say(f"Members join with: {MEMBER_COMMAND} --host {addresses[0]} --port {port} (add --cli for the terminal)")
    say("Press Ctrl+C to stop.")
    return addresses


def announce_room(args: argparse.Namespace, server: RelayServer, addresses: list[str]) -> RoomAnnouncement | None:
    """Announce the room on the LAN from a child process (this one loads no zeroconf,
    which would bring ssl); prints one line saying it is announced, or why not."""
    report = say
    if args.no_announce:
        report("Room not announced on the LAN (--no-announce). Members type the address.")
        return None
    everywhere = server.server_address[0] in ("0.0.0.0", "")
    if not everywhere:   # listening on one address: announce only that one
        addresses = [server.server_address[0]]
    lan = [a for a in addresses if not ipaddress.ip_address(a).is_loopback]
    if not lan:
        report(not_announced("this computer has no LAN address" if everywhere else
                             f"the server listens on {addresses[0]} only, which other computers cannot reach"))
        return None
    return RoomAnnouncement.start(args.room_name, server.port, server.registry.capacity, lan, report=report)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.raiseExceptions = False      # a log line nobody can read any more is no error (see say)
    try:
        server = RelayServer(args.host, args.port, max_clients=args.max_clients,
                             max_pending_per_address=args.max_pending_per_address,
                             handshake_timeout=args.handshake_timeout, idle_timeout=args.idle_timeout,
                             high_water=args.member_buffer)
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
    room = announce_room(args, server, announce(server, args.host))
    while not stop.wait(1.0):
        if room is not None:
            room.set_taken(server.registry.member_count)
    say("Shutting down; telling every member.")
    if room is not None:
        room.withdraw()   # the goodbye on the LAN goes out while the members are told
    server.stop()
    if room is not None:
        room.wait()
    say("Server stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
