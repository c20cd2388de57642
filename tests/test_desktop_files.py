"""File transfer in the desktop app, as a user sees it: an offer in the conversation
with Accept and Decline, a progress bar that moves, "Saved to …, verified" with Open
folder, the sender's card with a row per recipient and Cancel, a path pasted into the
message box, and the downloads folder. A real Tk on a real X server, a real relay on
port 0, core clients as the other members; links slowed down where a transfer must
last long enough to watch."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from desktop_helpers import (SLOW, click, cuttable_link, joined_app, make_app, member_rows, pump_until, settle_errands,
                             transcript, type_message)
from helpers import CoreClient, core_clients, running_server
from securex.desktop import files_view, paths, settings, transfers
from securex.bidi import drawn
from securex.desktop.app import AppOptions
from securex.desktop.files_view import IncomingCard, OutgoingCard, progress_text
from securex.session.files import PREPARING_NOTE_BYTES
from securex.text import human_size
from securex.events import FileFinished, FileOffered, FileProgress

pytest_plugins = ("desktop_helpers",)   # the display, config_dir and root fixtures

MB = 1_000_000


def make_file(folder: Path, name: str, size: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(os.urandom(size))
    return path


def offers(client: CoreClient) -> list[FileOffered]:
    return [e for e in client.drain() if isinstance(e, FileOffered)]


def offered_card(root, app, sender: CoreClient, path: Path) -> IncomingCard:
    """Once ``sender`` is listed, it offers ``path``: the card the window shows for it."""
    pump_until(root, lambda: len(member_rows(app)) == 2, f"{sender.name} in the list")
    sender.session.send_file(path)
    pump_until(root, lambda: app.transfers.cards.cards, "the offer")
    return next(iter(app.transfers.cards.cards.values()))


def offered_from_window(root, app, monkeypatch, path: Path, *, members: int) -> OutgoingCard:
    """Once ``members`` are listed, the user offers ``path`` with Send file: the card for it."""
    pump_until(root, lambda: len(member_rows(app)) == members, f"{members} in the list")
    asked: list[dict] = []
    monkeypatch.setattr(transfers.filedialog, "askopenfilename", lambda **options: asked.append(options) or str(path))
    app.chat.composer.file_button.invoke()
    assert asked[0]["initialdir"] == str(Path.home())       # not wherever the app was started from
    pump_until(root, lambda: app.transfers.cards.cards, "the offer's card")
    card = next(iter(app.transfers.cards.cards.values()))
    assert isinstance(card, OutgoingCard)
    return card


def watch_bar(root, card: IncomingCard, done, what: str) -> list[float]:
    """Pump until ``done()``, noting every value the card's progress bar shows."""
    seen: list[float] = []

    def note() -> bool:
        if card.bar.winfo_manager():
            value = float(card.bar.cget("value"))
            if not seen or seen[-1] != value:
                seen.append(value)
        return done()

    pump_until(root, note, what)
    return seen


def test_an_offer_is_accepted_shows_progress_and_is_saved_verified(root, tmp_path, monkeypatch):
    original = make_file(tmp_path / "bob", "holiday photos.zip", 3 * MB)
    downloads = tmp_path / "downloads"
    with running_server() as server, core_clients(server.port, "Bob") as (bob,), \
            cuttable_link(server.port, bytes_per_second=1.2 * MB) as slow:
        app = joined_app(root, slow.port, downloads=downloads)
        card = offered_card(root, app, bob, original)
        assert isinstance(card, IncomingCard)
        assert card.title.cget("text") == "Bob offers holiday photos.zip \u00b7 3.0 MB"   # name, size, sender
        assert card.accept_button.winfo_ismapped() and card.decline_button.winfo_ismapped()
        assert card.winfo_ismapped()   # it sits in the conversation

        click(root, card.accept_button)
        assert card.title.cget("text") == "Bob sends holiday photos.zip \u00b7 3.0 MB"   # no longer only offered
        seen = watch_bar(root, card, lambda: card.finished, "the transfer to finish")
        assert any(0 < value < 1000 for value in seen), seen     # the bar moved on the way
        assert seen == sorted(seen)
        saved = downloads / "holiday photos.zip"
        assert saved.read_bytes() == original.read_bytes()
        status = card.status.cget("text")
        assert status == f"\u2713  Saved to {paths.display_path(saved)}, verified (SHA-256)."
        assert card.title.cget("text") == "Bob sent holiday photos.zip \u00b7 3.0 MB"
        assert card.open_button.winfo_ismapped() and not card.bar.winfo_manager()
        bob.wait_for(FileFinished, lambda e: e.ok and e.peer == "Alice", timeout=SLOW)

        # Open folder: with no file manager here, a clear line instead of an error dialog.
        monkeypatch.setattr(paths, "opener_command", lambda folder: ["securex-no-such-opener", str(folder)])
        click(root, card.open_button)
        settle_errands(root, app)
        assert f"No program to open folders was found (securex-no-such-opener is not installed). " \
               f"The file is in {downloads}." in transcript(app)
        opened: list[str] = []
        monkeypatch.setattr(paths, "opener_command",
                            lambda folder: opened.append(str(folder)) or ["true", str(folder)])
        click(root, card.open_button)
        settle_errands(root, app)
        assert opened == [str(downloads)] and transcript(app).count("No program to open folders") == 1


