"""LAN discovery without a LAN: the TXT record, hostile announcements, the bounded room
table and queue, and what happens without zeroconf (client, browser, announcer, server).

The two-host tests (a real server found, updated and gone; ``--discover`` finding it or
nothing; a flood of hostile packets; avahi-browse and dig) are in test_discovery_lan.py.
"""

from __future__ import annotations

import queue
import re
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import ROOT, WAIT, Process, python_env
from securex.announcer import RoomAnnouncement
from securex.discovery import (MAX_ADDRESSES, MAX_ROOM_NAME_CHARS, MAX_ROOMS, SERVICE_TYPE, UNNAMED_ROOM,
                               ZEROCONF_MISSING, AnnouncedService, Change, DiscoveryUnavailable, Room,
                               RoomBrowser, RoomTable, RoomText, clean_room_name, decode_txt,
                               encode_txt, order_addresses, plausible_addresses, queue_sink, room_from_service,
                               service_name, validate_room_name)

UNSAFE = [chr(c) for c in range(32)] + ["\x7f", "\u200b", "\u202a", "\u202b", "\u202d", "\u202e", "\u2066",
                                        "\u2069", "\u2028", "\u2029", "\ufeff"]


def service(name: str = "Design team", *, port: object = 5050, addresses=("192.168.1.23",),
            properties: object = None) -> AnnouncedService:
    if properties is None:
        properties = {k.encode(): v.encode() for k, v in encode_txt(name, 2, 5).items()}
    return AnnouncedService(f"{name}.{SERVICE_TYPE}", port, addresses, properties)


def assert_clean(text: str) -> None:
    assert len(text) <= MAX_ROOM_NAME_CHARS
    assert not any(ch in text for ch in UNSAFE), repr(text)


# -- the TXT record ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["Design team", "Café ☕ crew", "x" * MAX_ROOM_NAME_CHARS, "日本語の部屋", "a.b.c"])
def test_txt_record_round_trips_through_the_dns_wire_format(name):
    from zeroconf import ServiceInfo

    sent = ServiceInfo(SERVICE_TYPE, service_name(name), port=5050, properties=encode_txt(name, 2, 5))
    strings, wire = [], sent.text
    while wire:
        strings.append(wire[1:1 + wire[0]])
        wire = wire[1 + wire[0]:]
    assert all(len(s) <= 255 for s in strings)
    received = ServiceInfo(SERVICE_TYPE, service_name(name), port=5050, properties=sent.text)
    assert decode_txt(received.properties) == RoomText(version=2, name=name, taken=2, capacity=5)


def test_the_service_name_is_one_dns_label_whatever_the_room_is_called():
    assert service_name("Design team") == "Design team._securex._tcp.local."
    assert service_name("v2.0 release") == "v2-0 release._securex._tcp.local."   # a dot would split the label
    long = service_name("é" * MAX_ROOM_NAME_CHARS)
    label = long[:-len(SERVICE_TYPE) - 1]
    assert len(label.encode()) <= 50 and label == "é" * 25   # cut at a character boundary, not mid-UTF-8
    assert service_name("\u202e\x1b") == "\ufffd\ufffd._securex._tcp.local."


@pytest.mark.parametrize("properties, expected", [
    ({}, RoomText(None, None, None, None)),
    (None, RoomText(None, None, None, None)),
    ("not a mapping", RoomText(None, None, None, None)),
    ({b"v": None, b"room": None, b"taken": None, b"max": None}, RoomText(None, None, None, None)),
    ({b"V": b"2", b"ROOM": b"Loud", b"TAKEN": b"1", b"MAX": b"5"}, RoomText(2, "Loud", 1, 5)),
    ({b"taken": b"-1", b"max": b"5"}, RoomText(None, None, None, 5)),
    ({b"taken": b"+1", b"max": b"5"}, RoomText(None, None, None, 5)),
    ({b"taken": b" 1", b"max": b"5 "}, RoomText(None, None, None, None)),
    ({b"taken": b"6", b"max": b"5"}, RoomText(None, None, None, 5)),
    ({b"taken": b"1", b"max": b"0"}, RoomText(None, None, None, None)),
    ({b"taken": b"1", b"max": b"17"}, RoomText(None, None, None, None)),
    ({b"taken": b"1", b"max": b"9" * 10_000}, RoomText(None, None, None, None)),
    ({b"taken": b"1", b"max": b"1e3"}, RoomText(None, None, None, None)),
    ({b"taken": "٣".encode(), b"max": b"5"}, RoomText(None, None, None, 5)),   # not an ASCII digit
    ({b"v": b"\xff\xfe", b"taken": b"\x00", b"max": b"\x35"}, RoomText(None, None, None, 5)),
    ({b"v": b"99", b"room": b"Future"}, RoomText(99, "Future", None, None)),
    ({1: b"x", b"room": 42, "max": "5", b"taken": 3}, RoomText(None, None, None, 5)),
])
def test_malformed_txt_records_give_unknowns_not_errors(properties, expected):
    assert decode_txt(properties) == expected


