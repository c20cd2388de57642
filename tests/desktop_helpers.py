"""Shared machinery of the desktop tests: a display, a Tk root, the app built as a user
would start it, bounded pumping, and a link to the relay that a test can cut.

Nothing here sleeps for a fixed time: ``pump_until`` runs Tk until a condition
holds and fails after a deadline. The fixtures are imported by each desktop test
module through ``pytest_plugins``; the rest is imported as usual. (PYTEST_DONT_REWRITE:
the modules import this before pytest loads it as a plugin, and its checks raise their
own AssertionError messages.)
"""

from __future__ import annotations

import contextlib
import gc
import os
import random
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import PASSPHRASE, WAIT, Forwarder, skip_unless_ci
from xvfb import virtual_display, xvfb_available

try:
    import tkinter as tk
except ImportError:
    skip_unless_ci("tkinter is missing (apt install python3-tk)")

from securex.desktop.app import App, AppOptions, AppState

# Under two CPU burners on two cores a join (scrypt, PAKE with every member) takes a few
# seconds; every wait still ends.
SLOW = 3 * WAIT


@pytest.fixture(scope="session")
def display() -> Iterator[str]:
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    if not xvfb_available():
        skip_unless_ci("no DISPLAY and Xvfb is not installed (apt install xvfb) to make one")
    with virtual_display() as name:
        os.environ["DISPLAY"] = name
        try:
            yield name
        finally:
            os.environ.pop("DISPLAY", None)


@pytest.fixture
def config_dir(tmp_path, monkeypatch) -> Path:
    """This test's own config directory (settings, identity keys): never the real ~/.config."""
    path = tmp_path / "config"
    monkeypatch.setenv("SECUREX_CONFIG_DIR", str(path))
    monkeypatch.delenv("SECUREX_THEME", raising=False)
    return path


@pytest.fixture
def root(display, config_dir) -> Iterator[tk.Tk]:
    window = tk.Tk(className="SecureXTest")
    yield window
    with contextlib.suppress(tk.TclError):   # the app may have closed it already
        window.destroy()
    # Tk's objects must be freed in this thread. Any left in a reference cycle would be
    # freed by the collector in whatever thread it next runs in (a session's network
    # thread in the next test), and Tcl aborts the whole process for that.
    del window
    gc.collect()


class NoBrowser:
    """Takes the place of LAN room discovery: these tests type the address."""

    def __init__(self, sink: Callable[[object], None]) -> None:
        self.sink = sink

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def click(root: tk.Tk, button) -> None:
    """Click a card's button as a person would: once it takes clicks (buttons that have
    just appeared ignore them for a moment)."""
    pump_until(root, lambda: button.winfo_ismapped() and button.instate(["!disabled"]), "the button to take clicks")
    button.invoke()


