"""The connect dialog of the desktop app, driven like a user would: a real Tk in a real
X server (Xvfb when DISPLAY is unset), a real relay on port 0 where one is needed.
The room list above the fields has tests of its own (test_desktop_rooms.py)."""

from __future__ import annotations

import json
import socket

from crypto_utils import generate_passphrase
from desktop_helpers import (SLOW, connect_via_dialog, fill, free_port, make_app, member_rows, pump_until,
                             window_exists)
from helpers import PASSPHRASE, CoreClient, core_clients, running_server
from securex.desktop import main as desktop_main
from securex.desktop.app import AppOptions, AppState
from securex.desktop.dialog import HIDDEN_CHAR
from securex.errors import EXIT_ERROR, EXIT_OK
from securex.protocol import DEFAULT_PORT

pytest_plugins = ("desktop_helpers",)   # the display, config_dir and root fixtures


def remember(config_dir, **settings) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "settings.json").write_text(json.dumps(settings))


def test_dialog_validates_inline_and_prefills_what_was_remembered(root, config_dir):
    remember(config_dir, host="192.168.1.20", port=6000, name="Dana")
    app = make_app(root)
    root.update()
    dialog = app.dialog
    assert dialog.winfo_ismapped() and not app.chat.winfo_ismapped()
    assert (dialog.host.get(), dialog.port.get(), dialog.name.get()) == ("192.168.1.20", "6000", "Dana")
    assert dialog.passphrase.get() == ""

    fill(dialog.name_entry, "   ")
    dialog.connect_button.invoke()
    assert dialog.error_label.cget("text") == "The name is empty: enter a display name."
    assert root.focus_lastfor() == dialog.name_entry and dialog.name_entry.instate(["invalid"])
    fill(dialog.name_entry, "Dana")
    fill(dialog.port_entry, "99999")
    dialog.connect_button.invoke()
    assert "1 to 65535" in dialog.error_label.cget("text")
    fill(dialog.port_entry, "6000")
    dialog.passphrase_entry.focus_force()
    dialog.passphrase_entry.event_generate("<Return>")   # Enter in a field is Connect
    assert "passphrase" in dialog.error_label.cget("text")
    assert app.session is None and app.state == AppState.DIALOG


def test_the_red_border_and_message_go_once_the_field_is_fixed(root):
    app = make_app(root, host="127.0.0.1", name="Alice")
    dialog = app.dialog
    fill(dialog.port_entry, "70000")
    dialog.connect_button.invoke()
    assert dialog.port_entry.instate(["invalid"]) and "65535" in dialog.error_label.cget("text")
    fill(dialog.port_entry, "700")            # still being typed: 700 is a valid port already
    root.update()
    assert not dialog.port_entry.instate(["invalid"])
    assert dialog.error_label.cget("text") == ""

    fill(dialog.name_entry, "")
    dialog.connect_button.invoke()
    assert dialog.name_entry.instate(["invalid"])
    dialog.name_entry.insert("end", "*")      # still wrong: a name cannot start with *
    root.update()
    assert dialog.name_entry.instate(["invalid"]) and dialog.error_label.cget("text")
    fill(dialog.name_entry, "Alice")
    root.update()
    assert not dialog.name_entry.instate(["invalid"]) and dialog.error_label.cget("text") == ""


def test_the_card_keeps_its_size_whatever_the_message_under_the_fields(root):
    """New-user finding: the centred card moved as the hint or error took one line or two."""
    app = make_app(root, host="127.0.0.1", name="Alice")
    dialog, card = app.dialog, app.dialog.error_label.master
    heights = set()
    for error in ("", "The port is a number from 1 to 65535 (usually 5050).",
                  "Wrong passphrase: it does not match the 2 members present. Check it with them and try again. "
                  "If you are sure of it, you can join anyway.",
                  "Secure X is already running as Bob on this computer (another window or terminal). Use that "
                  "one, or join under another name."):
        for passphrase in ("", "x", generate_passphrase()):
            dialog.show_error(error)
            fill(dialog.passphrase_entry, passphrase)
            root.update_idletasks()
            heights.add(card.winfo_reqheight())
    assert len(heights) == 1, heights


def test_an_address_pasted_with_its_port_fills_the_port_field(root):
    with running_server() as server:
        app = make_app(root)
        connect_via_dialog(app, DEFAULT_PORT, host=f"127.0.0.1:{server.port}")   # as --discover prints it
        assert app.dialog.host.get() == "127.0.0.1" and app.dialog.port.get() == str(server.port)
        pump_until(root, lambda: app.state == AppState.IN_ROOM, "joining")
    app = make_app(root)
    connect_via_dialog(app, DEFAULT_PORT, host="127.0.0.1:http")
    assert app.state == AppState.DIALOG and "not a port" in app.dialog.error_label.cget("text")


