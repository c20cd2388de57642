"""The rooms list of the connect dialog, in a real Tk on a real X server: rooms appear and
go, picking one fills in the address and port, manual entry always works, a flood of
hostile announcements never freezes it, and it browses only while it is on screen.

Most tests feed the list through the same queue the browser uses (a stand-in browser
holds the browser's own ``queue_sink``); one runs the real browser without zeroconf, and
one runs the whole dialog on a second host of a namespace LAN against a real server.
When DISPLAY is unset the suite starts its own Xvfb (tests/xvfb.py).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import ClassVar

import pytest

from helpers import WAIT, netns_lan, skip_unless_ci, wait_until
from securex.discovery import (EVENT_QUEUE_SIZE, MAX_ROOM_NAME_CHARS, MAX_ROOMS, SERVICE_TYPE, ZEROCONF_MISSING,
                               AnnouncedService, DiscoveryEvent, DiscoveryUnavailable, RoomTable)

try:
    import tkinter as tk
except ImportError:
    skip_unless_ci("tkinter is missing (apt install python3-tk)")

from securex.desktop import rooms as rooms_module
from securex.desktop.dialog import ConnectDialog, ConnectRequest
from securex.desktop.theme import apply_theme, palette_from_env

pytest_plugins = ("desktop_helpers",)   # the display fixture (Xvfb when DISPLAY is unset)

UNSAFE = [chr(c) for c in range(32)] + ["\x7f", "\u200b", "\u202e", "\u2028"]


@pytest.fixture
def root(display, tmp_path, monkeypatch) -> Iterator[tk.Tk]:
    monkeypatch.setenv("SECUREX_CONFIG_DIR", str(tmp_path / "config"))
    window = tk.Tk(className="SecureXRoomsTest")
    yield window
    with contextlib.suppress(tk.TclError):
        window.destroy()


class StandInBrowser:
    """Takes the place of the network only: the list gets the browser's own queue sink."""

    made: ClassVar[list[StandInBrowser]] = []

    def __init__(self, sink: Callable[[DiscoveryEvent], None]) -> None:
        self.sink = sink
        self.started = self.stopped = False
        StandInBrowser.made.append(self)

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True


def make_dialog(root: tk.Tk, browser_factory=StandInBrowser) -> ConnectDialog:
    StandInBrowser.made.clear()
    dialog = ConnectDialog(root, apply_theme(root, palette_from_env()), ConnectRequest("", 5050, "Alice", "pass"),
                           on_connect=lambda request: None, on_cancel=lambda: None, on_quit=lambda: None,
                           browser_factory=browser_factory)
    dialog.grid(row=0, column=0, sticky="nsew")
    pump_until(root, lambda: dialog.rooms.browsing, "the dialog to start browsing once on screen")
    return dialog


