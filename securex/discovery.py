"""Finding Secure X rooms on the local network with mDNS/DNS-SD (what Bonjour and Avahi speak).

A server announces its room as a ``_securex._tcp.local.`` service (``securex/announcer.py``,
in a child process of the relay). This module holds what both sides share, the service
type and the TXT record, and the client's side: ``RoomBrowser`` watches the network in
threads of its own and reports every change; ``discover()`` is the one-shot look behind
``securex --discover``.

The TXT record (RFC 6763 section 6: strings of ``key=value``, each at most 255 bytes)::

    txtvers=1     the layout of this record
    v=2           the relay protocol version (securex/protocol.py)
    room=NAME     the room's name, UTF-8, at most MAX_ROOM_NAME_CHARS characters
    taken=N       members in the room now, 0..max
    max=M         places in the room, 1..MAX_CLIENTS_LIMIT

Discovery is a hint, never trust: anyone on the LAN can announce anything. Every
announcement is hostile input here. Values are capped before they are decoded, names
are made safe to show and cut, numbers out of range become "unknown", addresses must be
plausible IPv4 unicast, and at most MAX_ROOMS rooms are kept (further names are not even
resolved). Joining still needs the passphrase, which members prove to each other, so a
fake room learns nothing from being picked.

``zeroconf`` is imported only when browsing starts: a Python without it, or a machine
where multicast is blocked, loses discovery and nothing else. The browser then reports
``DiscoveryUnavailable`` once, with the reason, and people type the address instead.
"""

from __future__ import annotations

import contextlib
import enum
import ipaddress
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from netinfo import detect_lan_addresses
from securex.errors import SecureXError
from securex.protocol import MAX_CLIENTS_LIMIT, PROTOCOL_VERSION
from securex.text import display_safe

log = logging.getLogger(__name__)

SERVICE_TYPE = "_securex._tcp.local."
TXT_VERSION = 1
MAX_ROOM_NAME_CHARS = 40          # what a server may announce, and what a client shows at most
MAX_ROOMS = 64                    # rooms a client keeps; announcements beyond are ignored
MAX_ADDRESSES = 8                 # addresses kept per room
MAX_TXT_ENTRIES = 32              # TXT strings looked at per announcement
MAX_INSTANCE_BYTES = 50           # a DNS label holds 63; room for zeroconf's "-2" on a name clash
DISCOVER_SECONDS = 3.0            # how long --discover listens: answers come within about a second
EVENT_QUEUE_SIZE = 256            # a browser's events waiting for a consumer (oldest go first)
RESOLVE_TIMEOUT_MS = 1500         # asking for a service's details when the announcement lacked them
STOP_TIMEOUT = 3.0                # closing the multicast sockets takes well under this
ZEROCONF_MISSING = ("the zeroconf package is not installed (install Secure X with its dependencies, "
                    "or run: pip install zeroconf)")
UNNAMED_ROOM = "(unnamed room)"

# Raw bytes looked at before decoding: a UTF-8 character is at most 4 bytes.
_MAX_NAME_BYTES = 4 * MAX_ROOM_NAME_CHARS
_MAX_NUMBER_CHARS = 3


class DiscoveryUnavailableError(SecureXError):
    """Room discovery does not work on this computer. Type the server's address instead."""


# -- the TXT record ----------------------------------------------------------------------

def encode_txt(room_name: str, taken: int, capacity: int) -> dict[str, str]:
    """The TXT record a server announces (zeroconf encodes the strings)."""
    return {"txtvers": str(TXT_VERSION), "v": str(PROTOCOL_VERSION), "room": room_name,
            "taken": str(taken), "max": str(capacity)}


@dataclass(frozen=True)
class RoomText:
    """What a TXT record says, cleaned: None for anything missing or implausible."""
    version: int | None
    name: str | None
    taken: int | None
    capacity: int | None


