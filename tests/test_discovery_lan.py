"""LAN discovery between real hosts: network namespaces joined by veth pairs, private
addresses, no default route. A server on one host announces its room; on the other,
``client.py --discover``, the RoomBrowser API (``tests/room_watcher.py``) and standard
mDNS tools (avahi-browse with a private Avahi daemon, dig) find it, see its places change
and see it go. Also: a stranger's flood of hostile announcements, a multi-homed server,
and which process loads zeroconf (never the relay).

Needs root and iproute2 (CI has both); skipped otherwise. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import PASSPHRASE, WAIT, NetnsLan, Process, netns_lan, python_env, skip_unless_ci
from securex.discovery import MAX_ROOM_NAME_CHARS, MAX_ROOMS

SERVER, CLIENT = "10.233.0.1", "10.233.0.2"
SECOND_SERVER, SECOND_CLIENT = "10.234.0.1", "10.234.0.2"
FOUND_WITHIN = 5.0       # the bound for finding a room
GONE_WITHIN = 5.0        # "within a few seconds" of the server stopping
FORBIDDEN = ("Crypto", "Cryptodome", "cryptography", "crypto_utils", "ssl", "_ssl", "hashlib", "_hashlib",
             "hmac", "secrets")


@pytest.fixture
def lan() -> Iterator[NetnsLan]:
    with netns_lan("server", "client") as network:
        yield network


def start_server(lan: NetnsLan, *args: str, env: dict[str, str] | None = None) -> tuple[Process, int]:
    server = lan.run("server", "server.py", "--port", "0", *args, env=env)
    port = int(server.expect(r"^Secure X server on [\d.]+:(\d+) ").group(1))
    return server, port


def start_watcher(lan: NetnsLan) -> Process:
    watcher = lan.run("client", "tests/room_watcher.py")
    watcher.expect("^READY$")
    return watcher


def next_event(watcher: Process, pattern: str, timeout: float = WAIT) -> dict:
    """The first event line matching ``pattern``, decoded."""
    return json.loads(watcher.expect(pattern, timeout).string)


def stop(process: Process, signum: int = signal.SIGTERM) -> None:
    process.proc.send_signal(signum)
    process.wait()


def test_a_room_on_another_host_is_found_updated_and_gone(lan):
    lan.connect("sx0", "server", SERVER, "client", CLIENT)
    for role in lan.hosts:
        assert lan.command(role, "ip", "route", "show", "default").stdout.strip() == "", "a default route crept in"
    watcher = start_watcher(lan)

    started = time.monotonic()
    server, port = start_server(lan, "--room-name", "Design team")
    found = next_event(watcher, r'"event": "found"', FOUND_WITHIN)
    found_after = time.monotonic() - started
    assert found["room"] | {"line": None} == {
        "name": "Design team", "addresses": [SERVER], "port": port, "taken": 0, "capacity": 5, "version": 2,
        "line": None}
    server.expect(r'^Room "Design team" announced on the LAN; members find it with: \.venv/bin/securex --discover$')

    # --discover listens for a few seconds; a member joins meanwhile, so it shows either count.
    looking = time.monotonic()
    discover = lan.run("client", "client.py", "--discover")
    alice = lan.run("client", "client.py", "--cli", "--host", SERVER, "--port", str(port), "--name", "Alice",
                    env=python_env(SECUREX_PASSPHRASE=PASSPHRASE))
    alice.expect(r"Joined the room")
    joined = time.monotonic()
    updated = next_event(watcher, r'"event": "updated".*"taken": 1,')
    update_after = time.monotonic() - joined
    assert updated["room"]["line"] == f"Design team  {SERVER}:{port}  1/5 places taken"

    assert discover.wait(FOUND_WITHIN + 2) == 0, discover.output
    discover_took = time.monotonic() - looking
    assert len(discover.lines) == 1
    assert re.fullmatch(rf"Design team  {re.escape(SERVER)}:{port}  [01]/5 places taken", discover.lines[0])
    assert "Traceback" not in discover.output

    stopping = time.monotonic()
    stop(server)
    next_event(watcher, r'"event": "lost".*"name": "Design team"', GONE_WITHIN)
    gone_after = time.monotonic() - stopping
    assert "Traceback" not in server.output + watcher.output
    print(f"\nfound by the browser {found_after:.2f} s after the server started; --discover took "
          f"{discover_took:.2f} s; places updated {update_after:.2f} s after a join; gone {gone_after:.2f} s "
          "after SIGTERM")


def test_nothing_announced_means_a_clear_message_and_status_1(lan):
    lan.connect("sx0", "server", SERVER, "client", CLIENT)
    discover = lan.run("client", "client.py", "--discover")
    assert discover.wait(WAIT) == 1
    assert discover.lines == []
    message = "\n".join(discover.errors)
    assert "No Secure X rooms answered" in message
    assert "UDP port 5353" in message and "same network" in message
    assert "securex --host ADDRESS --port PORT" in message
    assert "Traceback" not in message


def test_a_multi_homed_server_announces_what_it_listens_on_and_a_killed_one_goes(lan):
    # No multicast route this time: Secure X names its interfaces, so it needs none.
    lan.connect("sx0", "server", SERVER, "client", CLIENT, multicast_route=False)
    lan.connect("sx1", "server", SECOND_SERVER, "client", SECOND_CLIENT, multicast_route=False)
    watcher = start_watcher(lan)
    everywhere, port = start_server(lan, "--room-name", "Everywhere")
    only_second, second_port = start_server(lan, "--host", SECOND_SERVER, "--room-name", "Second only")
    rooms = {}
    for name in ("Everywhere", "Second only"):
        rooms[name] = next_event(watcher, rf'"event": "found".*"name": "{name}"', FOUND_WITHIN)["room"]
    assert sorted(rooms["Everywhere"]["addresses"]) == [SERVER, SECOND_SERVER]
    assert rooms["Everywhere"]["port"] == port
    assert rooms["Second only"]["addresses"] == [SECOND_SERVER]
    assert rooms["Second only"]["port"] == second_port

    killed = time.monotonic()
    stop(everywhere, signal.SIGKILL)   # no goodbye from the relay: its announcer sees its stdin end
    next_event(watcher, r'"event": "lost".*"name": "Everywhere"', GONE_WITHIN)
    print(f"\nannouncement of a SIGKILLed server gone after {time.monotonic() - killed:.2f} s")
    assert not re.search(r'"event": "lost".*"name": "Second only"', "\n".join(watcher.lines))
    stop(only_second)


def test_a_flood_of_hostile_announcements_stays_bounded_and_clean(lan):
    lan.connect("sx0", "server", SERVER, "client", CLIENT)
    watcher = start_watcher(lan)
    discover = lan.run("client", "client.py", "--discover")
    started = time.monotonic()
    flood = lan.run("server", "tests/hostile_announcer.py", "--address", SERVER, "--services", "2000",
                    "--seconds", "1.0")
    flood.expect(r"^SENT \d+$", WAIT)
    assert discover.wait(WAIT) == 0, discover.output
    assert time.monotonic() - started < 6, "the flood delayed --discover"
    assert "Traceback" not in discover.output + watcher.output
    assert 1 <= len(discover.lines) <= MAX_ROOMS
    for line in discover.lines:
        name, endpoint, _ = line.split("  ")
        assert len(name) <= MAX_ROOM_NAME_CHARS
        assert not re.search(r"[\x00-\x1f\x7f\u200b\u202a-\u202e\u2028\u2029]", line), line
        assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+:\d+", endpoint)
        assert not endpoint.startswith(("127.", "0.", "224.", "255.")) and not endpoint.endswith(":0")
    counts = [json.loads(line)["count"] for line in watcher.lines if line.startswith("{")]
    assert counts and max(counts) <= MAX_ROOMS


# -- standard mDNS browsers ----------------------------------------------------------------------

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={path}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/>
    <allow send_type="method_call"/><allow send_type="signal"/>
    <allow send_type="method_return"/><allow send_type="error"/>
    <allow receive_type="method_call"/><allow receive_type="signal"/>
    <allow receive_type="method_return"/><allow receive_type="error"/>
  </policy>
</busconfig>
"""