def accepted_and_offered_again(root, card: IncomingCard) -> str:
    """Accept; the offer comes back (the folder cannot take the file): what the card says."""
    click(root, card.accept_button)
    pump_until(root, lambda: card.accept_button.winfo_ismapped(), "the offer to be open again")
    return card.status.cget("text")


def accepted_and_saved(root, card: IncomingCard) -> None:
    click(root, card.accept_button)
    pump_until(root, lambda: card.finished, "the file to be saved", timeout=SLOW)


def test_an_offer_too_big_for_the_disk_says_so_on_its_card_and_can_be_accepted_again(root, tmp_path, monkeypatch):
    original = make_file(tmp_path / "bob", "film.mkv", 2 * MB)
    downloads = tmp_path / "downloads"
    full = {"yes": True}
    real_disk_usage = shutil.disk_usage

    def disk_usage(folder):        # the downloads folder's disk is full until the user makes room
        usage = real_disk_usage(folder)
        return usage._replace(free=1000) if full["yes"] and Path(folder) == downloads else usage

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    with running_server() as server, core_clients(server.port, "Bob") as (bob,):
        app = joined_app(root, server.port, downloads=downloads)
        card = offered_card(root, app, bob, original)
        assert accepted_and_offered_again(root, card) == drawn(
            f"Not enough free space to save film.mkv ({human_size(2 * MB)}) in {downloads}: 1.0 kB free. Choose "
            "another folder for downloads, or put this one right, then accept it again.")
        assert card.decline_button.winfo_ismapped() and not card.finished
        assert len([c for c in app.chat.transfers.cards.values() if isinstance(c, IncomingCard)]) == 1
        full["yes"] = False
        accepted_and_saved(root, card)
        assert card.saved_to == downloads / "film.mkv"
        bob.wait_for(FileFinished, lambda e: e.ok and e.peer == "Alice", timeout=SLOW)


def test_accepting_into_a_downloads_folder_that_cannot_be_written_keeps_the_offer_open(root, tmp_path):
    """A folder chosen on another day may since have become a file (or read-only): the
    card says so before anything is asked of the sender, and accepts once it is put right."""
    original = make_file(tmp_path / "bob", "notes.txt", 1000)
    downloads = tmp_path / "downloads"
    downloads.write_text("not a folder any more")
    with running_server() as server, core_clients(server.port, "Bob") as (bob,):
        app = joined_app(root, server.port, downloads=downloads)
        card = offered_card(root, app, bob, original)
        assert accepted_and_offered_again(root, card) == drawn(
            f"Files cannot be saved in {paths.display_path(downloads)}: that is a file, not a folder. Choose "
            "another folder for downloads, or put this one right, then accept it again.")
        downloads.unlink()
        accepted_and_saved(root, card)
        assert card.saved_to == downloads / "notes.txt"


def test_buttons_that_just_appeared_ignore_a_click_meant_for_what_was_there(root):
    """A card arriving (or changing) under the pointer: the click, or the second half of
    a double-click, aimed at what was there must not decline a file or open a folder."""
    from tkinter import ttk

    from securex.desktop.files_view import Actions
    from securex.events import Member

    answered: list[tuple[str, str]] = []
    actions = Actions(accept=lambda file_id: answered.append(("accept", file_id)),
                      decline=lambda file_id: answered.append(("decline", file_id)),
                      cancel=lambda file_id: answered.append(("cancel", file_id)), open_folder=lambda folder: None)
    holder = ttk.Frame(root)
    holder.pack()
    card = IncomingCard(holder, FileOffered("abcd1234", "x.bin", 10, Member("Bob", "CODE", "Bob")), actions)
    card.pack()
    card.decline_button.invoke()          # at once
    assert answered == [] and card.decline_button.instate(["disabled"])
    click(root, card.accept_button)       # once it has settled
    assert answered == [("accept", "abcd1234")]
    card.cancel_button.invoke()           # Cancel took Accept's place: the double-click's second half
    assert answered == [("accept", "abcd1234")]
    holder.destroy()