def pump_until(root: tk.Tk, condition: Callable[[], bool], what: str, timeout: float = SLOW) -> None:
    """Run Tk until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        try:
            root.update()
        except tk.TclError:   # the window was destroyed: the condition decides
            if condition():
                return
            raise AssertionError(f"the window closed while waiting for {what}") from None
        time.sleep(0.005)   # yield the CPU to the network threads between polls


def window_exists(root: tk.Tk) -> bool:
    try:
        return bool(root.winfo_exists())
    except tk.TclError:
        return False


def make_app(root: tk.Tk, **options) -> App:
    """The app as ``securex`` would start it, with these command-line options."""
    return App(root, AppOptions(**options), browser_factory=NoBrowser)


def joined_app(root: tk.Tk, port: int, name: str = "Alice", passphrase: str = PASSPHRASE, **options) -> App:
    """--host, --name and a passphrase given: the app connects without waiting for a click."""
    app = make_app(root, host="127.0.0.1", port=port, name=name, passphrase=passphrase, **options)
    pump_until(root, lambda: app.state == AppState.IN_ROOM, f"{name} to join")
    return app


def fill(entry, text: str) -> None:
    entry.delete(0, "end")
    entry.insert(0, text)


def connect_via_dialog(app: App, port: int, name: str = "Alice", passphrase: str = PASSPHRASE,
                       host: str = "127.0.0.1") -> None:
    dialog = app.dialog
    fill(dialog.host_entry, host)
    fill(dialog.port_entry, str(port))
    fill(dialog.name_entry, name)
    fill(dialog.passphrase_entry, passphrase)
    dialog.connect_button.invoke()


def type_message(app: App, text: str, *, enter: bool = True) -> None:
    """Type into the message box and press Enter, as a user would."""
    box = app.chat.composer.input
    box.focus_force()
    box.insert("insert", text)
    if enter:
        box.event_generate("<Return>")


def transcript(app: App) -> str:
    """The conversation as it reads (safety codes are drawn with no-break spaces)."""
    return app.transcript.content().replace("\u00a0", " ")


def tagged_text(app: App, tag: str) -> str:
    text = app.transcript.text
    ranges = text.tag_ranges(tag)
    return "".join(text.get(a, b) for a, b in zip(ranges[::2], ranges[1::2], strict=True))


def member_rows(app: App) -> list[tuple[str, str, str]]:
    """(name line, safety code, colour) of each row of the members panel."""
    return [(str(name.cget("text")), str(code.cget("text")), str(name.cget("foreground")))
            for name, code in app.chat.sidebar.rows]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_to_restart_on() -> int:
    """A free port below the range the kernel hands out for port 0 and outgoing
    connections: a server stopped and started again on it will not find it taken by
    another test meanwhile."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(100):
        port = random.randrange(max(1024, low - 8000), low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below the ephemeral range")


def settle_errands(root: tk.Tk, app: App) -> None:
    """Until the errand thread has nothing waiting and its results are delivered."""
    pump_until(root, lambda: app.background.idle, "the errands to finish")


# -- a link to the relay that the test can cut ------------------------------------------------------

class CuttableLink(Forwarder):
    """A forwarder in front of the relay. ``cut()`` closes every connection through it
    and turns new ones away (the client sees its link drop and keeps retrying) until
    ``restore()``. ``bytes_per_second`` slows what flows towards the client, so a transfer
    takes long enough to watch its progress (``client_sends_too`` slows the other way as well)."""

    def __init__(self, server_port: int, bytes_per_second: float | None = None, client_sends_too: bool = False) -> None:
        self.bytes_per_second = bytes_per_second
        self.client_sends_too = client_sends_too
        self._open = threading.Event()
        self._open.set()
        super().__init__(server_port)

    def cut(self) -> None:
        self._open.clear()
        self._close_all()

    def restore(self) -> None:
        self._open.set()

    def _admit(self) -> bool:
        return self._open.is_set()

    def _connected(self, client: socket.socket, upstream: socket.socket) -> None:
        self._start(self._carry, client, upstream)

    def _carry(self, client: socket.socket, upstream: socket.socket) -> None:
        pairs = {client: upstream, upstream: client}
        started = time.monotonic()
        carried = {client: 0, upstream: 0}
        throttled = (upstream, client) if self.client_sends_too else (upstream,)
        try:
            while not self._stopping.is_set():
                readable, _, _ = select.select(list(pairs), [], [], 0.05)
                for sock in readable:
                    data = sock.recv(16384)
                    if not data:
                        return
                    pairs[sock].sendall(data)
                    if sock in throttled and self.bytes_per_second:
                        carried[sock] += len(data)
                        ahead = carried[sock] / self.bytes_per_second - (time.monotonic() - started)
                        if ahead > 0:
                            time.sleep(min(ahead, 0.2))   # the throttle itself, not a wait for an event
        except (OSError, ValueError):     # ValueError: cut() closed a socket while select() had it
            return
        finally:
            for sock in (client, upstream):
                sock.close()


@contextlib.contextmanager
def cuttable_link(server_port: int, bytes_per_second: float | None = None,
                  client_sends_too: bool = False) -> Iterator[CuttableLink]:
    link = CuttableLink(server_port, bytes_per_second, client_sends_too)
    try:
        yield link
    finally:
        link.stop()
