"""netinfo: the LAN address shown to people, from injected sources and on this machine.

The original app printed 127.0.1.1 on Debian (``gethostbyname(gethostname())``);
these tests pin that a LAN address always wins over loopback."""

from __future__ import annotations

import ipaddress
import types

import pytest

import netinfo
from netinfo import LanAddresses, detect_lan_addresses


def detect(probe: str | None, interfaces: list[str]) -> LanAddresses:
    return detect_lan_addresses(probe=lambda: probe, interfaces=lambda: list(interfaces))


def is_ipv4(text: object) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


# -- injected sources -------------------------------------------------------

def test_debian_hostname_loopback_never_wins_over_the_lan_address():
    found = detect("192.168.1.23", ["127.0.0.1", "127.0.1.1", "192.168.1.23"])
    assert found == LanAddresses(["192.168.1.23"], loopback_only=False)
    assert found.primary == "192.168.1.23"


def test_loopback_from_the_probe_is_ignored():
    found = detect("127.0.1.1", ["127.0.0.1", "10.1.2.3"])
    assert found.addresses == ["10.1.2.3"] and not found.loopback_only


def test_no_default_route_uses_the_interface_address():
    found = detect(None, ["127.0.0.1", "10.0.0.5"])
    assert found == LanAddresses(["10.0.0.5"], loopback_only=False)


def test_several_interfaces_are_all_listed_probe_first_link_local_last():
    found = detect("192.168.1.23", ["127.0.0.1", "169.254.3.4", "10.8.0.2", "192.168.1.23", "172.17.0.1"])
    assert found.addresses == ["192.168.1.23", "10.8.0.2", "172.17.0.1", "169.254.3.4"]
    assert found.primary == "192.168.1.23"
    assert not found.loopback_only


def test_duplicates_are_listed_once():
    found = detect("10.0.0.5", ["10.0.0.5", "10.0.0.5", "192.168.0.9", "192.168.0.9"])
    assert found.addresses == ["10.0.0.5", "192.168.0.9"]


def test_link_local_probe_answer_goes_after_a_routable_interface():
    found = detect("169.254.10.10", ["192.168.0.9"])
    assert found.addresses == ["192.168.0.9", "169.254.10.10"]


def test_only_link_local_is_still_a_lan_address():
    found = detect(None, ["127.0.0.1", "169.254.10.10"])
    assert found == LanAddresses(["169.254.10.10"], loopback_only=False)


@pytest.mark.parametrize("probe, interfaces", [
    (None, ["127.0.0.1"]),
    (None, []),
    ("127.0.0.1", ["127.0.0.1", "127.0.1.1"]),
    ("0.0.0.0", ["127.0.0.1"]),
    (None, ["224.0.0.251"]),  # multicast is not an address anyone can connect to
], ids=["loopback", "nothing", "debian-loopbacks", "unspecified", "multicast"])
def test_nothing_but_loopback_gives_127_0_0_1_and_says_so(probe, interfaces):
    found = detect(probe, interfaces)
    assert found == LanAddresses(["127.0.0.1"], loopback_only=True)
    assert found.primary == "127.0.0.1"


def test_interfaces_may_be_any_iterable():
    found = detect_lan_addresses(probe=lambda: None, interfaces=lambda: iter(("10.0.0.5",)))
    assert found.addresses == ["10.0.0.5"]


def test_each_source_is_asked_once():
    calls = {"probe": 0, "interfaces": 0}

    def probe() -> str:
        calls["probe"] += 1
        return "10.0.0.5"

    def interfaces() -> list[str]:
        calls["interfaces"] += 1
        return ["10.0.0.6"]

    assert detect_lan_addresses(probe, interfaces).addresses == ["10.0.0.5", "10.0.0.6"]
    assert calls == {"probe": 1, "interfaces": 1}


# -- on this machine ---------------------------------------------------------

def test_route_probe_on_this_machine_gives_an_ipv4_address_or_none():
    address = netinfo.route_probe_address()
    assert address is None or is_ipv4(address)


def test_route_probe_gives_none_when_connect_fails(monkeypatch):
    # A real UDP connect() to the broadcast address without SO_BROADCAST fails
    # (EACCES on Linux): the probe must say "no route", not raise.
    monkeypatch.setattr(netinfo, "_PROBE_TARGET", ("255.255.255.255", 9))
    assert netinfo.route_probe_address() is None


def test_interface_addresses_on_this_machine_are_ipv4():
    addresses = netinfo.interface_addresses()
    assert isinstance(addresses, list)
    assert all(is_ipv4(a) for a in addresses)


def test_resolver_fallback_off_linux_gives_ipv4_addresses(monkeypatch):
    monkeypatch.setattr(netinfo, "sys", types.SimpleNamespace(platform="darwin"))
    addresses = netinfo.interface_addresses()
    assert isinstance(addresses, list)
    assert all(is_ipv4(a) for a in addresses)


def test_detect_on_this_machine_shows_no_loopback_unless_nothing_else():
    found = detect_lan_addresses()
    assert found.addresses and all(is_ipv4(a) for a in found.addresses)
    assert len(found.addresses) == len(set(found.addresses))
    if found.loopback_only:
        assert found.addresses == ["127.0.0.1"]
    else:
        assert not any(a.startswith("127.") for a in found.addresses)


def test_detect_on_this_machine_lists_every_interface_address():
    found = detect_lan_addresses()
    lan = [a for a in netinfo.interface_addresses() if not ipaddress.IPv4Address(a).is_loopback]
    assert set(lan) <= set(found.addresses)
    if lan:
        assert not found.loopback_only