def pump_until(root: tk.Tk, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> float:
    """Run Tk until ``condition`` holds; returns the longest single ``update()`` took."""
    deadline, longest = time.monotonic() + timeout, 0.0
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        started = time.monotonic()
        root.update()
        longest = max(longest, time.monotonic() - started)
        time.sleep(0.005)
    return longest


def announced(name: str, address: str = "192.168.1.23", port: int = 5050, taken: int = 2) -> AnnouncedService:
    return AnnouncedService(f"{name}.{SERVICE_TYPE}", port, [address],
                            {b"v": b"2", b"room": name.encode(), b"taken": str(taken).encode(), b"max": b"5"})


def rows(dialog: ConnectDialog) -> list[tuple[str, ...]]:
    tree = dialog.rooms.tree
    return [tuple(tree.item(row, "values")) for row in tree.get_children()]


def click_row(root: tk.Tk, dialog: ConnectDialog, index: int) -> None:
    """A real click on a row, where it is drawn."""
    tree = dialog.rooms.tree
    row = tree.get_children()[index]
    pump_until(root, lambda: bool(tree.bbox(row)), "the row to be drawn")
    x, y, _, height = tree.bbox(row)
    for sequence in ("<ButtonPress-1>", "<ButtonRelease-1>"):
        tree.event_generate(sequence, x=x + 5, y=y + height // 2)
    root.update()


def test_a_room_found_is_listed_and_picking_it_fills_host_and_port(root):
    dialog = make_dialog(root)
    browser = StandInBrowser.made[-1]
    assert browser.started and dialog.rooms.status_label.cget("text").startswith("Looking for rooms")
    table = RoomTable()
    browser.sink(table.update(announced("Design team", "192.168.1.23", 5050, taken=2)))
    browser.sink(table.update(announced("Kitchen", "192.168.1.40", 6060, taken=0)))
    pump_until(root, lambda: len(rows(dialog)) == 2, "two rooms to be listed")
    assert rows(dialog) == [("Design team", "192.168.1.23:5050", "2/5"), ("Kitchen", "192.168.1.40:6060", "0/5")]
    assert dialog.rooms.status_label.cget("text").startswith("Pick a room")

    click_row(root, dialog, 1)
    assert (dialog.host.get(), dialog.port.get()) == ("192.168.1.40", "6060")
    assert dialog.entry_ok().host == "192.168.1.40"

    # Places change in place, without disturbing the selection or the fields.
    dialog.host.set("10.9.9.9")   # the user types an address by hand after all
    browser.sink(table.update(announced("Kitchen", "192.168.1.40", 6060, taken=1)))
    pump_until(root, lambda: ("Kitchen", "192.168.1.40:6060", "1/5") in rows(dialog), "the places to change")
    assert dialog.host.get() == "10.9.9.9"
    request = dialog.entry_ok()
    assert (request.host, request.port) == ("10.9.9.9", 6060)   # manual entry always wins

    browser.sink(table.remove("Kitchen._securex._tcp.local."))
    pump_until(root, lambda: len(rows(dialog)) == 1, "the withdrawn room to disappear")
    browser.sink(table.remove("Design team._securex._tcp.local."))
    pump_until(root, lambda: rows(dialog) == [], "the list to empty")


def test_a_flood_of_hostile_rooms_never_freezes_the_dialog(root):
    dialog = make_dialog(root)
    browser = StandInBrowser.made[-1]
    table = RoomTable()
    hostile = ["\u202eevil\x1b[31m {n}", "zero\u200bwidth {n}\u2028", "{n}" + "W" * 5000, "emoji 😀 {n} {{}}[$\\",
               "nul\x00 {n}"]
    for n in range(3_000):   # the browser's own path: table, snapshot, sink (drops the oldest when full)
        event = table.update(announced(hostile[n % len(hostile)].format(n=n), f"10.0.{n % 250}.{n % 200 + 1}"))
        if event is None:   # full: the table ignores newcomers; the flood goes on as updates and removals
            event = table.remove(table.rooms()[n % MAX_ROOMS].key)
        browser.sink(event)
    assert dialog.rooms.events.qsize() <= EVENT_QUEUE_SIZE
    longest = pump_until(root, lambda: dialog.rooms.events.empty(), "the flood to be drained")
    root.update()
    assert longest < 0.5, f"one tick took {longest:.2f} s"
    stats = dialog.rooms.stats
    assert stats.largest_batch <= rooms_module.BATCH
    shown = rows(dialog)
    assert 0 < len(shown) <= MAX_ROOMS
    for name, _, _ in shown:
        assert len(name) <= MAX_ROOM_NAME_CHARS and not any(ch in name for ch in UNSAFE), repr(name)
    # Still answering the user: a pick fills the fields, typing works.
    click_row(root, dialog, 0)
    assert dialog.host.get() == shown[0][1].split(":")[0]
    dialog.name_entry.delete(0, "end")
    dialog.name_entry.insert(0, "Bob")
    assert dialog.entry_ok().name == "Bob"


def test_without_zeroconf_the_list_says_so_and_manual_entry_works(root, monkeypatch):
    monkeypatch.setitem(sys.modules, "zeroconf", None)
    dialog = make_dialog(root, browser_factory=rooms_module.RoomBrowser)   # the real browser
    label = dialog.rooms.status_label
    pump_until(root, lambda: "unavailable" in label.cget("text"), "the list to say discovery is unavailable")
    assert label.cget("text") == (f"Room discovery is unavailable here: {ZEROCONF_MISSING}. "
                                  "Type the server address below.")
    assert rows(dialog) == []
    dialog.host.set("192.168.1.23")
    assert dialog.entry_ok().host == "192.168.1.23"


def test_unavailable_is_said_once_even_if_repeated(root):
    dialog = make_dialog(root)
    for _ in range(3):
        StandInBrowser.made[-1].sink(DiscoveryUnavailable("multicast does not work here (No such device)"))
    pump_until(root, lambda: dialog.rooms.events.empty(), "the events to be drained")
    root.update()
    assert dialog.rooms.status_label.cget("text").count("unavailable") == 1


def test_browsing_follows_the_dialog_on_and_off_screen(root):
    dialog = make_dialog(root)
    first = StandInBrowser.made[-1]
    dialog.grid_remove()   # what the app does when the chat window takes over
    pump_until(root, lambda: first.stopped, "browsing to stop with the dialog hidden")
    assert not dialog.rooms.browsing and rows(dialog) == []
    dialog.grid()
    pump_until(root, lambda: dialog.rooms.browsing, "browsing to start again")
    second = StandInBrowser.made[-1]
    assert second is not first and second.started
    first.sink(RoomTable().update(announced("Stale")))   # a stopped browser's last words reach nobody
    root.update()
    assert dialog.rooms.events.empty()
    dialog.destroy()
    wait_until(lambda: second.stopped, "browsing to stop when the dialog is destroyed")


def test_stop_never_waits_for_the_network(root):
    """Closing sockets happens off the Tk thread: a browser slow to stop does not freeze Tk."""
    release = threading.Event()

    class SlowToStop(StandInBrowser):
        def stop(self) -> None:
            release.wait(WAIT)
            super().stop()

    dialog = make_dialog(root, browser_factory=SlowToStop)
    dialog.grid_remove()
    root.update()
    # Tk got here while the browser's stop is still blocked: it did not wait for it.
    assert not StandInBrowser.made[-1].stopped
    release.set()
    wait_until(lambda: StandInBrowser.made[-1].stopped, "the slow browser to stop")


# -- end to end: the real browser on a second host ------------------------------------------------------

DIALOG_ON_CLIENT = """
import sys, time, tkinter as tk
sys.path.insert(0, ".")
from securex.desktop.dialog import ConnectDialog, ConnectRequest
from securex.desktop.theme import apply_theme, palette_from_env
root = tk.Tk()
dialog = ConnectDialog(root, apply_theme(root, palette_from_env()), ConnectRequest("", 5050, ""),
                       on_connect=print, on_cancel=print, on_quit=print)
dialog.grid()
started = time.monotonic()
deadline = started + float(sys.argv[1])
tree = dialog.rooms.tree
while not tree.get_children() and time.monotonic() < deadline:
    root.update()
    time.sleep(0.01)
if tree.get_children():
    print("LISTED", round(time.monotonic() - started, 2), *tree.item(tree.get_children()[0], "values"), sep="|")
    tree.selection_set(tree.get_children()[0])
    root.update()
    print("FILLED", dialog.host.get(), dialog.port.get(), sep="|")
dialog.destroy()
root.destroy()
"""


def test_the_dialog_on_another_host_lists_a_real_room(display):
    server_address, client_address = "10.235.0.1", "10.235.0.2"
    with netns_lan("server", "client") as lan:
        lan.connect("sx0", "server", server_address, "client", client_address)
        server = lan.run("server", "server.py", "--port", "0", "--room-name", "Design team")
        port = server.expect(r"^Secure X server on [\d.]+:(\d+) ").group(1)
        dialog = lan.run("client", "-c", DIALOG_ON_CLIENT, "8")
        listed = dialog.expect(r"^LISTED\|", WAIT).string.split("|")
        assert listed[2:] == ["Design team", f"{server_address}:{port}", "0/5"]
        dialog.expect(rf"^FILLED\|{server_address}\|{port}$")
        assert dialog.wait() == 0, dialog.output
        assert "Traceback" not in dialog.output, dialog.output
        print(f"\nthe dialog on the other host listed the room {listed[1]} s after it opened")
