"""Which address should other machines on the LAN use to reach this one?

The original app used ``gethostbyname(gethostname())``, which gives 127.0.1.1
on Debian. Here we combine two sources:

* the route probe: ``connect()`` on a UDP socket picks the outgoing interface
  without sending a packet; ``getsockname()`` then names its address. It fails
  when there is no default route, which is fine: it only chooses the order.
* every IPv4 address of every interface that is up (Linux ``SIOCGIFADDR``),
  so a machine with several interfaces lists all of them, with or without a
  default route.

Loopback is returned only when nothing else exists, and the caller is told so.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# Any routable address works; nothing is sent to it. TEST-NET-1 (RFC 5737).
_PROBE_TARGET = ("192.0.2.1", 9)
_SIOCGIFADDR = 0x8915


def route_probe_address() -> str | None:
    """The source address of the default route, or None without one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(_PROBE_TARGET)
            return probe.getsockname()[0]
    except OSError:   # no default route, or no IPv4 at all
        return None


def interface_addresses() -> list[str]:
    """The IPv4 address of each network interface (Linux); empty elsewhere."""
    if not sys.platform.startswith("linux"):
        return _resolver_addresses()
    import fcntl

    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                reply = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, request)
            except OSError:  # interface down or without an IPv4 address
                continue
            found.append(socket.inet_ntoa(reply[20:24]))
    return found


def _resolver_addresses() -> list[str]:
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return []
    return [info[4][0] for info in infos]


@dataclass(frozen=True)
class LanAddresses:
    """What to tell people. ``loopback_only`` means no other machine can connect."""

    addresses: list[str]
    loopback_only: bool

    @property
    def primary(self) -> str:
        return self.addresses[0]


def _usable(address: str | None) -> bool:
    if not address:
        return False
    ip = ipaddress.ip_address(address)
    return not (ip.is_loopback or ip.is_unspecified or ip.is_multicast)


def detect_lan_addresses(
    probe: Callable[[], str | None] = route_probe_address,
    interfaces: Callable[[], Iterable[str]] = interface_addresses,
) -> LanAddresses:
    """Every non-loopback IPv4 address of this machine, the default route's first,
    link-local (169.254.x) ones last; ``127.0.0.1`` only if there is nothing else."""
    candidates = [probe(), *interfaces()]
    found: list[str] = []
    for address in candidates:
        if _usable(address) and address not in found:
            found.append(address)
    found.sort(key=lambda a: ipaddress.ip_address(a).is_link_local)  # stable: probe stays first
    if found:
        return LanAddresses(found, loopback_only=False)
    return LanAddresses(["127.0.0.1"], loopback_only=True)