def test_the_progress_line_gives_speed_and_time_left(root, tmp_path):
    original = make_file(tmp_path / "bob", "big.bin", 4 * MB)
    with running_server() as server, core_clients(server.port, "Bob") as (bob,), \
            cuttable_link(server.port, bytes_per_second=1 * MB) as slow:
        app = joined_app(root, slow.port, downloads=tmp_path / "downloads")
        card = offered_card(root, app, bob, original)
        click(root, card.accept_button)
        pump_until(root, lambda: "/s \u00b7" in card.status.cget("text") or card.finished, "a progress line")
        line = card.status.cget("text")
        assert "% \u00b7 " in line and " of 4.0 MB" in line and line.endswith(" left"), line
        pump_until(root, lambda: card.finished, "the end")


def test_an_offer_can_be_declined(root, tmp_path):
    original = make_file(tmp_path / "bob", "notes.txt", 1000)
    with running_server() as server, core_clients(server.port, "Bob") as (bob,):
        app = joined_app(root, server.port, downloads=tmp_path / "downloads")
        card = offered_card(root, app, bob, original)
        root.update_idletasks()
        height_with_buttons = card.winfo_reqheight()
        click(root, card.decline_button)
        bob.wait_for(FileFinished, lambda e: not e.ok and "declined" in e.message, timeout=SLOW)
        pump_until(root, lambda: card.finished, "the card to say so")
        assert card.status.cget("text") == "Declined notes.txt from Bob."
        assert card.title.cget("text") == "Bob offered notes.txt \u00b7 1.0 kB"    # over with: past tense
        assert not card.buttons.grid_slaves()
        root.update_idletasks()      # new-user finding: the emptied button row stayed, a blank band
        assert not card.buttons.winfo_manager() and card.winfo_reqheight() < height_with_buttons - 20
        assert not (tmp_path / "downloads" / "notes.txt").exists()


def test_a_right_to_left_name_reads_the_same_in_a_cards_title_and_its_status(root, tmp_path):
    """New-user finding: the title was laid out right to left, the status lines were not."""

    original = make_file(tmp_path / "bob", "\u05d3\u05d5\u05d7 \u05e9\u05e0\u05ea\u05d9.txt", 1000)
    with running_server() as server, core_clients(server.port, "Bob") as (bob,):
        app = joined_app(root, server.port, downloads=tmp_path / "downloads")
        card = offered_card(root, app, bob, original)
        click(root, card.decline_button)
        pump_until(root, lambda: card.finished, "the card to say so")
        assert card.status.cget("text") == drawn(f"Declined {original.name} from Bob.")
        assert card.status.cget("text") != f"Declined {original.name} from Bob."