def test_the_first_of_a_repeated_key_wins():
    assert decode_txt({b"room": b"First", b"ROOM": b"Second"}).name == "First"


def test_huge_garbage_and_non_utf8_names_are_cut_and_cleaned():
    huge = decode_txt({b"room": b"A" * 1_000_000})
    assert huge.name == "A" * (MAX_ROOM_NAME_CHARS - 1) + "\u2026"
    garbage = decode_txt({b"room": b"\xff\xfe\xc3( ok \xed\xa0\x80" + bytes(range(32))}).name
    assert_clean(garbage)
    assert "ok" in garbage and "\ufffd" in garbage
    bidi = decode_txt({b"room": "\u202egnp.exe\u202c\nDesign".encode()}).name
    assert bidi == "\ufffdgnp.exe\ufffd\ufffdDesign"


@pytest.mark.parametrize("raw, shown", [
    ("  spaced   out  ", "spaced out"),
    ("", UNNAMED_ROOM),
    ("   ", UNNAMED_ROOM),
    ("tab\there", "tab\ufffdhere"),
    ("zero\u200bwidth", "zero\ufffdwidth"),
    ("emoji 👩\u200d💻 stays whole", "emoji 👩\u200d💻 stays whole"),
    ("x" * 41, "x" * 39 + "\u2026"),
])
def test_clean_room_name(raw, shown):
    assert clean_room_name(raw) == shown


def test_clean_room_name_cuts_a_huge_name_before_looking_at_it():
    started = time.monotonic()
    assert len(clean_room_name("\u202e" * 10_000_000)) == MAX_ROOM_NAME_CHARS
    assert time.monotonic() - started < 0.5


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.one_of(st.binary(max_size=40), st.text(max_size=10), st.integers()),
                       st.one_of(st.none(), st.binary(max_size=400), st.text(max_size=100), st.integers()),
                       max_size=60))
def test_any_txt_record_decodes_without_error_into_bounded_clean_values(properties):
    text = decode_txt(properties)
    if text.name is not None:
        assert_clean(text.name)
    assert text.capacity is None or 1 <= text.capacity <= 16
    assert text.taken is None or (text.capacity is not None and 0 <= text.taken <= text.capacity)


@pytest.mark.parametrize("name, problem", [
    ("", "empty"), ("   ", "empty"), ("x" * (MAX_ROOM_NAME_CHARS + 1), "40 characters"),
    ("red\x1b[31m", "control"), ("\u202eevil", "control"), ("two\nlines", None), ("nul\x00", "control"),
])
def test_a_server_may_only_announce_a_clean_name(name, problem):
    if problem is None:   # newlines are whitespace: they fold into one space
        assert validate_room_name(name) == "two lines"
        return
    with pytest.raises(ValueError, match=problem):
        validate_room_name(name)


# -- rooms from announcements ----------------------------------------------------------------------

def test_a_good_announcement_is_a_room():
    room = room_from_service(service())
    assert room == Room("design team._securex._tcp.local.", "Design team", ("192.168.1.23",), 5050, 2, 5, 2)
    assert room.describe() == "Design team  192.168.1.23:5050  2/5 places taken"
    assert room.places_short == "2/5"


@pytest.mark.parametrize("port", [0, -1, 65536, 10**100, None, "5050", 5050.0, True])
def test_an_announcement_without_a_usable_port_is_ignored(port):
    assert room_from_service(service(port=port)) is None


@pytest.mark.parametrize("addresses", [
    [], ["127.0.0.1"], ["0.0.0.0"], ["224.0.0.251"], ["255.255.255.255"], ["240.0.0.1"], ["fe80::1"],
    ["not an address"], [None, 42, b"\x7f\x00\x00\x01"], "192.168.1.23",
])
def test_an_announcement_without_a_plausible_address_is_ignored(addresses):
    assert room_from_service(service(addresses=addresses)) is None