def decode_txt(properties: Mapping | None) -> RoomText:
    """Read an announcement's TXT record (zeroconf's ``{bytes: bytes | None}``) without ever
    failing: keys are case-insensitive, the first of a repeated key wins (RFC 6763 6.4),
    values of the wrong type or shape are ignored, and only MAX_TXT_ENTRIES are looked at."""
    fields: dict[bytes, bytes] = {}
    items = properties.items() if isinstance(properties, Mapping) else ()
    for key, value in itertools.islice(items, MAX_TXT_ENTRIES):
        key, value = _as_bytes(key), _as_bytes(value)
        if key is not None and value is not None:
            fields.setdefault(key[:16].lower(), value)
    capacity = _small_number(fields.get(b"max"), 1, MAX_CLIENTS_LIMIT)
    taken = _small_number(fields.get(b"taken"), 0, capacity if capacity is not None else MAX_CLIENTS_LIMIT)
    raw_name = fields.get(b"room")
    return RoomText(version=_small_number(fields.get(b"v"), 0, 255),
                    name=clean_room_name(raw_name) if raw_name else None,
                    taken=taken if capacity is not None else None, capacity=capacity)


def _as_bytes(value: object) -> bytes | None:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value[:_MAX_NAME_BYTES].encode("utf-8", "replace")
    return None


def _small_number(raw: bytes | None, lowest: int, highest: int) -> int | None:
    """A plain decimal in [lowest, highest]; anything else (signs, spaces, 10**100) is None."""
    if raw is None or not 1 <= len(raw) <= _MAX_NUMBER_CHARS or not raw.isdigit():
        return None
    number = int(raw)
    return number if lowest <= number <= highest else None


def clean_room_name(raw: bytes | str) -> str:
    """A room name from the network, safe for one line: undecodable bytes, controls and
    bidi overrides become U+FFFD, runs of spaces one space, and it is cut to
    MAX_ROOM_NAME_CHARS (with an ellipsis). Never empty."""
    if isinstance(raw, bytes):
        raw = raw[:_MAX_NAME_BYTES].decode("utf-8", "replace")
    text = " ".join(display_safe(raw[:_MAX_NAME_BYTES], keep_newlines=False).split())
    if len(text) > MAX_ROOM_NAME_CHARS:
        text = text[:MAX_ROOM_NAME_CHARS - 1].rstrip() + "\u2026"
    return text or UNNAMED_ROOM


def validate_room_name(name: str) -> str:
    """The room name a server may announce, or ValueError saying what is wrong with it."""
    name = " ".join(name.split())
    if not name:
        raise ValueError("the room name is empty")
    if len(name) > MAX_ROOM_NAME_CHARS:
        raise ValueError(f"keep the room name to {MAX_ROOM_NAME_CHARS} characters")
    if display_safe(name, keep_newlines=False) != name or "\ufffd" in name:
        raise ValueError("the room name cannot contain control or formatting characters")
    return name


def service_name(room_name: str) -> str:
    """The DNS-SD instance name for a room: its name as one DNS label. Dots would split
    the label (browsers then reject the whole name), so they become hyphens; the label is
    cut to MAX_INSTANCE_BYTES of UTF-8 at a character boundary."""
    label = clean_room_name(room_name).replace(".", "-")
    label = label.encode("utf-8")[:MAX_INSTANCE_BYTES].decode("utf-8", "ignore").strip() or "Secure X room"
    return f"{label}.{SERVICE_TYPE}"


# -- rooms -------------------------------------------------------------------------------

@dataclass(frozen=True)
class AnnouncedService:
    """A resolved announcement, as it came from the network (nothing checked yet)."""
    name: str
    port: object
    addresses: Iterable
    properties: Mapping | None