def test_the_sender_sees_each_recipient_and_can_cancel(root, tmp_path, monkeypatch):
    original = make_file(tmp_path / "alice", "video.mp4", 8 * MB)
    with running_server() as server, cuttable_link(server.port, bytes_per_second=1 * MB) as to_bob, \
            cuttable_link(server.port, bytes_per_second=1 * MB) as to_carol:
        bob = CoreClient(to_bob.port, "Bob", auto_accept=tmp_path / "bob")
        carol = CoreClient(to_carol.port, "Carol", auto_accept=tmp_path / "carol")
        try:
            bob.join()
            carol.join()
            app = joined_app(root, server.port)
            card = offered_from_window(root, app, monkeypatch, original, members=3)
            assert card.title.cget("text") == "You offer video.mp4 \u00b7 8.0 MB"
            assert "Bob" in card.status.cget("text") and "Carol" in card.status.cget("text")
            pump_until(root, lambda: {"Bob", "Carol"} <= set(card.rows)
                       and all(float(bar.cget("value")) > 0 for _, bar, _ in card.rows.values()),
                       "progress for each recipient")
            for name, bar, stats in card.rows.values():
                assert bar.winfo_ismapped() and "% \u00b7 " in stats.cget("text"), name
            # One click only asks (the chat can scroll a card under the pointer); unanswered, the
            # question is taken back and the transfer goes on.
            monkeypatch.setattr(files_view, "CONFIRM_MS", 300)
            progress = {name: float(bar.cget("value")) for name, (_, bar, _) in card.rows.items()}
            click(root, card.cancel_button)
            assert card.cancel_button.cget("text") == "Click again to cancel"
            pump_until(root, lambda: card.cancel_button.cget("text") == "Cancel", "the question to be taken back")
            pump_until(root, lambda: all(float(card.rows[name][1].cget("value")) > before
                                         for name, before in progress.items()), "the transfer to go on")
            assert not card.finished
            click(root, card.cancel_button)
            click(root, card.cancel_button)
            pump_until(root, lambda: card.finished, "the cancel")
            assert card.status.cget("text") == "Cancelled sending video.mp4."
            assert not card.cancel_button.winfo_manager()
            for client in (bob, carol):
                client.wait_for(FileFinished, lambda e: not e.ok and "sender cancelled" in e.message, timeout=SLOW)
            assert not (tmp_path / "bob" / "video.mp4").exists()
        finally:
            bob.close()
            carol.close()


def test_the_sender_sees_who_has_not_answered_and_the_card_ends_when_all_have(root, tmp_path, monkeypatch):
    """A row per member offered the file from the start, "waiting for an answer" until they
    answer; a name with a comma in it is still one member, so the card finishes."""
    original = make_file(tmp_path / "alice", "notes.txt", 1 * MB)
    with running_server() as server, core_clients(server.port, "Smith, Jo") as (smith,):
        bob = CoreClient(server.port, "Bob", auto_accept=tmp_path / "bob")
        try:
            bob.join()
            app = joined_app(root, server.port)
            card = offered_from_window(root, app, monkeypatch, original, members=3)
            assert set(card.rows) == {"Bob", "Smith, Jo"}
            pump_until(root, lambda: "delivered" in card.rows["Bob"][2].cget("text"), "Bob's copy delivered")
            _, smith_bar, smith_stats = card.rows["Smith, Jo"]
            assert smith_stats.cget("text") == "waiting for an answer" and not smith_bar.winfo_manager()
            assert not card.finished and card.cancel_button.winfo_manager()
            assert card.status.cget("text") == "Delivered to 1; 1 has not answered yet."
            # Leaving would lose an offer, not a transfer under way (a tester's finding: it said so).
            assert app.unfinished_business() == "1 file offer is waiting for an answer"
            offer = smith.wait_for(FileOffered, timeout=SLOW)
            smith.session.decline_file(offer.file_id)
            pump_until(root, lambda: card.finished, "the card to finish once both have answered")
            assert card.status.cget("text") == "Finished: delivered to 1 of 2."
            assert card.title.cget("text") == "You offered notes.txt \u00b7 1.0 MB"
            assert "Preparing" not in transcript(app)     # said only of a file that takes a while to hash
            assert smith_stats.cget("text") == "declined notes.txt."     # the row names Smith already
        finally:
            bob.close()


def test_a_pasted_path_is_offered_as_a_file_after_asking(root, tmp_path):
    notes = make_file(tmp_path / "my files", "notes.txt", 2000)
    with running_server() as server, core_clients(server.port, "Bob") as (bob,):
        app = joined_app(root, server.port)
        pump_until(root, lambda: len(member_rows(app)) == 2, "Bob in the list")
        question = app.chat.question
        for draft in (str(notes), notes.as_uri()):   # as a terminal pastes it, as a file manager copies it
            type_message(app, draft)
            pump_until(root, lambda: question.visible, "the question")
            assert question.label.cget("text") == "notes.txt (2.0 kB) is a file on this computer. " \
                                                  "Offer it to the room?"
            assert app.chat.composer.draft == draft   # nothing is sent before the answer
            question.button("Cancel").invoke()
            assert not question.visible and app.chat.composer.draft == draft
            app.chat.composer.clear()
        type_message(app, str(notes))
        pump_until(root, lambda: question.visible, "the question")
        question.button("Send file").invoke()
        pump_until(root, lambda: offers(bob), "Bob to get the offer")   # the app checks the file first
        (offer,) = offers(bob)
        assert offer.name == "notes.txt" and offer.size == 2000
        assert app.chat.composer.draft == ""
        type_message(app, str(notes))
        pump_until(root, lambda: question.visible, "the question")
        question.button("Send as text").invoke()
        assert bob.wait_message(str(notes), timeout=SLOW)


