"""A stranger flooding the LAN with hostile ``_securex._tcp`` announcements, for the
discovery tests (it runs inside a network namespace):

    python tests/hostile_announcer.py --address 10.233.0.1 --services 2000 --seconds 1.5

Real mDNS response packets, encoded by zeroconf's own DNSOutgoing and multicast to
224.0.0.251:5353 from ``--address``, carrying every kind of garbage a stranger could
announce: names with control characters, bidi overrides and zero-width characters, TXT
records of garbage, invalid UTF-8, huge values, absurd, negative and missing numbers,
repeated keys; ports 0 and 65535; addresses that are loopback, multicast, broadcast or
unspecified, and hundreds of addresses for one room. The whole flood is sent again and
again for ``--seconds``. Prints ``SENT <packets>`` and exits 0.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time

from zeroconf import DNSAddress, DNSOutgoing, DNSPointer, DNSService, DNSText
from zeroconf.const import _CLASS_IN, _FLAGS_AA, _FLAGS_QR_RESPONSE, _TYPE_A, _TYPE_PTR, _TYPE_SRV, _TYPE_TXT

SERVICE_TYPE = "_securex._tcp.local."
TTL = 120


def txt(*strings: bytes) -> bytes:
    """A TXT record's wire form: each string prefixed by its length (at most 255)."""
    return b"".join(bytes([len(s)]) + s for s in strings) or b"\x00"


NAMES = [
    "evil {i} \u202e\x1b[31mred",          # bidi override and a terminal escape
    "zero\u200bwidth {i}\u2028line",         # zero-width space, line separator
    "{i}" + "x" * 55,                        # a label near the 63-byte limit
    "Design team {i}",                       # looks normal
    "\u0000nul {i}\u0007bell",               # NUL and BEL
]

TEXTS = [
    txt(b"v=2", b"room=\xff\xfe\xc3(garbage " + bytes(range(1, 32)), b"taken=-1", b"max=99999999999999999999"),
    txt(b"v=2", b"room=" + b"A" * 250, *[b"junk%d=" % n + b"z" * 240 for n in range(6)]),   # huge
    b"\x00",                                                                                 # empty
    txt(b"=novalue", b"room", b"ROOM=Upper \xe2\x80\xae case", b"taken=3", b"max=2"),        # taken > max
    txt(b"v=2", "room=\u202egnp.exe\u202c Design".encode(), b"taken=1", b"max=5", b"taken=4"),
    txt(b"v=99", b"room=Future room", b"taken=+1", b"max=1e3"),
    txt(b"v=2", b"room=Plain room", b"taken=2", b"max=5"),
    txt(b"v=\xff", b"room=\xed\xa0\x80 surrogate", b"taken=\x00", b"max= 5"),
]

PORTS = [0, 65535, 5050, 70000 % 65536, 1]
BAD_ADDRESSES = ["127.0.0.1", "224.0.0.1", "0.0.0.0", "255.255.255.255"]


def records(i: int, address: str) -> list:
    name = NAMES[i % len(NAMES)].format(i=i)
    instance = f"{name}.{SERVICE_TYPE}"
    host = f"h{i}.local."
    found = [DNSPointer(SERVICE_TYPE, _TYPE_PTR, _CLASS_IN, TTL, instance),
             DNSService(instance, _TYPE_SRV, _CLASS_IN, TTL, 0, 0, PORTS[i % len(PORTS)], host),
             DNSText(instance, _TYPE_TXT, _CLASS_IN, TTL, TEXTS[i % len(TEXTS)])]
    if i % 7 == 0:   # hundreds of addresses for one room
        addresses = [f"10.{(i // 200) % 250}.{n // 250}.{n % 250 + 1}" for n in range(300)]
    elif i % 3 == 0:
        addresses = [BAD_ADDRESSES[i % len(BAD_ADDRESSES)]]
    else:
        addresses = [address, BAD_ADDRESSES[i % len(BAD_ADDRESSES)]]
    found += [DNSAddress(host, _TYPE_A, _CLASS_IN, TTL, socket.inet_aton(a)) for a in addresses]
    return found


def packets(count: int, address: str) -> list[bytes]:
    built: list[bytes] = []
    for start in range(0, count, 20):
        out = DNSOutgoing(_FLAGS_QR_RESPONSE | _FLAGS_AA)
        for i in range(start, min(start + 20, count)):
            for record in records(i, address):
                out.add_answer_at_time(record, 0)
        built += out.packets()
    return built


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=1.5)
    args = parser.parse_args()
    flood = packets(args.services, args.address)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(args.address))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    sent = 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        for packet in flood:
            try:
                sock.sendto(packet, ("224.0.0.251", 5353))
                sent += 1
            except OSError:   # the kernel's buffer is full: a flood loses packets, so be it
                pass
    print(f"SENT {sent}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
