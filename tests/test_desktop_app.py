"""The desktop app, driven like a user would: a real Tk in a real X server, a
real relay on port 0, and core clients as the other members.

When DISPLAY is unset the suite starts its own Xvfb (tests/xvfb.py). Tk is
pumped with ``root.update()`` until a condition holds or a deadline passes;
no test sleeps for a fixed time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import queue
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from helpers import skip_unless_ci  # noqa: E402

try:
    import tkinter as tk
except ImportError:
    skip_unless_ci("tkinter is missing (apt install python3-tk)")

from securex.desktop import app as desktop_app  # noqa: E402
from securex.session.runner import ChatMessage, MemberJoined, MemberLeft, MembersChanged  # noqa: E402
from securex.desktop.app import BATCH, App  # noqa: E402
from securex.desktop.theme import DARK  # noqa: E402
from securex.errors import EXIT_ERROR, EXIT_OK  # noqa: E402
from helpers import (PASSPHRASE, WAIT, CoreClient, Process, core_clients, python_env,  # noqa: E402
                     running_server)
from xvfb import virtual_display, xvfb_available  # noqa: E402


# -- fixtures and helpers ---------------------------------------------------------

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
def config_home(tmp_path, monkeypatch) -> str:
    """Where last.json goes: never the real ~/.config."""
    path = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(path))
    monkeypatch.delenv("SECUREX_THEME", raising=False)
    return path


@pytest.fixture
def root(display, config_home) -> Iterator[tk.Tk]:
    window = tk.Tk(className="SecureXTest")
    yield window
    with contextlib.suppress(tk.TclError):   # the app may have closed it already
        window.destroy()


def make_args(port: int | None = None, name: str | None = None, *, host: str | None = None,
              no_reconnect: bool = False) -> argparse.Namespace:
    return argparse.Namespace(host=host, port=port, name=name, no_reconnect=no_reconnect, cli=False)


def direct_app(root: tk.Tk, port: int, name: str = "Alice", passphrase: str = PASSPHRASE) -> App:
    """--host, --name and a passphrase given: the app connects without the dialog."""
    app = App(root, make_args(port, name, host="127.0.0.1"), passphrase)
    pump_until(root, lambda: app.state == "connected", f"{name} to join")
    return app


def pump_until(root: tk.Tk, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Run Tk until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        try:
            root.update()
        except tk.TclError:   # the window was destroyed: the condition decides
            if condition():
                return
            raise AssertionError(f"the window closed while waiting for {what}") from None
        time.sleep(0.005)   # yield the CPU to the network threads between polls


def fill(entry, text: str) -> None:
    entry.delete(0, "end")
    entry.insert(0, text)


def type_message(app: App, text: str, *, enter: bool = True) -> None:
    """Type into the message box and press Enter, as a user would."""
    box = app.chat.input
    box.focus_force()
    box.insert("insert", text)
    if enter:
        box.event_generate("<Return>")


def connect_via_dialog(app: App, port: int, name: str, passphrase: str) -> None:
    fill(app.dialog.host_entry, "127.0.0.1")
    fill(app.dialog.port_entry, str(port))
    fill(app.dialog.name_entry, name)
    fill(app.dialog.passphrase_entry, passphrase)
    app.dialog.connect_button.invoke()


def transcript(app: App) -> str:
    return app.chat.transcript_text()


def members(app: App) -> list[str]:
    return list(app.chat.members.get(0, "end"))


# -- the connect dialog ---------------------------------------------------------

def test_dialog_validates_inline_and_prefills_last_used(root, config_home):
    settings = config_home / "securex" / "last.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"host": "192.168.1.20", "port": 6000, "name": "Dana"}))
    app = App(root, make_args(), None)
    root.update()
    dialog = app.dialog
    assert dialog.winfo_ismapped() and not app.chat.winfo_ismapped()
    assert (dialog.host.get(), dialog.port.get(), dialog.name.get()) == ("192.168.1.20", "6000", "Dana")
    assert dialog.passphrase.get() == ""

    fill(dialog.name_entry, "   ")
    dialog.connect_button.invoke()
    assert dialog.error_label.cget("text") == "Enter a display name."
    assert root.focus_lastfor() == dialog.name_entry
    fill(dialog.name_entry, "Dana")
    fill(dialog.port_entry, "99999")
    dialog.connect_button.invoke()
    assert "1 to 65535" in dialog.error_label.cget("text")
    fill(dialog.port_entry, "6000")
    dialog.passphrase_entry.focus_force()
    dialog.passphrase_entry.event_generate("<Return>")   # Enter in a field is Connect
    assert "passphrase" in dialog.error_label.cget("text")
    assert app.session is None and app.state == "dialog"


def test_generate_fills_a_strong_passphrase_and_offers_to_copy_it(root):
    app = App(root, make_args(), None)
    dialog = app.dialog
    assert str(dialog.passphrase_entry.cget("show")) == "\u2022"
    dialog.generate_button.invoke()
    root.update()
    generated = dialog.passphrase.get()
    assert len(generated.split("-")) >= 6
    assert str(dialog.passphrase_entry.cget("show")) == ""   # shown so it can be read out
    assert dialog.copy_button.winfo_ismapped()
    dialog.copy_button.invoke()
    assert root.clipboard_get() == generated
    dialog.show_toggle.invoke()
    assert str(dialog.passphrase_entry.cget("show")) == "\u2022"


def test_connect_through_the_dialog_then_send_and_receive(root, config_home):
    with running_server() as server, core_clients(server.port, "Bob") as (bob,):
        app = App(root, make_args(), None)
        connect_via_dialog(app, server.port, "Alice", PASSPHRASE)
        assert app.dialog.busy
        pump_until(root, lambda: app.state == "connected", "Alice to join")
        assert app.chat.winfo_ismapped() and not app.dialog.winfo_ismapped()
        assert "Secure X" in root.title()
        assert str(root.focus_get()) == str(app.chat.input)   # ready to type at once
        pump_until(root, lambda: members(app)[-1].endswith("Bob"), "Bob named in the list")
        assert members(app)[0].endswith("Alice  (you)") and app.chat.member_count.cget("text") == "2/5"
        status = " ".join(label.cget("text") for label in (app.chat.status_state, *app.chat.status_details))
        assert "Connected" in status and f"127.0.0.1:{server.port}" in status and "AES-256-GCM" in status
        assert app._fingerprint in status

        type_message(app, "hello Bob")
        assert bob.wait_message("hello Bob").sender == "Alice"
        type_message(app, "line one", enter=False)
        app.chat.input.event_generate("<Shift-Return>")      # a new line, not sent
        assert app.chat.input.get("1.0", "end-1c") == "line one\n"
        type_message(app, "line two")
        assert bob.wait_message("line one\nline two")
        assert app.chat.input.get("1.0", "end-1c") == ""

        bob.session.send_text("hi Alice")
        pump_until(root, lambda: "hi Alice" in transcript(app), "Bob's message")
        pump_until(root, lambda: "line two" in transcript(app), "Alice's own message")
        ranges = app.chat.transcript.tag_ranges("own")
        own_text = "".join(app.chat.transcript.get(a, b) for a, b in zip(ranges[::2], ranges[1::2], strict=True))
        assert "hello Bob" in own_text and "hi Alice" not in own_text   # drawn differently

    saved = json.loads((config_home / "securex" / "last.json").read_text())
    assert saved == {"host": "127.0.0.1", "port": server.port, "name": "Alice"}
    assert PASSPHRASE not in (config_home / "securex" / "last.json").read_text()


def test_members_list_follows_joins_and_leaves(root):
    with running_server() as server, core_clients(server.port, "Bob"):
        app = direct_app(root, server.port)
        assert not app.dialog.winfo_ismapped()   # flags and passphrase given: no dialog
        carol = CoreClient(server.port, "Carol")
        carol.join()
        # Carol is counted as soon as the server says someone joined, named once her hello arrives.
        pump_until(root, lambda: [m.split()[-1] for m in members(app)] == ["(you)", "Bob", "Carol"],
                   "Carol in the list")
        assert app.chat.member_count.cget("text") == "3/5"
        assert "Carol joined" in transcript(app)
        carol.close()
        pump_until(root, lambda: app.chat.member_count.cget("text") == "2/5", "Carol gone from the list")
        assert "Carol left" in transcript(app)


# -- leaving ---------------------------------------------------------------------

@pytest.mark.parametrize("how", ["<quit>", "{quit}", "/quit", "close window", "ctrl+q"])
def test_leaving_is_clean_and_the_others_see_it(root, how):
    with running_server() as server, core_clients(server.port, "Bob") as (bob,):
        app = direct_app(root, server.port)
        if how == "close window":
            root.tk.call(root.protocol("WM_DELETE_WINDOW"))   # what the window manager does
        elif how == "ctrl+q":
            app.chat.input.focus_force()
            app.chat.input.event_generate("<Control-q>")
        else:
            type_message(app, how)
        pump_until(root, lambda: not root_exists(root), "the window to close")
        assert app.exit_status == EXIT_OK
        bob.wait_for(MemberLeft, lambda e: e.name == "Alice")
        assert not any(isinstance(e, ChatMessage) and not e.own for e in bob.seen)  # nothing sent


def root_exists(root: tk.Tk) -> bool:
    try:
        return bool(root.winfo_exists())
    except tk.TclError:
        return False


# -- failures a person can act on ----------------------------------------------------

def test_wrong_passphrase_returns_to_the_dialog_to_retype_it(root):
    with running_server() as server, core_clients(server.port, "Bob") as (bob,):
        app = App(root, make_args(), None)
        connect_via_dialog(app, server.port, "Alice", "not-the-room-passphrase")
        pump_until(root, lambda: app.state == "dialog" and not app.dialog.busy, "the refusal")
        assert "Wrong passphrase" in app.dialog.error_label.cget("text")
        assert root.focus_lastfor() == app.dialog.passphrase_entry
        assert app.dialog.passphrase_entry.selection_present()   # typing replaces it
        fill(app.dialog.passphrase_entry, PASSPHRASE)
        app.dialog.connect_button.invoke()
        pump_until(root, lambda: app.state == "connected", "the second try")
        bob.wait_for(MembersChanged, lambda e: "Alice" in e.names)


def test_room_full_and_unreachable_server_are_explained_in_the_dialog(root):
    with running_server(max_clients=1) as server, core_clients(server.port, "Bob"):
        app = App(root, make_args(), None)
        connect_via_dialog(app, server.port, "Alice", PASSPHRASE)
        pump_until(root, lambda: app.state == "dialog" and not app.dialog.busy, "room full")
        assert "full" in app.dialog.error_label.cget("text")
    with socket.socket() as probe:   # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    connect_via_dialog(app, free_port, "Alice", PASSPHRASE)
    pump_until(root, lambda: app.state == "dialog" and not app.dialog.busy, "unreachable")
    assert "Nothing is listening" in app.dialog.error_label.cget("text")


def test_server_loss_disables_input_and_reconnects_to_a_restarted_server(root):
    with running_server() as server:
        port = server.port
        app = direct_app(root, port)
        old_fingerprint = app._fingerprint
    # The server has shut down: input is locked and a Reconnect action is offered.
    pump_until(root, lambda: app.chat.banner_visible and app.state in ("lost", "reconnecting"), "loss")
    assert str(app.chat.input.cget("state")) == "disabled"
    assert "Reconnect" in app.chat.banner_button.cget("text")
    assert "shut down" in transcript(app)
    with running_server(port=port) as restarted, core_clients(restarted.port, "Bob") as (bob,):
        app.chat.banner_button.invoke()   # do not wait out the back-off
        pump_until(root, lambda: app.state == "connected", "the reconnection")
        assert not app.chat.banner_visible
        assert str(app.chat.input.cget("state")) == "normal"
        assert "Reconnected" in transcript(app)
        assert app._fingerprint != old_fingerprint   # a new server run has a new room salt
        type_message(app, "back again")
        bob.wait_message("back again")


def test_without_reconnect_a_lost_server_offers_to_connect_again(root):
    with running_server() as server:
        app = App(root, make_args(server.port, "Alice", host="127.0.0.1", no_reconnect=True), PASSPHRASE)
        pump_until(root, lambda: app.state == "connected", "Alice to join")
    pump_until(root, lambda: app.state == "disconnected", "the disconnection")
    assert str(app.chat.input.cget("state")) == "disabled"
    assert "shut down" in transcript(app)
    app.chat.banner_button.invoke()   # "Connect again..."
    assert app.state == "dialog" and app.dialog.winfo_manager()
    assert app.dialog.host.get() == "127.0.0.1" and app.dialog.passphrase.get() == PASSPHRASE


def test_callback_errors_are_shown_not_printed(root, capsys):
    app = App(root, make_args(), None)
    root.after(0, lambda: 1 / 0)
    pump_until(root, lambda: "ZeroDivisionError" in app.dialog.error_label.cget("text"), "the error")
    assert "Traceback" not in capsys.readouterr().err


def test_no_display_says_to_use_the_terminal_client(monkeypatch, capsys, config_home):
    monkeypatch.setenv("DISPLAY", ":99999")   # no X server there
    assert desktop_app.run(make_args(), None) == EXIT_ERROR
    assert "--cli" in capsys.readouterr().err


# -- notifications, Unicode, bursts ----------------------------------------------------

def test_unread_count_and_bell_while_the_window_is_not_focused(root, monkeypatch):
    rings: list[int] = []
    monkeypatch.setattr(root, "bell", lambda *a, **k: rings.append(1))
    with running_server() as server, core_clients(server.port, "Bob") as (bob,):
        app = direct_app(root, server.port)
        root.event_generate("<FocusOut>")
        bob.session.send_text("one")
        bob.session.send_text("two")
        pump_until(root, lambda: root.title().startswith("(2) Secure X"), "the unread count")
        assert 1 <= len(rings) <= 2   # at most one bell per drain tick, not one per message
        rung = len(rings)
        root.event_generate("<FocusIn>")
        assert root.title().startswith("Secure X")
        bob.session.send_text("three")
        pump_until(root, lambda: "three" in transcript(app), "a message while focused")
        assert root.title().startswith("Secure X") and len(rings) == rung


def test_text_outside_the_basic_plane_is_replaced_not_dropped(root):
    with running_server() as server, core_clients(server.port, "Zo\u00eb \U0001F98A") as (zoe,):
        app = direct_app(root, server.port)
        zoe.session.send_text("party \U0001F389 time \U0001D11E!")
        pump_until(root, lambda: "party \ufffd time \ufffd!" in transcript(app), "the emoji message")
        assert "Zo\u00eb \ufffd" in transcript(app)
        assert any("Zo\u00eb \ufffd" in m for m in members(app))
        type_message(app, "right back \U0001F600")
        assert zoe.wait_message("right back \U0001F600")   # only the display is changed
        pump_until(root, lambda: "right back \ufffd" in transcript(app), "own emoji message")


def test_a_burst_of_1000_messages_is_drawn_in_bounded_batches(root):
    count = 1000
    with running_server() as server, core_clients(server.port, "Bob") as (bob,):
        app = direct_app(root, server.port)
        pump_until(root, lambda: app.chat.member_count.cget("text") == "2/5", "Bob in the list")
        for number in range(count):
            bob.session.send_text(f"burst {number}")
        # Let the whole burst arrive before Tk runs again, so the pump faces all of it at once.
        deadline = time.monotonic() + WAIT
        while app._events.qsize() < count:
            assert time.monotonic() < deadline, "the burst did not arrive"
            time.sleep(0.01)
        drawn_before = app.chat.message_count
        ticks_before = app.stats.ticks
        seen_at_keypress: list[int] = []
        app.chat.input.bind("<KeyPress-x>", lambda e: seen_at_keypress.append(app.chat.message_count), add="+")
        app.chat.input.focus_force()
        pump_until(root, lambda: app.chat.message_count > drawn_before, "the first batch")
        # A key pressed mid-burst is handled before the burst is over: the window responds.
        app.chat.input.event_generate("<KeyPress-x>", when="tail")
        pump_until(root, lambda: app.chat.message_count - drawn_before == count, "the whole burst")
        assert seen_at_keypress and seen_at_keypress[0] - drawn_before < count
        assert app.stats.largest_batch == BATCH
        assert app.stats.ticks - ticks_before >= math.ceil(count / BATCH)
        text = transcript(app)
        assert text.index("burst 0\n") < text.index("burst 500\n") < text.index("burst 999\n")
        assert app.chat.following and app.chat.transcript.yview()[1] == 1.0

        # Scrolled up to read, the view stays put while new messages arrive.
        for _ in range(5):
            app.chat.transcript.event_generate("<Button-4>")
        pump_until(root, lambda: not app.chat.following, "the scroll up")
        top_line = app.chat.transcript.index("@0,0")
        bob.session.send_text("one more")
        pump_until(root, lambda: "one more" in transcript(app), "one more message")
        assert app.chat.transcript.index("@0,0") == top_line


def test_dark_theme_from_the_environment(root, monkeypatch):
    monkeypatch.setenv("SECUREX_THEME", "dark")
    app = App(root, make_args(), None)
    assert app.theme.palette is DARK
    assert app.chat.transcript.cget("background") == DARK.surface


def test_session_events_never_come_from_an_abandoned_attempt(root):
    """Cancel while connecting: the old session's events are ignored for good."""
    with running_server() as server:
        app = App(root, make_args(), None)
        connect_via_dialog(app, server.port, "Alice", PASSPHRASE)
        old_events: queue.Queue = app._events
        app.dialog.quit_button.invoke()   # it reads Cancel while connecting
        assert app.state == "dialog" and app.session is None
        assert "cancelled" in app.dialog.error_label.cget("text")
        pump_until(root, lambda: old_events.qsize() > 0, "the old session to report", timeout=WAIT)
        root.update()
        assert app.state == "dialog"


def test_client_py_opens_the_app_and_sigterm_leaves_cleanly(display, config_home):
    """The real entry point: ``python client.py`` with everything given on the command line."""
    with running_server() as server, core_clients(server.port, "Bob") as (bob,):
        env = python_env(SECUREX_PASSPHRASE=PASSPHRASE, DISPLAY=os.environ["DISPLAY"],
                         XDG_CONFIG_HOME=str(config_home))
        app = Process(["client.py", "--host", "127.0.0.1", "--port", str(server.port), "--name", "Eve"], env)
        try:
            bob.wait_for(MemberJoined, lambda e: e.name == "Eve")
            app.proc.terminate()
            assert app.wait() == EXIT_OK
            bob.wait_for(MemberLeft, lambda e: e.name == "Eve")
            assert "Traceback" not in app.output
        finally:
            app.kill()
