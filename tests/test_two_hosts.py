"""Two hosts on a LAN, for real: two network namespaces joined by a veth pair with
private addresses and no default route. The server runs on one "host", prints its
LAN address, and terminal clients on the other host reach it there and chat.

Needs root and iproute2 (CI has both); skipped otherwise. Only addresses inside the
namespaces these tests create are ever used, and the namespaces (with everything in
them) are deleted when each test ends, however it ends.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from dataclasses import dataclass, field

import pytest

from securex.errors import EXIT_UNREACHABLE
from helpers import PASSPHRASE, WAIT, Process, python_env, skip_unless_ci

SERVER_ADDRESS, CLIENT_ADDRESS = "10.231.0.1", "10.231.0.2"
SECOND_SERVER_ADDRESS, SECOND_CLIENT_ADDRESS = "10.232.0.1", "10.232.0.2"
PREFIX = 24
# Process runs ``python ARGS``; this makes that python become ``ip netns exec NS python ARGS``
# (same pid, so Process.kill still reaches the real program).
_NETNS_EXEC = ("import os, sys; "
               "os.execvp('ip', ['ip', 'netns', 'exec', sys.argv[1], sys.executable, *sys.argv[2:]])")
_names = itertools.count()


def ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=WAIT)
    if done.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Lan:
    """A server host and a client host (network namespaces) and what runs in them."""

    server_host: str
    client_host: str
    processes: list[Process] = field(default_factory=list)

    def connect(self, interface: str, server_address: str, client_address: str) -> None:
        """One more cable between the hosts: a veth pair, one address at each end."""
        ip("-n", self.server_host, "link", "add", interface, "type", "veth",
           "peer", "name", interface, "netns", self.client_host)
        for host, address in ((self.server_host, server_address), (self.client_host, client_address)):
            ip("-n", host, "addr", "add", f"{address}/{PREFIX}", "dev", interface)
            ip("-n", host, "link", "set", interface, "up")

    def run(self, host: str, *args: str, env: dict[str, str] | None = None) -> Process:
        process = Process(["-c", _NETNS_EXEC, host, *args], env or python_env())
        self.processes.append(process)
        return process

    def server(self) -> tuple[Process, int]:
        """``python server.py --port 0`` on the server host, listening on every interface."""
        server = self.run(self.server_host, "server.py", "--port", "0")
        server.expect(r"Press Ctrl\+C to stop")
        port = int(server.expect(r"^Secure X server on [\d.]+:(\d+) ").group(1))
        return server, port

    def client(self, name: str, host: str, port: int) -> Process:
        """``python client.py --cli`` on the client host."""
        return self.run(self.client_host, "client.py", "--cli", "--host", host, "--port", str(port),
                        "--name", name, env=python_env(SECUREX_PASSPHRASE=PASSPHRASE))


@pytest.fixture
def lan():
    if os.geteuid() != 0:
        skip_unless_ci("creating network namespaces needs root (CI runs as root)")
    if shutil.which("ip") is None:
        skip_unless_ci("needs the `ip` command from iproute2")
    suffix = f"{os.getpid()}-{next(_names)}"
    hosts = [f"sx-srv-{suffix}", f"sx-cli-{suffix}"]
    created: list[str] = []
    network = Lan(*hosts)
    try:
        for host in hosts:
            try:
                ip("netns", "add", host)
            except RuntimeError as error:
                skip_unless_ci(f"`ip netns` is unavailable here: {error}")
            created.append(host)
            ip("-n", host, "link", "set", "lo", "up")
        yield network
    finally:
        for process in network.processes:
            process.kill()
        for host in created:
            subprocess.run(["ip", "netns", "del", host], capture_output=True, timeout=WAIT)


def announced_addresses(server: Process, port: int) -> list[str]:
    first = server.expect(rf"^Secure X server on ([\d.]+):{port} \(up to 5 members\)$").group(1)
    others = [line.split("also reachable at ")[1].rsplit(":", 1)[0]
              for line in server.lines if "also reachable at" in line]
    return [first, *others]


def test_clients_on_another_host_reach_the_server_at_its_lan_address(lan):
    lan.connect("sx0", SERVER_ADDRESS, CLIENT_ADDRESS)
    for host in (lan.server_host, lan.client_host):
        assert ip("-n", host, "route", "show", "default").strip() == "", "a default route crept in"

    server, port = lan.server()
    assert announced_addresses(server, port) == [SERVER_ADDRESS]
    server.expect(rf"^Members join with: python client\.py --host {SERVER_ADDRESS} --port {port}$")
    assert not any("Warning" in line for line in server.errors)

    alice = lan.client("Alice", SERVER_ADDRESS, port)
    alice.expect(rf"Joined the room at {SERVER_ADDRESS}:{port}")
    bob = lan.client("Bob", SERVER_ADDRESS, port)
    bob.expect(rf"Joined the room at {SERVER_ADDRESS}:{port}")
    alice.expect(r"\* Bob joined$")
    # The server saw both arrive from the other host.
    server.expect(rf"joined from {CLIENT_ADDRESS}:\d+ \(2/5\)", stderr=True)

    alice.send_line("hello from across the LAN")
    bob.expect(r"^\[\d\d:\d\d:\d\d\] Alice: hello from across the LAN$")
    bob.send_line("héllo back 👋")
    alice.expect(r"^\[\d\d:\d\d:\d\d\] Bob: héllo back 👋$")

    alice.send_line("<quit>")
    assert alice.wait() == 0
    bob.expect(r"\* Alice left$")
    bob.send_line("/quit")
    assert bob.wait() == 0
    assert "Traceback" not in server.output + alice.output + bob.output


def test_the_client_host_is_really_another_host(lan):
    """Control for the test above: on the client host, 127.0.0.1 is not the server."""
    lan.connect("sx0", SERVER_ADDRESS, CLIENT_ADDRESS)
    _, port = lan.server()
    stranger = lan.client("Eve", "127.0.0.1", port)
    assert stranger.wait() == EXIT_UNREACHABLE
    stranger.expect(rf"Nothing is listening at 127\.0\.0\.1:{port}", stderr=True)


def test_a_host_with_two_interfaces_lists_both_and_both_work(lan):
    lan.connect("sx0", SERVER_ADDRESS, CLIENT_ADDRESS)
    lan.connect("sx1", SECOND_SERVER_ADDRESS, SECOND_CLIENT_ADDRESS)
    server, port = lan.server()
    addresses = announced_addresses(server, port)
    assert sorted(addresses) == [SERVER_ADDRESS, SECOND_SERVER_ADDRESS]
    server.expect(rf"^  also reachable at {addresses[1]}:{port}$")

    alice = lan.client("Alice", addresses[0], port)
    alice.expect("Joined the room")
    carol = lan.client("Carol", addresses[1], port)
    carol.expect(rf"Joined the room at {addresses[1]}:{port}")
    alice.expect(r"\* Carol joined$")
    carol.send_line("via the second interface")
    alice.expect(r"Carol: via the second interface$")
    for client in (alice, carol):
        client.send_line("<quit>")
        assert client.wait() == 0


def test_a_host_with_no_lan_falls_back_to_loopback_and_says_so(lan):
    server, port = lan.server()      # the server host has only lo
    assert announced_addresses(server, port) == ["127.0.0.1"]
    server.expect(r"no LAN address found; only this machine can connect", stderr=True)