@dataclass(frozen=True)
class Room:
    """A room some server announced. ``key`` identifies the announcement; ``name`` is
    safe to show; ``addresses`` are IPv4, the most likely reachable first."""
    key: str
    name: str
    addresses: tuple[str, ...]
    port: int
    taken: int | None
    capacity: int | None
    version: int | None

    @property
    def address(self) -> str:
        return self.addresses[0]

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def places(self) -> str:
        if self.version is not None and self.version != PROTOCOL_VERSION:
            return f"protocol version {self.version}: needs another Secure X version"
        if self.taken is None or self.capacity is None:
            return "places unknown"
        return f"{self.taken}/{self.capacity} places taken"

    @property
    def places_short(self) -> str:
        """The places for a narrow column: "2/5", "?" or the other protocol version."""
        if self.version is not None and self.version != PROTOCOL_VERSION:
            return f"version {self.version}"
        return "?" if self.taken is None or self.capacity is None else f"{self.taken}/{self.capacity}"

    def describe(self) -> str:
        """One line for ``--discover``: name, address:port, places (two spaces apart;
        a cleaned name never holds two spaces in a row)."""
        return f"{self.name}  {self.endpoint}  {self.places}"


def room_from_service(service: AnnouncedService, local_networks: Iterable = ()) -> Room | None:
    """The room an announcement describes, or None if it cannot be joined (no plausible
    address or port). Never raises, whatever the announcement holds."""
    port = service.port
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        return None
    addresses = order_addresses(plausible_addresses(service.addresses), local_networks)
    if not addresses:
        return None
    text = decode_txt(service.properties)
    instance = str(service.name)[:255]
    if instance.lower().endswith("." + SERVICE_TYPE):
        instance = instance[:-len(SERVICE_TYPE) - 1]
    return Room(key=room_key(service.name), name=text.name or clean_room_name(instance),
                addresses=tuple(addresses), port=port, taken=text.taken, capacity=text.capacity,
                version=text.version)


def room_key(service_name: object) -> str:
    """What identifies an announcement: its DNS name, which DNS compares without case."""
    return str(service_name)[:255].lower()


def plausible_addresses(candidates: Iterable) -> list[str]:
    """IPv4 unicast addresses another machine could be at, each once, at most MAX_ADDRESSES
    (of the first 4 * MAX_ADDRESSES offered): no loopback, multicast, broadcast or 0.0.0.0."""
    found: list[str] = []
    try:
        offered = itertools.islice(candidates, 4 * MAX_ADDRESSES)
    except TypeError:   # not even a list
        return found
    for candidate in offered:
        try:
            ip = ipaddress.IPv4Address(candidate if isinstance(candidate, (str, bytes)) else "")
        except ValueError:
            continue
        if not (ip.is_loopback or ip.is_multicast or ip.is_unspecified or ip.is_reserved) and str(ip) not in found:
            found.append(str(ip))
            if len(found) == MAX_ADDRESSES:
                break
    return found


def order_addresses(addresses: list[str], local_networks: Iterable) -> list[str]:
    """Addresses on one of this computer's own networks first (a multi-homed server lists
    all of its own), link-local ones last; otherwise as announced."""
    networks = list(local_networks)

    def rank(address: str) -> tuple[bool, bool]:
        ip = ipaddress.IPv4Address(address)
        return not any(ip in network for network in networks), ip.is_link_local

    return sorted(addresses, key=rank)


def local_networks() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks this computer is on (from ``ifaddr``, which zeroconf brings);
    empty when unknown, which only affects the order of a room's addresses."""
    try:
        import ifaddr
    except ImportError:
        return []
    networks = []
    try:
        for adapter in ifaddr.get_adapters():
            for ip in adapter.ips:
                if isinstance(ip.ip, str) and not ip.ip.startswith("127."):
                    networks.append(ipaddress.IPv4Network(f"{ip.ip}/{ip.network_prefix}", strict=False))
    except (OSError, ValueError):
        return []
    return networks


# -- what a browser reports ---------------------------------------------------------------

class Change(enum.Enum):
    FOUND = "found"
    UPDATED = "updated"
    LOST = "lost"


@dataclass(frozen=True)
class RoomsChanged:
    """One room appeared, changed or went; ``rooms`` is every room known now (sorted by
    name), so a consumer that missed earlier events is still right."""
    change: Change
    room: Room
    rooms: tuple[Room, ...]
    full: bool = False        # MAX_ROOMS reached: further rooms are being ignored