def test_addresses_are_bounded_deduplicated_and_the_nearest_first():
    looked_at = []
    many = (looked_at.append(n) or f"10.0.{n // 250}.{n % 250 + 1}" for n in range(100_000))
    assert len(plausible_addresses(many)) == MAX_ADDRESSES
    assert len(looked_at) <= 4 * MAX_ADDRESSES        # the rest is never even read
    assert plausible_addresses(["10.0.0.1", "10.0.0.1", b"\x0a\x00\x00\x02"]) == ["10.0.0.1", "10.0.0.2"]
    import ipaddress
    mine = [ipaddress.IPv4Network("192.168.7.0/24")]
    assert order_addresses(["169.254.3.3", "10.9.9.9", "192.168.7.5"], mine) == [
        "192.168.7.5", "10.9.9.9", "169.254.3.3"]


def test_a_room_without_a_txt_record_is_named_after_its_instance():
    room = room_from_service(service("Bare \u202eroom", properties={}))
    assert room.name == "Bare \ufffdroom"
    assert room.places == "places unknown" and room.places_short == "?"


def test_a_room_of_another_protocol_version_says_so():
    room = room_from_service(service(properties={b"v": b"3", b"room": b"Future", b"taken": b"1", b"max": b"5"}))
    assert room.describe() == "Future  192.168.1.23:5050  protocol version 3: needs another Secure X version"


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=300), port=st.one_of(st.integers(), st.none(), st.text(max_size=5)),
       addresses=st.lists(st.one_of(st.ip_addresses(v=4).map(str), st.text(max_size=20), st.binary(max_size=6)),
                          max_size=50))
def test_any_announcement_gives_a_clean_room_or_none(name, port, addresses):
    room = room_from_service(AnnouncedService(name, port, addresses, {b"room": name.encode("utf-8", "replace")}))
    if room is not None:
        assert_clean(room.name)
        assert 1 <= room.port <= 65535 and 1 <= len(room.addresses) <= MAX_ADDRESSES


# -- the room table and the queue ----------------------------------------------------------------------

def test_thousands_of_services_keep_the_table_bounded():
    table = RoomTable()
    events = [table.update(service(f"fake {n} \u202e" + "x" * 300)) for n in range(5_000)]
    found = [e for e in events if e is not None]
    assert len(found) == MAX_ROOMS and len(table.rooms()) == MAX_ROOMS
    assert all(len(e.rooms) <= MAX_ROOMS for e in found) and found[-1].full
    assert not table.wants("fake 4999 \u202e._securex._tcp.local.")   # new names are not even resolved
    known = found[0].room
    assert table.wants(known.key.upper())   # DNS names compare without case
    for room in table.rooms():
        assert_clean(room.name)


def test_the_table_reports_only_real_changes():
    table = RoomTable()
    found = table.update(service())
    assert found.change is Change.FOUND and [r.name for r in found.rooms] == ["Design team"]
    assert table.update(service()) is None   # the same again: nothing to report
    fuller = service(properties={b"v": b"2", b"room": b"Design team", b"taken": b"3", b"max": b"5"})
    assert table.update(fuller).change is Change.UPDATED
    gone = table.update(service(port=0))      # no longer joinable: as good as gone
    assert gone.change is Change.LOST and gone.rooms == ()
    assert table.remove("never seen._securex._tcp.local.") is None


def test_rooms_are_sorted_by_name_then_address():
    table = RoomTable()
    for instance, name, address in (("b", b"beta", "10.0.0.2"), ("a1", b"Alpha", "10.0.0.9"),
                                    ("a2", b"alpha", "10.0.0.1")):
        table.update(AnnouncedService(f"{instance}.{SERVICE_TYPE}", 5050, [address], {b"room": name}))
    assert [(r.name, r.address) for r in table.rooms()] == [("alpha", "10.0.0.1"), ("Alpha", "10.0.0.9"),
                                                            ("beta", "10.0.0.2")]


def test_an_instance_name_in_other_case_is_the_same_room():
    table = RoomTable()
    table.update(service("Design team"))
    assert table.update(service("DESIGN TEAM", addresses=["10.0.0.7"])).change is Change.UPDATED
    assert [r.address for r in table.rooms()] == ["10.0.0.7"]


def test_the_queue_sink_never_blocks_and_keeps_the_newest():
    events: queue.Queue = queue.Queue(maxsize=8)
    put = queue_sink(events)
    table = RoomTable()
    started = time.monotonic()
    last = None
    for n in range(10_000):
        last = table.update(service(f"room {n % 100}", addresses=[f"10.0.{n % 7}.1"])) or last
        if last is not None:
            put(last)
    assert time.monotonic() - started < 5
    assert events.qsize() == 8
    drained = [events.get_nowait() for _ in range(8)]
    assert drained[-1] is last