AVAHI_CONFIG = """[server]
use-ipv4=yes
use-ipv6=no
allow-interfaces=sx0
[wide-area]
enable-wide-area=no
[publish]
disable-publishing=yes
"""


def _wait_for_output(process: subprocess.Popen, pattern: str, timeout: float) -> bool:
    """Read ``process``'s output until a line matches, it ends, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    buffered = ""
    while (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([process.stdout], [], [], remaining)
        if not readable:
            break
        chunk = os.read(process.stdout.fileno(), 4096).decode(errors="replace")
        if not chunk:
            return False
        buffered += chunk
        if re.search(pattern, buffered):
            threading.Thread(target=process.stdout.read, daemon=True).start()   # keep its pipe from filling
            return True
    return False


@contextmanager
def avahi_daemon(lan: NetnsLan, role: str, directory: Path) -> Iterator[dict[str, str] | None]:
    """An Avahi daemon on host ``role``, as a Linux desktop has, on a private D-Bus, with a
    private /run (the host's is untouched). Yields the environment for avahi-browse, or None
    where one cannot run."""
    if not all(shutil.which(tool) for tool in ("dbus-daemon", "avahi-daemon", "avahi-browse")):
        yield None
        return
    bus = directory / "bus"
    (directory / "bus.conf").write_text(BUS_CONFIG.format(path=bus))
    (directory / "avahi.conf").write_text(AVAHI_CONFIG)
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={bus}")
    started: list[subprocess.Popen] = []
    try:
        dbus = subprocess.Popen(["dbus-daemon", f"--config-file={directory / 'bus.conf'}", "--nofork",
                                 "--print-address"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        started.append(dbus)
        if not _wait_for_output(dbus, r"unix:", WAIT):
            yield None
            return
        run_avahi = f"exec avahi-daemon --no-chroot --no-drop-root -f {directory / 'avahi.conf'}"
        avahi = subprocess.Popen(["ip", "netns", "exec", lan.hosts[role], "sh", "-c",
                                  f"mount -t tmpfs tmpfs /run && {run_avahi}"],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        started.append(avahi)
        yield env if _wait_for_output(avahi, r"Server startup complete", WAIT) else None
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(WAIT)


def test_standard_mdns_browsers_find_the_room(lan, tmp_path):
    lan.connect("sx0", "server", SERVER, "client", CLIENT)
    tried = []
    with avahi_daemon(lan, "client", tmp_path) as avahi_env:
        server, port = start_server(lan, "--room-name", "Design team")
        server.expect(r"^Room \"Design team\" announced on the LAN")

        if avahi_env is not None:
            tried.append("avahi-browse")
            deadline = time.monotonic() + WAIT
            resolved: list[list[str]] = []
            while not resolved and time.monotonic() < deadline:   # avahi may need a query round first
                done = subprocess.run(["avahi-browse", "-rtp", "_securex._tcp"], capture_output=True, text=True,
                                      timeout=WAIT, env=avahi_env)
                resolved = [line.split(";") for line in done.stdout.splitlines() if line.startswith("=;")]
            assert resolved, "avahi-browse did not resolve the room"
            fields = resolved[0]
            assert fields[3:6] == ["Design\\032team", "_securex._tcp", "local"]
            assert fields[7:9] == [SERVER, str(port)]
            for txt in ('"v=2"', '"room=Design team"', '"taken=0"', '"max=5"', '"txtvers=1"'):
                assert txt in fields[9]

        if shutil.which("dig"):
            # A standard DNS client asking the responder directly (RFC 6762 section 6.7).
            # ("@224.0.0.251" is answered too, but dig drops answers that come from the
            # responder's own address, as multicast DNS answers do.)
            tried.append("dig")
            done = lan.command("client", "dig", "+time=2", "+tries=2", "-p", "5353", f"@{SERVER}",
                               "_securex._tcp.local", "PTR")
            assert "status: NOERROR" in done.stdout, done.stdout
            assert re.search(r"_securex\._tcp\.local\.\s+\d+\s+IN\s+PTR\s+Design\\032team\._securex\._tcp\.local\.",
                             done.stdout), done.stdout
            assert re.search(rf"IN\s+SRV\s+0 0 {port} securex-[0-9a-f]+\.local\.", done.stdout), done.stdout
            assert '"room=Design team"' in done.stdout
    if not tried:
        skip_unless_ci("neither avahi (dbus-daemon, avahi-daemon, avahi-browse) nor dig is installed")


# -- the relay stays blind --------------------------------------------------------------------------

def test_the_announcer_child_loads_zeroconf_and_ssl_the_relay_does_not(lan):
    """Both processes report their imports (PYTHONPROFILEIMPORTTIME); the relay relays its
    child's output prefixed with "announcer: ", so each line says whose it is."""
    lan.connect("sx0", "server", SERVER, "client", CLIENT)
    server, _ = start_server(lan, "--room-name", "Blind", env=python_env(PYTHONPROFILEIMPORTTIME="1"))
    server.expect(r'^Room "Blind" announced on the LAN')
    stop(server)
    pattern = re.compile(r"^(announcer: )?import time:\s+\d+ \|\s+\d+ \|\s*(\S+)")
    relay, child = set(), set()
    for line in server.errors:
        if match := pattern.match(line):
            (child if match.group(1) else relay).add(match.group(2))
    assert "securex.relay.engine" in relay and "securex.announcer" in relay
    assert not {m for m in relay if m.split(".")[0] in (*FORBIDDEN, "zeroconf", "asyncio")}, sorted(relay)
    assert {"zeroconf", "asyncio", "ssl"} <= child, sorted(child)