def test_ctrl_a_selects_the_whole_field(root):
    app = make_app(root, host="192.168.1.20", name="Dana")
    root.update()
    for entry in app.dialog.entries:
        fill(entry, "something to replace")
        entry.focus_force()
        entry.icursor(3)
        entry.event_generate("<Control-a>")
        assert entry.selection_present()
        assert entry.index("sel.first") == 0 and entry.index("sel.last") == len("something to replace")
        assert entry.index("insert") == len("something to replace")


def test_escape_closes_the_dialog(root):
    app = make_app(root)
    root.update()
    app.dialog.host_entry.focus_force()
    app.dialog.host_entry.event_generate("<Escape>")
    pump_until(root, lambda: not window_exists(root), "the window to close")
    assert app.exit_status == EXIT_OK


def test_cancel_or_escape_while_connecting_returns_to_the_dialog(root):
    # A server that accepts the connection and then says nothing: the attempt hangs.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        app = make_app(root)
        for how in ("cancel button", "escape"):
            connect_via_dialog(app, port)
            assert app.state == AppState.CONNECTING and app.dialog.busy
            assert app.dialog.quit_button.cget("text") == "Cancel"
            old_session = app.session
            if how == "cancel button":
                app.dialog.quit_button.invoke()
            else:
                app.dialog.host_entry.event_generate("<Escape>")
            assert app.state == AppState.DIALOG and app.session is None and not app.dialog.busy
            assert "cancelled" in app.dialog.error_label.cget("text")
            assert app.dialog.quit_button.cget("text") == "Quit"
            pump_until(root, lambda old=old_session: not old.is_alive, "the abandoned session to end")
            root.update()
            assert app.state == AppState.DIALOG and window_exists(root)   # its events changed nothing


def test_generate_fills_a_strong_passphrase_and_offers_to_copy_it(root):
    app = make_app(root)
    dialog = app.dialog
    assert str(dialog.passphrase_entry.cget("show")) == HIDDEN_CHAR
    dialog.generate_button.invoke()
    root.update()
    generated = dialog.passphrase.get()
    assert len(generated.split("-")) >= 6
    assert str(dialog.passphrase_entry.cget("show")) == ""   # shown so it can be read out
    assert dialog.copy_button.winfo_ismapped()
    dialog.copy_button.invoke()
    assert root.clipboard_get() == generated
    dialog.show_toggle.invoke()
    assert str(dialog.passphrase_entry.cget("show")) == HIDDEN_CHAR


def test_a_remembered_port_goes_with_the_remembered_server(root, config_dir):
    remember(config_dir, host="192.168.1.20", port=47050, name="Dana")
    app = make_app(root, host="127.0.0.1")    # --host names another server
    assert app.dialog.port.get() == str(DEFAULT_PORT)


def test_the_port_field_is_the_one_source_of_truth(root, config_dir):
    """Everything on the command line but the port: the attempt uses the port the field
    shows, and the error names that same port."""
    nothing_there = free_port()
    remember(config_dir, host="127.0.0.1", port=nothing_there, name="Dana")
    app = make_app(root, host="127.0.0.1", name="Dana", passphrase=PASSPHRASE)
    assert app.dialog.port.get() == str(nothing_there)
    pump_until(root, lambda: app.state == AppState.DIALOG and not app.dialog.busy, "the failed attempt")
    error = app.dialog.error_label.cget("text")
    assert f"127.0.0.1:{nothing_there}" in error and app.dialog.port.get() == str(nothing_there)


def test_wrong_passphrase_returns_to_the_dialog_to_retype_it(root):
    # Two members who confirmed each other: a third with another passphrase is refused.
    with running_server() as server, core_clients(server.port, "Bob", "Carol") as (bob, _):
        app = make_app(root)
        connect_via_dialog(app, server.port, passphrase="not-the-room-passphrase")
        pump_until(root, lambda: app.state == AppState.DIALOG and not app.dialog.busy, "the refusal")
        assert "passphrase" in app.dialog.error_label.cget("text").lower()
        assert root.focus_lastfor() == app.dialog.passphrase_entry
        assert app.dialog.passphrase_entry.selection_present()   # typing replaces it
        assert app.dialog.join_anyway_button.winfo_ismapped()
        connect_at = app.dialog.connect_button.winfo_rooty()
        fill(app.dialog.passphrase_entry, PASSPHRASE)
        # "Join anyway" was for the refused passphrase; once it is retyped it goes (a review
        # finding: it joined with the old one while the field showed the new), and so does
        # the refusal; Connect stays where it was (a tester's click missed it as it moved).
        assert not app.dialog.join_anyway_button.winfo_manager()
        assert app.dialog.error_label.cget("text") == ""
        root.update_idletasks()
        assert app.dialog.connect_button.winfo_rooty() == connect_at
        app.dialog.connect_button.invoke()
        pump_until(root, lambda: app.state == AppState.IN_ROOM, "the second try")
        bob.wait_members("Alice", "Carol", timeout=SLOW)