def test_the_question_about_a_pasted_path_goes_once_the_user_sends_something_else(root, tmp_path):
    """Tester's finding: the question stayed while they chatted on, and "Send as text" then
    sent the path (no longer in the box) to the room."""
    notes = make_file(tmp_path / "private", "notes.txt", 2000)
    with running_server() as server, core_clients(server.port, "Bob") as (bob,):
        app = joined_app(root, server.port)
        pump_until(root, lambda: len(member_rows(app)) == 2, "Bob in the list")
        question = app.chat.question
        type_message(app, str(notes))
        pump_until(root, lambda: question.visible, "the question")
        app.chat.composer.clear()
        type_message(app, "hello there")
        assert not question.visible
        bob.wait_message("hello there", timeout=SLOW)
        type_message(app, str(notes))          # asked again; then the draft is edited before the answer
        pump_until(root, lambda: question.visible, "the question")
        app.chat.composer.clear()
        app.chat.composer.input.insert("1.0", "never mind")
        question.button("Send as text").invoke()
        settle_errands(root, app)
        assert str(notes) not in bob.texts_seen() and not offers(bob)
        assert app.chat.composer.draft == "never mind"


def test_a_file_that_cannot_be_sent_is_refused_clearly(root, tmp_path):
    with running_server() as server, core_clients(server.port, "Bob") as (bob,):
        app = joined_app(root, server.port)
        pump_until(root, lambda: len(member_rows(app)) == 2, "Bob in the list")
        missing = tmp_path / "gone.pdf"
        type_message(app, f"/send {missing}")
        settle_errands(root, app)
        assert f"Cannot send {missing}: there is no such file." in transcript(app)
        type_message(app, str(missing))      # pasted: kept, with the reason
        settle_errands(root, app)
        assert f"Cannot send {missing}: there is no such file. Nothing was sent. To send the text itself, " \
               "start it with //." in transcript(app)
        assert app.chat.composer.draft == str(missing) and not app.chat.question.visible
        type_message(app, "")    # Enter again: the same answer, nothing sent
        app.chat.composer.clear()
        type_message(app, f"/send {tmp_path}")
        settle_errands(root, app)
        assert "it is a folder" in transcript(app)
        assert not [e for e in bob.drain() if isinstance(e, (FileOffered, FileProgress))]


def test_a_file_offered_while_alone_is_refused_at_once_without_reading_it(root, tmp_path):
    big = tmp_path / "alone.bin"
    with big.open("wb") as sparse:
        sparse.truncate(PREPARING_NOTE_BYTES)      # large enough to be "prepared", if it were read
    with running_server() as server:
        app = joined_app(root, server.port)
        pump_until(root, lambda: len(member_rows(app)) == 1, "just me in the list")
        type_message(app, f"/send {big}")
        settle_errands(root, app)
        assert "Not sent: nobody else is in the room to receive alone.bin." in transcript(app)
        assert "Preparing" not in transcript(app)


def test_the_downloads_folder_can_be_changed_and_is_remembered(root, tmp_path, monkeypatch, config_dir):
    chosen = tmp_path / "chosen"
    original = make_file(tmp_path / "bob", "report.pdf", 5000)
    with running_server() as server, core_clients(server.port, "Bob") as (bob,):
        app = joined_app(root, server.port)
        assert app.chat.sidebar.downloads_label.cget("text") == paths.display_path(app.downloads)
        monkeypatch.setattr(transfers.filedialog, "askdirectory", lambda **options: str(chosen))
        app.chat.sidebar.downloads_button.invoke()
        settle_errands(root, app)
        assert app.chat.sidebar.downloads_label.cget("text") == str(chosen)
        assert json.loads((config_dir / "settings.json").read_text())["downloads"] == str(chosen)
        bob.session.send_file(original)
        pump_until(root, lambda: app.transfers.cards.cards, "the offer")
        type_message(app, f"/accept {next(iter(app.transfers.cards.cards))[1]}")   # as the terminal does
        card = next(iter(app.transfers.cards.cards.values()))
        pump_until(root, lambda: card.finished, "the file")
        assert (chosen / "report.pdf").read_bytes() == original.read_bytes()
    assert settings.load().downloads == chosen   # the next run starts with it


