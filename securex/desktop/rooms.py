"""The rooms found on the LAN, for the connect dialog: a live list above the address fields.

Rooms appear, change and disappear as servers announce and withdraw them. Picking one
(a click or the arrow keys) hands it to ``on_pick``, which fills in the address and port;
a double-click or Return also calls ``on_choose``. Typing an address by hand always
works, whatever discovery does; when it cannot run here the list says why, once.

Thread contract: a ``RoomBrowser`` (``securex/discovery.py``) runs in threads of its own
and never touches a widget. It puts events on ``events``, a bounded queue that never
blocks it (when full, the oldest event goes: each one carries the whole list). ``_pump``
takes at most BATCH events per ``after()`` tick and draws only the newest list, at most
MAX_ROOMS rows updated in place, so a flood of announcements costs the Tk thread one small
redraw per tick. ``start()`` and ``stop()`` return at once: the browser opens and closes
its sockets in its own threads. Everything else here runs on the Tk thread.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass
from tkinter import ttk
from typing import Protocol

from securex.desktop.theme import Theme
from securex.discovery import (EVENT_QUEUE_SIZE, MAX_ROOMS, DiscoveryEvent, DiscoveryUnavailable, Room,
                               RoomBrowser, RoomsChanged, queue_sink)

BATCH = 50              # events taken per tick at most
BUSY_MS = 20            # next tick soon while events are waiting
POLL_MS = 250           # otherwise four cheap wake-ups a second
QUIET_AFTER = 4.0       # seconds without any room before saying none were found yet
VISIBLE_ROWS = 4

LOOKING = "Looking for rooms on this network\u2026"
NONE_YET = "No rooms found on this network yet. Type the address the server printed below."
PICK = "Pick a room to fill in its address, or type one below."


class Browser(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


BrowserFactory = Callable[[Callable[[DiscoveryEvent], None]], Browser]


@dataclass
class PumpStats:
    """What the pump has done; tests check that batches stay bounded."""
    ticks: int = 0
    events: int = 0
    largest_batch: int = 0
    redraws: int = 0


class RoomList(ttk.Frame):
    """The live list of rooms. ``start()`` begins browsing, ``stop()`` ends it (also
    when the widget is destroyed); both may be called any number of times."""

    def __init__(self, master: tk.Misc, theme: Theme, *, on_pick: Callable[[Room], None],
                 on_choose: Callable[[Room], None] | None = None,
                 browser_factory: BrowserFactory = RoomBrowser) -> None:
        super().__init__(master, style="Card.TFrame")
        self.on_pick, self.on_choose = on_pick, on_choose
        self.browser_factory = browser_factory
        self.events: queue.Queue[DiscoveryEvent] = queue.Queue(maxsize=EVENT_QUEUE_SIZE)
        self.stats = PumpStats()
        self.shown: dict[str, Room] = {}        # row id -> the room it shows
        self._rows: dict[str, str] = {}         # room key -> row id
        self._row_ids = (f"room{n}" for n in itertools.count())   # never a name from the network
        self._browser: Browser | None = None
        self._pump_id: str | None = None
        self._started_at = 0.0
        self._unavailable: str | None = None
        self._full = False
        self.create_widgets(theme)
        self.bind("<Destroy>", self._on_destroy, add="+")

    def create_widgets(self, theme: Theme) -> None:
        p = theme.palette
        style = ttk.Style(self)
        style.configure("Rooms.Treeview", background=p.surface, fieldbackground=p.surface, foreground=p.text,
                        bordercolor=p.border, lightcolor=p.surface, darkcolor=p.surface, rowheight=24)
        style.map("Rooms.Treeview", background=[("selected", p.selection)], foreground=[("selected", p.text)])
        style.configure("Rooms.Treeview.Heading", background=p.window, foreground=p.muted, bordercolor=p.border,
                        lightcolor=p.window, darkcolor=p.window, font=theme.font("heading"))
        self.columnconfigure(0, weight=1)
        ttk.Label(self, text="Rooms on this network", style="Card.TLabel").grid(
            row=0, column=0, columnspan=2, sticky="w", pady=(0, 3))
        self.tree = ttk.Treeview(self, columns=("room", "address", "places"), show="headings",
                                 height=VISIBLE_ROWS, selectmode="browse", style="Rooms.Treeview")
        for column, heading, width in (("room", "Room", 190), ("address", "Address", 150),
                                       ("places", "Places", 80)):
            self.tree.heading(column, text=heading, anchor="w")
            self.tree.column(column, width=width, minwidth=60, stretch=True, anchor="w")
        self.tree.grid(row=1, column=0, sticky="ew")
        scrollbar = ttk.Scrollbar(self, orient="vertical", command=self.tree.yview)
        scrollbar.grid(row=1, column=1, sticky="ns")
        self.tree.configure(yscrollcommand=scrollbar.set)
        self.status_label = ttk.Label(self, text=LOOKING, style="Card.Muted.TLabel", wraplength=380,
                                      justify="left")
        self.status_label.grid(row=2, column=0, columnspan=2, sticky="w", pady=(4, 0))
        self.tree.bind("<<TreeviewSelect>>", self._on_select)
        self.tree.bind("<Double-1>", self._on_choose)
        self.tree.bind("<Return>", self._on_choose)
        self.tree.bind("<KP_Enter>", self._on_choose)

    # -- browsing ------------------------------------------------------------------

    def start(self) -> None:
        """Browse, with a fresh queue: nothing a stopped browser still says can reach the list."""
        if self._browser is not None:
            return
        self.events = queue.Queue(maxsize=EVENT_QUEUE_SIZE)
        self._unavailable, self._started_at = None, time.monotonic()
        self._browser = self.browser_factory(queue_sink(self.events))
        self._browser.start()
        self._update_status()
        if self._pump_id is None:
            self._pump_id = self.after(BUSY_MS, self._pump)

    def stop(self) -> None:
        """Stop browsing and empty the list (it is rebuilt quickly on the next start)."""
        if self._stop_browsing() and self.tree.winfo_exists():   # mid-destruction the rows are gone already
            self.show_rooms(())

    @property
    def browsing(self) -> bool:
        return self._browser is not None

    def _stop_browsing(self) -> bool:
        """Cancel the pump and let the browser close in a thread of its own: closing sockets
        takes a moment, and the Tk thread never waits for the network. True if it was browsing."""
        if self._pump_id is not None:
            self.after_cancel(self._pump_id)
            self._pump_id = None
        browser, self._browser = self._browser, None
        if browser is None:
            return False
        threading.Thread(target=browser.stop, name="room-browser-stop", daemon=True).start()
        return True

    def _on_destroy(self, event: tk.Event) -> None:
        if event.widget is self:
            self._stop_browsing()

    # -- the pump ----------------------------------------------------------------------

    def _pump(self) -> None:
        self._pump_id = None
        handled, latest = 0, None
        try:
            events = self.events
            while handled < BATCH:
                try:
                    event = events.get_nowait()
                except queue.Empty:
                    break
                handled += 1
                if isinstance(event, RoomsChanged):
                    latest = event
                elif isinstance(event, DiscoveryUnavailable):
                    self._unavailable = event.reason
            if latest is not None:   # each event holds the whole list: only the newest matters
                self.show_rooms(latest.rooms, full=latest.full)
            self._update_status()
        finally:   # a failure in one tick must not end the list's updates
            self.stats.ticks += 1
            self.stats.events += handled
            self.stats.largest_batch = max(self.stats.largest_batch, handled)
            if self._browser is not None:
                self._pump_id = self.after(BUSY_MS if handled == BATCH else POLL_MS, self._pump)

    def show_rooms(self, rooms: tuple[Room, ...], *, full: bool = False) -> None:
        """Make the list show ``rooms`` (at most MAX_ROOMS), in order, changing only the
        rows that differ so the user's selection stays where it is."""
        self.stats.redraws += 1
        self._full = full
        wanted: dict[str, Room] = {}
        for room in rooms[:MAX_ROOMS]:
            wanted.setdefault(room.key, room)
        for key in [key for key in self._rows if key not in wanted]:
            row = self._rows.pop(key)
            self.shown.pop(row, None)
            self.tree.delete(row)
        for index, (key, room) in enumerate(wanted.items()):
            values = (room.name, room.endpoint, room.places_short)
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = next(self._row_ids)
                self.tree.insert("", index, iid=row, values=values)
            else:
                if self.shown[row] != room:
                    self.tree.item(row, values=values)
                if self.tree.index(row) != index:
                    self.tree.move(row, "", index)
            self.shown[row] = room

    def _update_status(self) -> None:
        if self._unavailable is not None:
            text = f"Room discovery is unavailable here: {self._unavailable}. Type the server address below."
        elif self.shown:
            text = PICK + (f" Showing the first {MAX_ROOMS} rooms found." if self._full else "")
        elif self._browser is not None and time.monotonic() - self._started_at < QUIET_AFTER:
            text = LOOKING
        else:
            text = NONE_YET
        if self.status_label.cget("text") != text:   # unchanged text: no relayout four times a second
            self.status_label.configure(text=text)

    # -- picking -------------------------------------------------------------------------

    def selected_room(self) -> Room | None:
        selection = self.tree.selection()
        return self.shown.get(selection[0]) if selection else None

    def _on_select(self, event: tk.Event | None = None) -> None:
        room = self.selected_room()
        if room is not None:
            self.on_pick(room)

    def _on_choose(self, event: tk.Event | None = None) -> str:
        room = self.selected_room()
        if room is not None:
            self.on_pick(room)
            if self.on_choose is not None:
                self.on_choose(room)
        return "break"