def test_a_typo_against_the_one_member_present_can_be_retyped_from_the_room(root):
    """With one member present and nobody confirmed, a different passphrase is a tie: you
    are let in, told nobody shares it, and offered to leave and type it again (a
    tester's finding: there was no way back to the dialog but quitting)."""
    with running_server() as server, core_clients(server.port, "Bob") as (bob,):
        app = make_app(root)
        connect_via_dialog(app, server.port, passphrase="a typo in the passphrase")
        pump_until(root, lambda: app.state == AppState.IN_ROOM and app.chat.question.visible, "the offer to retype")
        assert app.chat.question.label.cget("text").startswith("Nobody here shares your passphrase.")
        [retype, _] = app.chat.question.buttons
        assert retype.cget("text") == "Retype passphrase"
        retype.invoke()
        pump_until(root, lambda: app.state == AppState.DIALOG, "the dialog, to type it again")
        assert app.dialog.error_label.cget("text") == "Type the room's passphrase again."
        assert root.focus_lastfor() == app.dialog.passphrase_entry
        fill(app.dialog.passphrase_entry, PASSPHRASE)
        app.dialog.connect_button.invoke()
        pump_until(root, lambda: app.state == AppState.IN_ROOM, "the second try")
        bob.wait_members("Alice", timeout=SLOW)
        assert not app.chat.question.visible and "nobody here" not in app.chat.status_text


def test_sure_of_a_passphrase_the_members_present_do_not_share_one_joins_anyway(root):
    """Two members who confirmed each other may be one stranger holding the room: the
    refused newcomer may insist, and enters alone, told so."""
    with running_server() as server, core_clients(server.port, "Bob", "Carol") as (bob, _):
        app = make_app(root)
        connect_via_dialog(app, server.port, passphrase="our-own-passphrase-for-sure")
        pump_until(root, lambda: app.state == AppState.DIALOG and not app.dialog.busy, "the refusal")
        assert app.dialog.error_label.cget("text").endswith("you can join anyway.")
        app.dialog.join_anyway_button.invoke()
        pump_until(root, lambda: app.state == AppState.IN_ROOM, "in, alone")
        pump_until(root, lambda: "You joined anyway" in app.transcript.content(), "the warning")
        assert [row[0].split()[-1] for row in member_rows(app)] == ["(you)"]
        assert bob.members_now() == ["Carol"]
        # The status bar says so too, not a plain "Connected" (a tester's finding).
        assert "nobody here shares your passphrase" in app.chat.status_text
        dana = CoreClient(server.port, "Dana", passphrase="our-own-passphrase-for-sure")
        try:
            dana.join()
            pump_until(root, lambda: "nobody here" not in app.chat.status_text, "Dana confirming it")
            assert app.chat.status_text.startswith("\u25cf Connected")
        finally:
            dana.close()


def test_room_full_and_unreachable_server_are_explained_in_the_dialog(root):
    with running_server(max_clients=1) as server, core_clients(server.port, "Bob"):
        app = make_app(root)
        connect_via_dialog(app, server.port)
        pump_until(root, lambda: app.state == AppState.DIALOG and not app.dialog.busy, "room full")
        assert "full" in app.dialog.error_label.cget("text")
    connect_via_dialog(app, free_port())
    pump_until(root, lambda: app.state == AppState.DIALOG and not app.dialog.busy, "unreachable")
    assert "Nothing is listening" in app.dialog.error_label.cget("text")


def test_callback_errors_are_shown_not_printed(root, capsys):
    app = make_app(root)
    root.after(0, lambda: 1 / 0)
    pump_until(root, lambda: "ZeroDivisionError" in app.dialog.error_label.cget("text"), "the error")
    assert "Traceback" not in capsys.readouterr().err


def test_no_display_says_to_use_the_terminal_client(monkeypatch, capsys, config_dir):
    monkeypatch.setenv("DISPLAY", ":99999")   # no X server there
    assert desktop_main.run(AppOptions()) == EXIT_ERROR
    assert "--cli" in capsys.readouterr().err