def test_the_remembered_downloads_folder_is_used_at_start(root, tmp_path, config_dir):
    settings.save(settings.Settings(downloads=tmp_path / "remembered"))
    assert make_app(root).downloads == tmp_path / "remembered"


def test_downloads_given_on_the_command_line_are_used(root, tmp_path, config_dir):
    settings.save(settings.Settings(downloads=tmp_path / "remembered"))
    app = make_app(root, downloads=tmp_path / "for this run")
    assert app.downloads == tmp_path / "for this run"
    assert app.chat.sidebar.downloads_label.cget("text") == str(tmp_path / "for this run")


def test_client_py_passes_its_options_to_the_desktop_app(monkeypatch, tmp_path):
    import client
    from securex.desktop import main as desktop_main

    given: list[AppOptions] = []
    monkeypatch.setattr(desktop_main, "run_and_exit", lambda options: given.append(options) or 0)
    assert client.main(["--downloads", str(tmp_path / "dl"), "--max-file-size", "5M", "--host", "h"]) == 0
    assert given[0].downloads == tmp_path / "dl" and given[0].max_file_bytes == 5 * MB and given[0].host == "h"
    assert client.main(["--host", "192.0.2.2:47050"]) == 0      # the dialog gets the port in its own field
    assert (given[1].host, given[1].port) == ("192.0.2.2", 47050)
    # A name the rules refuse opens the window, whose dialog says why (a tester saw nothing happen).
    assert client.main(["--name", "Dora (KIM3)"]) == 0 and given[2].name == "Dora (KIM3)"


def test_cards_trimmed_from_a_long_conversation_are_gone_for_good(root, monkeypatch):
    """The view keeps at most MAX_VIEW_LINES lines; a card in the lines dropped is destroyed,
    and a late event for it becomes a line of its own."""
    from securex.desktop import transcript as transcript_module
    from securex.events import Member, Notice

    monkeypatch.setattr(transcript_module, "MAX_VIEW_LINES", 40)
    app = make_app(root)
    app._show_chat()
    bob = Member("Bob", "AAAA BBBB CCCC DDDD", "Bob")
    with app.transcript.batch():
        app.conversation.on_file_offered(FileOffered("0123abcd", "old.txt", 10, bob))
    card = app.transfers.cards.card("in", "0123abcd")
    assert card is not None and card.winfo_exists()
    with app.transcript.batch():
        for number in range(60):
            app.on_notice(Notice(f"line {number}"))
    assert not card.winfo_exists()
    assert int(app.transcript.text.index("end-1c").split(".")[0]) <= 41
    with app.transcript.batch():
        app.conversation.on_file_finished(FileFinished("0123abcd", "old.txt", "in", "Bob", False, None,
                                                       "Receiving old.txt stopped: Bob left."))
    assert "Receiving old.txt stopped: Bob left." in transcript(app)


def test_a_paused_transfer_says_so_on_its_card():
    event = FileProgress("3f2a9c1b", "big.bin", "out", "Bob", 5_000_000, 10_000_000, 0.0, "paused")
    assert progress_text(event) == "50% \u00b7 5.0 MB of 10.0 MB \u00b7 paused until the connection is back"


def test_a_file_offered_again_to_one_whose_secure_x_restarted_says_so_on_the_senders_card(root):
    """Tester's finding: the sender's row kept its last progress after the receiver's
    client was restarted and the file offered to it again from the start."""
    app = make_app(root)
    app._show_chat()
    with app.transcript.batch():
        app.conversation.on_file_progress(FileProgress("3f2a9c1b", "huge.bin", "out", "Carol", 0, 10**9, 0.0,
                                                       "offered", recipients=("Carol",)))
        app.conversation.on_file_progress(FileProgress("3f2a9c1b", "huge.bin", "out", "Carol", 6 * 10**8, 10**9,
                                                       0.0, "paused"))
    card = app.transfers.cards.card("out", "3f2a9c1b")
    _, bar, stats = card.rows["Carol"]
    assert "paused" in stats.cget("text") and bar.winfo_manager()
    with app.transcript.batch():
        app.conversation.on_file_progress(FileProgress("3f2a9c1b", "huge.bin", "out", "Carol", 0, 10**9, 0.0,
                                                       "offered"))
    assert stats.cget("text") == "offered again: waiting for an answer" and not bar.winfo_manager()