# -- without zeroconf, or without a network ------------------------------------------------------------

def wait_event(events: queue.Queue) -> object:
    return events.get(timeout=WAIT)


def test_without_zeroconf_the_browser_says_so_once(monkeypatch):
    monkeypatch.setitem(sys.modules, "zeroconf", None)   # what a Python without the package does on import
    events: queue.Queue = queue.Queue(maxsize=8)
    browser = RoomBrowser(queue_sink(events))
    browser.start()
    try:
        assert wait_event(events) == DiscoveryUnavailable(ZEROCONF_MISSING)
    finally:
        browser.stop()
    assert events.empty()


@pytest.mark.parametrize("interfaces, reason", [
    ([], "this computer has no LAN address"),
    (["198.51.100.7"], "multicast does not work here"),   # an address this computer does not have
])
def test_without_a_usable_network_the_browser_says_why(interfaces, reason):
    events: queue.Queue = queue.Queue(maxsize=8)
    browser = RoomBrowser(queue_sink(events), interfaces=interfaces)
    browser.start()
    try:
        event = wait_event(events)
    finally:
        browser.stop()
    assert isinstance(event, DiscoveryUnavailable) and event.reason.startswith(reason)


def test_stop_returns_promptly_and_can_be_repeated():
    events: queue.Queue = queue.Queue(maxsize=8)
    browser = RoomBrowser(queue_sink(events), interfaces=["127.0.0.1"])
    browser.start()
    started = time.monotonic()
    browser.stop()
    browser.stop()   # idempotent
    assert time.monotonic() - started < 3
    assert browser.rooms() == ()


BLOCK_ZEROCONF = ("import sys, runpy; sys.modules['zeroconf'] = None; sys.argv = sys.argv[1:]; "
                  "runpy.run_path(sys.argv[0], run_name='__main__')")


def test_discover_without_zeroconf_says_why_and_exits_1_without_a_traceback():
    client = Process(["-c", BLOCK_ZEROCONF, "client.py", "--discover"], python_env())
    assert client.wait() == 1
    assert client.lines == []
    message = "\n".join(client.errors)
    assert "Room discovery is unavailable here: the zeroconf package is not installed" in message
    assert "securex --host ADDRESS --port PORT" in message
    assert "Traceback" not in message


def test_without_zeroconf_the_announcer_says_why_and_the_server_carries_on(tmp_path, monkeypatch):
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['zeroconf'] = None\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))   # the announcer child inherits it
    reports: queue.Queue = queue.Queue()
    room = RoomAnnouncement.start("Design team", 5050, 5, ["192.0.2.99"], report=reports.put)
    try:
        assert reports.get(timeout=WAIT) == (
            f"Room not announced on the LAN: {ZEROCONF_MISSING}. Members type the address instead.")
        room.set_taken(1)   # the child has gone: nothing breaks
    finally:
        room.wait()
    assert reports.empty()


# -- the server's options --------------------------------------------------------------------------------

@pytest.mark.parametrize("name, message", [
    ("", "--room-name: the room name is empty"),
    ("x" * 41, "--room-name: keep the room name to 40 characters"),
    ("red\x1b[31m", "--room-name: the room name cannot contain control or formatting characters"),
])
def test_the_server_refuses_a_bad_room_name(name, message):
    server = Process(["server.py", "--room-name", name], python_env())
    assert server.wait() == 2
    assert message in "\n".join(server.errors)
    assert "Traceback" not in server.output


@pytest.mark.parametrize("args, line", [
    ([], "Room not announced on the LAN: the server listens on 127.0.0.1 only, which other computers "
         "cannot reach. Members type the address instead."),
    (["--no-announce"], "Room not announced on the LAN (--no-announce). Members type the address."),
])
def test_the_server_says_when_it_does_not_announce(args, line):
    server = Process(["server.py", "--host", "127.0.0.1", "--port", "0", *args], python_env())
    try:
        server.expect(f"^{re.escape(line)}$")
    finally:
        server.kill()


def test_zeroconf_is_declared_alike_in_pyproject_and_requirements():
    block = re.search(r"^dependencies = \[(.*?)^\]", (ROOT / "pyproject.toml").read_text(), re.M | re.S).group(1)
    declared = sorted(re.findall(r'"([^"]+)"', block))
    required = sorted(line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
                      if line.strip() and not line.startswith("#"))
    assert declared == required
    assert "zeroconf>=0.131,<1" in declared
