"""Two hosts on a LAN, for real: two network namespaces joined by veth pairs with
private addresses and no default route. The server runs on one host and prints its
LAN address; terminal clients on the other host reach it there, verify each other
(the version 2 join: a passphrase proof between every two members) and chat.

Needs root and iproute2 (CI has both); skipped otherwise (a failure under CI=true).
Only addresses inside the namespaces these tests create are used, and the namespaces,
with everything started in them, are deleted when each test ends, however it ends
(``helpers.netns_lan``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from helpers import PASSPHRASE, NetnsLan, Process, netns_lan, python_env, run_ip
from securex.errors import EXIT_UNREACHABLE

SERVER_ADDRESS, CLIENT_ADDRESS = "10.231.0.1", "10.231.0.2"
SECOND_SERVER_ADDRESS, SECOND_CLIENT_ADDRESS = "10.232.0.1", "10.232.0.2"
LINE = r"^\[\d\d:\d\d:\d\d\] "
CODE = r"([A-Z2-7]{4}(?: [A-Z2-7]{4}){3})"      # a safety code as the terminal prints it


@pytest.fixture
def lan() -> Iterator[NetnsLan]:
    with netns_lan("server", "client") as hosts:
        yield hosts


def start_server(lan: NetnsLan) -> tuple[Process, int, list[str]]:
    """``python server.py --port 0`` on the server host, listening on every interface:
    the process, its port and the addresses it gave out (the first one first)."""
    server = lan.run("server", "server.py", "--port", "0")
    server.expect(r"^Press Ctrl\+C to stop\.$")      # the address lines come before it
    first = server.expect(r"^Secure X server on ([\d.]+):(\d+) \(up to 5 members\)$")
    port = int(first.group(2))
    others = [m.group(1) for line in server.lines if (m := re.search(rf"^  also reachable at ([\d.]+):{port}$", line))]
    return server, port, [first.group(1), *others]


def start_client(lan: NetnsLan, name: str, address: str, port: int, host: str = "client") -> Process:
    """``python client.py --cli`` on the client host (or another)."""
    return lan.run(host, "client.py", "--cli", "--host", address, "--port", str(port), "--name", name,
                   env=python_env(SECUREX_PASSPHRASE=PASSPHRASE))


def joined(client: Process, address: str, port: int) -> str:
    """Wait until the client is in the room at that address; its own safety code."""
    return client.expect(LINE + rf"\* Joined the room at {re.escape(address)}:{port} \(AES-256-GCM\)\. "
                         rf"Your safety code: {CODE}").group(1)


def quit_cleanly(*clients: Process) -> None:
    for client in clients:
        client.send_line("<quit>")
        assert client.wait() == 0, client.output
        assert "Traceback" not in client.output


def test_clients_on_another_host_reach_the_server_at_its_lan_address_and_verify_each_other(lan):
    lan.connect("sx0", "server", SERVER_ADDRESS, "client", CLIENT_ADDRESS)
    for host in lan.hosts.values():
        assert run_ip("-n", host, "route", "show", "default").strip() == "", "a default route crept in"

    server, port, addresses = start_server(lan)
    assert addresses == [SERVER_ADDRESS]
    server.expect(rf"^Members join with: \.venv/bin/securex --host {re.escape(SERVER_ADDRESS)} --port {port} "
                  r"\(add --cli for the terminal\)$")
    assert not any("Warning" in line for line in server.errors)

    alice = start_client(lan, "Alice", SERVER_ADDRESS, port)
    alice_code = joined(alice, SERVER_ADDRESS, port)
    bob = start_client(lan, "Bob", SERVER_ADDRESS, port)
    bob_code = joined(bob, SERVER_ADDRESS, port)
    # Each proved the passphrase to the other and sees the other's real safety code.
    assert alice.expect(LINE + rf"\* Bob joined \({CODE}\)$").group(1) == bob_code
    bob.expect(LINE + rf"\* In the room \(2/5\): Bob \(you\) {bob_code}, Alice {alice_code}$")
    # The relay saw both arrive from the other host.
    server.expect(rf"connection [0-9a-f]+ from {re.escape(CLIENT_ADDRESS)}:\d+ took a place \(2/5\)$", stderr=True)

    alice.send_line("hello from across the LAN")
    bob.expect(LINE + r"Alice: hello from across the LAN$")
    bob.send_line("héllo back 👋")
    alice.expect(LINE + r"Bob: héllo back 👋$")

    quit_cleanly(alice)
    bob.expect(LINE + r"\* Alice left$")
    quit_cleanly(bob)
    assert "Traceback" not in server.output


def test_the_client_host_is_really_another_host(lan):
    """Control for the test above: on the client host, 127.0.0.1 is not the server."""
    lan.connect("sx0", "server", SERVER_ADDRESS, "client", CLIENT_ADDRESS)
    _, port, _ = start_server(lan)
    stranger = start_client(lan, "Eve", "127.0.0.1", port)
    assert stranger.wait() == EXIT_UNREACHABLE
    stranger.expect(rf"Nothing is listening at 127\.0\.0\.1:{port}", stderr=True)


def test_a_host_with_two_interfaces_lists_both_and_both_work(lan):
    lan.connect("sx0", "server", SERVER_ADDRESS, "client", CLIENT_ADDRESS)
    lan.connect("sx1", "server", SECOND_SERVER_ADDRESS, "client", SECOND_CLIENT_ADDRESS)
    server, port, addresses = start_server(lan)
    assert sorted(addresses) == [SERVER_ADDRESS, SECOND_SERVER_ADDRESS]

    alice = start_client(lan, "Alice", addresses[0], port)
    joined(alice, addresses[0], port)
    carol = start_client(lan, "Carol", addresses[1], port)
    carol_code = joined(carol, addresses[1], port)
    assert alice.expect(LINE + rf"\* Carol joined \({CODE}\)$").group(1) == carol_code
    carol.send_line("via the second interface")
    alice.expect(LINE + r"Carol: via the second interface$")
    alice.send_line("and back via the first")
    carol.expect(LINE + r"Alice: and back via the first$")
    # Both arrived from the client host, one on each cable.
    for address in (CLIENT_ADDRESS, SECOND_CLIENT_ADDRESS):
        server.expect(rf"connection [0-9a-f]+ from {re.escape(address)}:\d+ took a place", stderr=True)
    quit_cleanly(alice, carol)


def test_a_host_with_no_lan_falls_back_to_loopback_and_says_so(lan):
    server, port, addresses = start_server(lan)      # the server host has only lo
    assert addresses == ["127.0.0.1"]
    server.expect(r"^Warning: no LAN address found; only this machine can connect\.$", stderr=True)
    server.expect(rf"^Members join with: \.venv/bin/securex --host 127\.0\.0\.1 --port {port} "
                  r"\(add --cli for the terminal\)$")
    # And the address it gives out works, from the same host.
    alice = start_client(lan, "Alice", "127.0.0.1", port, host="server")
    joined(alice, "127.0.0.1", port)
    quit_cleanly(alice)