@dataclass(frozen=True)
class DiscoveryUnavailable:
    """Discovery cannot run here; ``reason`` says why, in words for a person."""
    reason: str


DiscoveryEvent = RoomsChanged | DiscoveryUnavailable


class RoomTable:
    """The rooms known, at most ``max_rooms``: the browser's logic without the network.
    Thread-safe; each method returns the event to report, or None when nothing changed."""

    def __init__(self, max_rooms: int = MAX_ROOMS, networks: Iterable = ()) -> None:
        self.max_rooms = max_rooms
        self._networks = list(networks)
        self._rooms: dict[str, Room] = {}
        self._lock = threading.Lock()

    def set_networks(self, networks: Iterable) -> None:
        """This computer's networks, to put each room's nearest address first."""
        self._networks = list(networks)

    def wants(self, name: str) -> bool:
        """Worth resolving: a room already known, or there is space for a new one."""
        with self._lock:
            return room_key(name) in self._rooms or len(self._rooms) < self.max_rooms

    def update(self, service: AnnouncedService) -> RoomsChanged | None:
        room = room_from_service(service, self._networks)
        if room is None:   # no longer joinable: as good as gone
            return self.remove(service.name)
        with self._lock:
            before = self._rooms.get(room.key)
            if before == room or (before is None and len(self._rooms) >= self.max_rooms):
                return None
            self._rooms[room.key] = room
            return self._event_locked(Change.UPDATED if before else Change.FOUND, room)

    def remove(self, name: str) -> RoomsChanged | None:
        with self._lock:
            room = self._rooms.pop(room_key(name), None)
            return None if room is None else self._event_locked(Change.LOST, room)

    def rooms(self) -> tuple[Room, ...]:
        with self._lock:
            return self._sorted_locked()

    def _sorted_locked(self) -> tuple[Room, ...]:
        return tuple(sorted(self._rooms.values(), key=lambda r: (r.name.casefold(), r.endpoint, r.key)))

    def _event_locked(self, change: Change, room: Room) -> RoomsChanged:
        return RoomsChanged(change, room, self._sorted_locked(), full=len(self._rooms) >= self.max_rooms)


def queue_sink(events: queue.Queue) -> Callable[[DiscoveryEvent], None]:
    """A browser callback that puts events on a bounded queue and never blocks: when the
    queue is full the oldest event goes. Each RoomsChanged carries the whole list, so the
    newest one is always enough."""
    lock = threading.Lock()

    def put(event: DiscoveryEvent) -> None:
        with lock:
            for _ in range(2):
                try:
                    events.put_nowait(event)
                    return
                except queue.Full:
                    with contextlib.suppress(queue.Empty):   # the consumer took one meanwhile
                        events.get_nowait()

    return put


# -- the browser ---------------------------------------------------------------------------

