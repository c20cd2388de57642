"""Announcing the room on the LAN (mDNS/DNS-SD), from a child process of the relay.

The relay process loads no cryptography at all: it is blind by construction, and a test
lists every module it imports. zeroconf needs asyncio, and asyncio imports ssl. So the
announcement lives in a small child process, ``python -m securex.announcer``, and the
relay talks to it only through pipes::

    relay -> child, stdin     "taken N"                 whenever the number of members changes
    child -> relay, stdout    "announced INSTANCE"      the room is on the LAN under that DNS-SD name
                              "unavailable REASON"      it is not, and why (then the child exits)
                              "withdrawn"               goodbye sent (then the child exits)
                              anything else             zeroconf's warnings: shown as "announcer: ..."

The child withdraws the announcement (goodbye records, RFC 6762 section 10.1) and exits
when its stdin ends, which happens when the relay closes it at shutdown or dies in any
way, and on SIGTERM or SIGINT. ``RoomAnnouncement`` is the relay's side of the pipes;
zeroconf is imported only in the child (``main``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from securex.discovery import SERVICE_TYPE, ZEROCONF_MISSING, encode_txt, multicast_problem, service_name

# How a member starts Secure X after the README's install (no virtual environment to activate).
MEMBER_COMMAND = ".venv/bin/securex"
WITHDRAW_TIMEOUT = 3.0     # the goodbye takes about 0.3 s; a child stuck longer is killed
TTL_SECONDS = 120          # one TTL for every record: a room that vanished without a goodbye
                           # leaves browsers within two minutes, not the usual 75 for a PTR
_LINE_LIMIT = 64           # the relay's lines are short; anything longer is not from it
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent   # so "-m securex.announcer" resolves from any cwd


# -- the relay's side ----------------------------------------------------------------------

class RoomAnnouncement:
    """The relay's handle on the announcing child. ``report`` receives the one line to
    show about the announcement (announced, or why not), from a reader thread."""

    def __init__(self, process: subprocess.Popen, room_name: str, report: Callable[[str], None]) -> None:
        self._process = process
        self._room_name = room_name
        self._report = report
        self._taken = 0               # what the child announces first
        self._withdrawing = False
        self._reader = threading.Thread(target=self._read_child, name="announcer-output", daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, room_name: str, port: int, capacity: int, addresses: Iterable[str], *,
              report: Callable[[str], None]) -> RoomAnnouncement | None:
        """Start announcing ``room_name`` at ``addresses``:``port``; None (and the reason
        reported) if the child cannot even start."""
        command = [sys.executable, "-m", "securex.announcer", "--name", room_name, "--port", str(port),
                   "--capacity", str(capacity)]
        for address in addresses:
            command += ["--address", address]
        try:
            process = subprocess.Popen(command, cwd=_PACKAGE_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace",
                                       bufsize=1)
        except OSError as error:
            report(not_announced(f"the announcer could not start ({error.strerror or error})"))
            return None
        return cls(process, room_name, report)

    def set_taken(self, taken: int) -> None:
        """The number of members now; the child updates the TXT record when it changed."""
        if taken != self._taken and not self._withdrawing:
            self._taken = taken
            try:
                self._process.stdin.write(f"taken {taken}\n")
                self._process.stdin.flush()
            except (OSError, ValueError):   # the child has gone (it said why); the relay carries on
                pass

    def withdraw(self) -> None:
        """Ask the child to withdraw the announcement and exit; returns at once."""
        self._withdrawing = True
        with contextlib.suppress(OSError, ValueError):
            self._process.stdin.close()

    def wait(self, timeout: float = WITHDRAW_TIMEOUT) -> None:
        """Wait for the child to have said goodbye on the LAN; kill it after ``timeout``."""
        self.withdraw()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join(timeout)

    def _read_child(self) -> None:
        state = None   # what the child said about the announcement: "announced" or "unavailable"
        for line in self._process.stdout:
            kind, _, detail = line.rstrip("\n").partition(" ")
            if kind == "announced":
                state = kind
                renamed = f' (as "{detail}": another room has its name)' if detail != self._room_name else ""
                self._report(f'Room "{self._room_name}" announced on the LAN{renamed}; '
                             f"members find it with: {MEMBER_COMMAND} --discover")
            elif kind == "unavailable":
                state = kind
                self._report(not_announced(detail))
            elif kind != "withdrawn":
                print(f"announcer: {line.rstrip()}", file=sys.stderr, flush=True)
        status = self._process.wait()
        if self._withdrawing or state == "unavailable":
            return
        if state == "announced":
            self._report(f"The room is no longer announced on the LAN: the announcer stopped (status {status}).")
        else:
            self._report(not_announced(f"the announcer stopped (status {status})"))


def not_announced(reason: str) -> str:
    return f"Room not announced on the LAN: {reason}. Members type the address instead."


# -- the child -----------------------------------------------------------------------------

class Announcement:
    """One registered service (child process only). Thread-safe."""

    def __init__(self, room_name: str, port: int, capacity: int, addresses: list[str]) -> None:
        from zeroconf import IPVersion, ServiceInfo, Zeroconf

        self._service_info = ServiceInfo
        self._room_name, self._port, self._capacity, self._addresses = room_name, port, capacity, addresses
        # A name of our own for the SRV target: reusing the computer's "host.local" would
        # fight an Avahi or Bonjour daemon that already answers for it.
        self._host = f"securex-{os.urandom(4).hex()}.local."
        self._lock = threading.Lock()
        self._zeroconf = Zeroconf(interfaces=addresses, ip_version=IPVersion.V4Only)
        self._info = self._make_info(service_name(room_name), 0)

    def _make_info(self, name: str, taken: int):
        return self._service_info(SERVICE_TYPE, name, port=self._port,
                                  properties=encode_txt(self._room_name, taken, self._capacity),
                                  server=self._host, addresses=[socket.inet_aton(a) for a in self._addresses],
                                  host_ttl=TTL_SECONDS, other_ttl=TTL_SECONDS)

    @property
    def instance(self) -> str:
        """The DNS-SD instance name, after any renaming a name clash caused."""
        return self._info.name[:-len(SERVICE_TYPE) - 1]

    def register(self) -> None:
        with self._lock:
            self._zeroconf.register_service(self._info, allow_name_change=True)

    def update(self, taken: int) -> None:
        with self._lock:
            self._info = self._make_info(self._info.name, taken)
            self._zeroconf.update_service(self._info)

    def withdraw(self) -> None:
        with self._lock:
            try:
                self._zeroconf.unregister_service(self._info)
            finally:
                self._zeroconf.close()


def _say(*words: str) -> None:
    """One line to the relay. Unbuffered, and harmless if the relay is gone."""
    with contextlib.suppress(OSError):
        os.write(sys.stdout.fileno(), (" ".join(words).replace("\n", " ") + "\n").encode("utf-8", "replace"))


def _follow_relay(announcement: Announcement, stop: threading.Event) -> None:
    """Apply the relay's member counts until its end of the pipe closes, then stop."""
    try:
        for line in iter(lambda: sys.stdin.readline(_LINE_LIMIT), ""):
            kind, _, value = line.strip().partition(" ")
            if kind == "taken" and value.isdigit() and not stop.is_set():
                try:
                    announcement.update(int(value))
                except Exception as error:   # zeroconf busy or its loop gone: the next count will do
                    logging.warning("could not update the announcement: %s", error)
    finally:
        stop.set()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m securex.announcer",
                                     description="Announce a Secure X room on the LAN (started by the server).")
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--capacity", type=int, required=True)
    parser.add_argument("--address", action="append", required=True, help="an IPv4 address to announce (repeat)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):   # Ctrl+C reaches the whole process group
        signal.signal(signum, lambda *_: stop.set())
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        import zeroconf
    except ImportError:
        _say("unavailable", ZEROCONF_MISSING)
        return 0
    try:
        announcement = Announcement(args.name, args.port, args.capacity, args.address)
    except (OSError, ValueError) as error:
        _say("unavailable", f"multicast does not work here ({multicast_problem(error)})")
        return 0
    try:
        announcement.register()
    except (OSError, zeroconf.Error) as error:
        _say("unavailable", f"the announcement failed ({error or type(error).__name__})")
        with contextlib.suppress(Exception):
            announcement.withdraw()
        return 0
    _say("announced", announcement.instance)
    threading.Thread(target=_follow_relay, args=(announcement, stop), name="relay-input", daemon=True).start()
    while not stop.wait(0.5):   # a timed wait, so a signal is acted on at once
        pass
    try:
        announcement.withdraw()
    except Exception as error:   # the goodbye is best effort: browsers forget the room after the TTL anyway
        logging.warning("could not withdraw the announcement: %s", error)
    _say("withdrawn")
    return 0


if __name__ == "__main__":
    sys.exit(main())
