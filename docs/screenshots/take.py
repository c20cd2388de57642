"""Retake the desktop app's screenshots in this folder, from the real app.

    .venv/bin/python docs/screenshots/take.py

Needs Xvfb (unless DISPLAY is set), ImageMagick's ``import`` and, for emoji,
fonts-symbola. It starts a relay on a free port, three members in this process
(Bob, Carol, Dave), opens the app as Alice, has a short conversation and a file
transfer (through a slowed link, so it is caught half way), and saves:

    connect-dialog.png   the connect dialog
    chat-light.png       the chat, light theme: members with safety codes, messages, an emoji,
                         Hebrew and Arabic
    chat-dark.png        the same in the dark theme
    file-offer.png       an offer with Accept/Decline, and a transfer in progress
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

PASSPHRASE = "tulip-harbor-quartz-violin-meadow"
WAIT = 30.0
MB = 1_000_000


def pump_until(root, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        root.update()
        time.sleep(0.01)


def pause(root, seconds: float) -> None:
    """Let the window settle (redraws, receipts) before a picture."""
    deadline = time.monotonic() + seconds
    pump_until(root, lambda: time.monotonic() > deadline, "a moment")


def snap(root, name: str) -> None:
    root.update()
    root.update_idletasks()
    subprocess.run(["import", "-window", root.wm_frame(), str(HERE / name)], check=True)
    print("saved", HERE / name)


class Member:
    """Another member, as a ChatSession in this process."""

    def __init__(self, port: int, name: str, config: Path, **options) -> None:
        from securex.session.runner import EVENT_QUEUE_SIZE, ChatSession, SessionOptions

        self.events: queue.Queue = queue.Queue(maxsize=EVENT_QUEUE_SIZE)
        self.session = ChatSession(SessionOptions("127.0.0.1", port, name, PASSPHRASE, config_dir=config / name,
                                                  **options), self.events)
        self.session.start()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            self.events.get()


class SlowLink:
    """A forwarder that carries at most ``rate`` bytes a second towards the client."""

    def __init__(self, server_port: int, rate: float) -> None:
        self.server_port, self.rate = server_port, rate
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.server_port))
            threading.Thread(target=self._carry, args=(client, upstream), daemon=True).start()

    def _carry(self, client: socket.socket, upstream: socket.socket) -> None:
        pairs, started, carried = {client: upstream, upstream: client}, time.monotonic(), 0
        with contextlib.suppress(OSError):
            while True:
                for sock in select.select(list(pairs), [], [], 0.1)[0]:
                    data = sock.recv(16384)
                    if not data:
                        return
                    pairs[sock].sendall(data)
                    if sock is upstream:
                        carried += len(data)
                        time.sleep(max(0.0, carried / self.rate - (time.monotonic() - started)))


@contextlib.contextmanager
def display() -> Iterator[None]:
    if os.environ.get("DISPLAY"):
        yield
        return
    from xvfb import virtual_display

    with virtual_display("1280x800x24") as name:
        os.environ["DISPLAY"] = name
        yield


def session_window(theme: str, work: Path, port: int, **options):
    import tkinter as tk

    from securex.desktop.app import App, AppOptions, AppState
    from securex.desktop.settings import Settings

    os.environ["SECUREX_THEME"] = theme
    root = tk.Tk(className="SecureX")

    class NoRooms:
        def __init__(self, sink) -> None: ...
        def start(self) -> None: ...
        def stop(self) -> None: ...

    app = App(root, AppOptions(host="127.0.0.1", port=port, name="Alice", passphrase=PASSPHRASE, **options),
              settings=Settings(), browser_factory=NoRooms)
    pump_until(root, lambda: app.state == AppState.IN_ROOM, "Alice to join")
    return root, app


def conversation(root, app, members: dict[str, Member]) -> None:
    pump_until(root, lambda: len(app.chat.sidebar.rows) == 4, "everyone in the members list")
    lines = [("Bob", "Morning! Is everyone on the new build?"),
             ("Carol", "Yes \u2014 the file transfer works here too \U0001F389"),
             ("Alice", "Great. I'll send the slides after lunch."),
             ("Dave", "Could you send the budget sheet as well? \U0001F64F"),
             ("Bob", "\u05e9\u05dc\u05d5\u05dd \u05dc\u05db\u05d5\u05dc\u05dd! "
                     "\u05e0\u05ea\u05e8\u05d0\u05d4 \u05d1-10:30 (\u05d7\u05d3\u05e8 2)"),
             ("Carol", "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u062c\u0645\u064a\u0639 "
                       "\u2014 \u0633\u0644\u0627\u0645")]
    for sender, text in lines:
        if sender == "Alice":
            app.chat.composer.input.insert("1.0", text)
            app.chat.composer.send()
        else:
            members[sender].session.send_text(text)
        pump_until(root, lambda text=text: text in app.transcript.content(), "the message")
    pause(root, 1.0)


def main() -> None:
    os.environ.setdefault("SECUREX_CONFIG_DIR", tempfile.mkdtemp(prefix="securex-shots-"))
    from securex.relay.engine import RelayServer

    work = Path(tempfile.mkdtemp(prefix="securex-shots-work-"))
    server = RelayServer("127.0.0.1", port=0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    members = {name: Member(server.port, name, work / "config", downloads=work / name)
               for name in ("Bob", "Carol", "Dave")}
    with display():
        import tkinter as tk

        from securex.desktop.app import App, AppOptions
        from securex.desktop.settings import Settings

        # The connect dialog, as it opens with the last name remembered, and two rooms found
        # on the LAN (announced to the list as the real browser would).
        from securex.discovery import Change, Room, RoomsChanged

        class TwoRooms:
            def __init__(self, sink) -> None:
                self.sink = sink

            def start(self) -> None:
                design = Room("a", "Design team", ("192.168.1.23",), 5050, 3, 5, 2)
                lunch = Room("b", "Lunch plans", ("192.168.1.40",), 5050, 1, 5, 2)
                self.sink(RoomsChanged(Change.FOUND, lunch, (design, lunch)))

            def stop(self) -> None: ...

        os.environ["SECUREX_THEME"] = "light"
        root = tk.Tk(className="SecureX")
        App(root, AppOptions(), settings=Settings(name="Alice"), browser_factory=TwoRooms)
        pause(root, 1.0)
        snap(root, "connect-dialog.png")
        root.destroy()

        for theme in ("light", "dark"):
            root, app = session_window(theme, work, server.port)
            conversation(root, app, members)
            snap(root, f"chat-{theme}.png")
            root.destroy()
            pause_until = time.monotonic() + 1.5     # the others see Alice leave before she is back
            while time.monotonic() < pause_until:
                time.sleep(0.05)

        # Files: Alice on a slowed link, so a transfer is caught half way.
        link = SlowLink(server.port, 2 * MB)
        root, app = session_window("light", work, link.port, downloads=work / "Alice downloads")
        pump_until(root, lambda: len(app.chat.sidebar.rows) == 4, "everyone in the members list")
        (work / "files").mkdir()
        slides = work / "files" / "Quarterly review.pdf"
        slides.write_bytes(os.urandom(24 * MB))
        budget = work / "files" / "budget-2026.xlsx"
        budget.write_bytes(os.urandom(1_400_000))
        members["Carol"].session.send_text("Here are the slides from Thursday:")
        members["Carol"].session.send_file(slides)
        pump_until(root, lambda: app.transfers.cards.cards, "Carol's offer")
        next(iter(app.transfers.cards.cards.values())).accept_button.invoke()
        members["Dave"].session.send_file(budget)
        pump_until(root, lambda: len(app.transfers.cards.cards) == 2, "Dave's offer")
        first = next(iter(app.transfers.cards.cards.values()))
        pump_until(root, lambda: float(first.bar.cget("value")) > 380, "the transfer to be under way")
        snap(root, "file-offer.png")
        root.destroy()
    server.stop()


if __name__ == "__main__":
    main()