class RoomBrowser:
    """Watches the LAN for rooms and reports each change to ``on_event``.

    ``start()`` returns at once: zeroconf is imported and its sockets opened in a thread
    of the browser's own, and zeroconf's ServiceBrowser thread resolves announcements. So
    ``on_event`` is always called from one of those threads, never the caller's, and must
    not block for long (``queue_sink`` does not). It receives a RoomsChanged after every
    change, or once a DiscoveryUnavailable if discovery cannot run here. ``stop()`` closes
    the sockets (within about STOP_TIMEOUT) and ends the reports (one already being
    delivered may still arrive); it is idempotent. ``interfaces`` are the IPv4 addresses to browse on (default: every
    LAN address of this computer)."""

    def __init__(self, on_event: Callable[[DiscoveryEvent], None], *, interfaces: list[str] | None = None,
                 max_rooms: int = MAX_ROOMS) -> None:
        self._on_event = on_event
        self._interfaces = interfaces
        self._table = RoomTable(max_rooms)
        self._lock = threading.Lock()
        self._stopped = False
        self._zeroconf = None
        self._browser = None
        self._opener: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            if self._opener is None and not self._stopped:
                self._opener = threading.Thread(target=self._open, name="room-browser", daemon=True)
                self._opener.start()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            opener = self._opener
        if opener is not None and opener is not threading.current_thread():
            opener.join(STOP_TIMEOUT)   # opening takes milliseconds; never wait for ever
        with self._lock:
            zc, browser, self._zeroconf, self._browser = self._zeroconf, self._browser, None, None
        if browser is not None:
            browser.cancel()
        if zc is not None:
            with contextlib.suppress(OSError, RuntimeError):   # its loop already gone: nothing to free
                zc.close()

    def rooms(self) -> tuple[Room, ...]:
        return self._table.rooms()

    def _report(self, event: DiscoveryEvent | None) -> None:
        if event is not None and not self._stopped:
            self._on_event(event)

    def _open(self) -> None:
        try:
            from zeroconf import IPVersion, ServiceBrowser, Zeroconf
        except ImportError:
            self._report(DiscoveryUnavailable(ZEROCONF_MISSING))
            return
        interfaces = self._interfaces if self._interfaces is not None else lan_interfaces()
        if not interfaces:
            self._report(DiscoveryUnavailable("this computer has no LAN address"))
            return
        self._table.set_networks(local_networks())
        try:
            zc = Zeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
        except (OSError, ValueError) as error:
            self._report(DiscoveryUnavailable(f"multicast does not work here ({multicast_problem(error)})"))
            return
        with self._lock:
            if not self._stopped:
                self._zeroconf = zc
                try:
                    self._browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[self._on_service_state_change])
                    return
                except RuntimeError as error:   # zeroconf's own thread did not start
                    self._zeroconf = None
                    self._report(DiscoveryUnavailable(f"cannot browse the network ({error})"))
        zc.close()

    def _on_service_state_change(self, zeroconf, service_type: str, name: str, state_change) -> None:
        """zeroconf's ServiceBrowser thread. An exception here would end that thread and
        with it discovery, and a hostile announcement can make zeroconf raise almost
        anything, so every failure just skips the announcement."""
        try:
            if self._stopped:
                return
            if state_change.name == "Removed":
                self._report(self._table.remove(name))
                return
            if not self._table.wants(name):   # full: spend no queries on the thousandth fake room
                return
            # From the cache when the announcement brought its records (the usual case),
            # else by asking, for at most RESOLVE_TIMEOUT_MS.
            info = zeroconf.get_service_info(service_type, name, timeout=RESOLVE_TIMEOUT_MS)
            if info is not None:
                service = AnnouncedService(name, info.port, info.parsed_addresses(), info.properties)
                self._report(self._table.update(service))
        except Exception:
            log.debug("skipped the announcement %r", name, exc_info=True)


def multicast_problem(error: OSError | ValueError) -> str:
    """Why zeroconf could not open its sockets, in a few words."""
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def lan_interfaces() -> list[str]:
    """The IPv4 addresses to send and receive mDNS on: every LAN address, never loopback.
    Naming them (rather than "any") keeps discovery working without a default route."""
    lan = detect_lan_addresses()
    return [] if lan.loopback_only else list(lan.addresses)


def discover(timeout: float = DISCOVER_SECONDS, *, interfaces: list[str] | None = None) -> list[Room]:
    """Listen for ``timeout`` seconds; the rooms found, sorted by name. Raises
    DiscoveryUnavailableError (saying why) if discovery cannot run here."""
    events: queue.Queue[DiscoveryEvent] = queue.Queue(maxsize=EVENT_QUEUE_SIZE)
    browser = RoomBrowser(queue_sink(events), interfaces=interfaces)
    browser.start()
    deadline = time.monotonic() + timeout
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                event = events.get(timeout=remaining)
            except queue.Empty:
                break
            if isinstance(event, DiscoveryUnavailable):
                raise DiscoveryUnavailableError(event.reason)
        return list(browser.rooms())
    finally:
        browser.stop()
