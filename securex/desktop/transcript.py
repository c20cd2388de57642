"""The message view of the chat window: messages, the client's own lines, delivery
marks with a tooltip, file transfer cards, and a "new messages below" pill.

A passive view: it draws what it is told. Text is stored exactly as it was sent
(emoji and all); a line with right-to-left letters is stored in drawing order
(``visual_text``), and copying gives it back as typed. Appends happen inside
``batch()``: one unlock, one trim and one scroll for a whole batch of events.
The view follows new lines unless the user has scrolled up; then new lines are
counted on a pill at the bottom that brings the view back down. Tk thread only.
"""

from __future__ import annotations

import re
import tkinter as tk
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from tkinter import ttk

from securex.desktop.theme import Theme
from securex.desktop.tooltip import Tooltip
from securex.desktop.visual_text import RightToLeftText
from securex.events import Severity

MAX_VIEW_LINES = 20_000              # older lines are dropped so memory stays bounded
MAX_TRACKED_MARKS = 2_000            # delivery marks remembered for updates (the session follows as many)
GROUP_WITHIN = timedelta(minutes=3)  # consecutive messages by one sender share a header
MARGIN = 18

_MARK_TAG = re.compile(r"d(\d+)$")
_SAFETY_CODE = re.compile(r"\b[A-Z2-7]{4}(?: [A-Z2-7]{4}){3}\b")


def unbroken_codes(text: str) -> str:
    """Safety codes with no-break spaces: a line wraps before one, never inside it (a
    tester read "TVF7" at a line's end and "G5J7 ..." on the next)."""
    return _SAFETY_CODE.sub(lambda code: code.group().replace(" ", "\u00a0"), text)


@dataclass(frozen=True)
class Delivery:
    """Where one of our own messages stands, as the mark and its tooltip show it."""
    state: str                            # pending, sent, delivered, incomplete or unsent
    delivered_to: tuple[str, ...] = ()
    waiting_for: tuple[str, ...] = ()
    given_up: tuple[str, ...] = ()

    @property
    def mark(self) -> str:
        return {"pending": "\u25f7 queued", "sent": "\u2713", "delivered": "\u2713\u2713",
                "incomplete": "\u26a0 not delivered to " + ", ".join(self.given_up),
                "unsent": "\u2717 never sent"}.get(self.state, "")

    def describe(self) -> str:
        """The tooltip: who has it, who it is still on its way to, who will not get it."""
        if self.state == "pending":
            return "Queued: you are not in the room right now.\nIt will be sent when you are back."
        if self.state == "unsent":
            return "Never sent: the session ended before you were back in the room."
        lines = []
        if self.delivered_to:
            lines.append("Delivered to " + ", ".join(self.delivered_to))
        if self.waiting_for:
            lines.append("On its way to " + ", ".join(self.waiting_for))
        if self.given_up:
            lines.append("Will not reach " + ", ".join(self.given_up))
        return "\n".join(lines) or "Sent. Nobody else was in the room to receive it."


class Transcript(ttk.Frame):
    def __init__(self, master: tk.Misc, theme: Theme) -> None:
        super().__init__(master)
        self.theme = theme
        self._last_header: tuple[str, bool, datetime] | None = None
        self._colour_tags: set[str] = set()
        self._marks: dict[int, Delivery] = {}
        self._pinned = True     # the view follows new lines until the user scrolls up
        self._depth = 0         # batches open
        self.new_below = 0      # lines added since the user scrolled up
        self.message_count = 0
        self.create_widgets()
        self._configure_tags()
        self._rtl = RightToLeftText(self.text, theme.font("body"), MARGIN)
        self.tooltip = Tooltip(self, theme)

    def create_widgets(self) -> None:
        p = self.theme.palette
        self.columnconfigure(0, weight=1)
        self.rowconfigure(0, weight=1)
        self.text = tk.Text(
            self, width=30, height=10, wrap="word", state="disabled", cursor="arrow", takefocus=False,
            font=self.theme.font("body"), background=p.surface, foreground=p.text,
            selectbackground=p.selection, selectforeground=p.text, inactiveselectbackground=p.selection,
            borderwidth=0, highlightthickness=0, padx=0, pady=10, spacing1=1, spacing3=1)
        self.text.grid(row=0, column=0, sticky="nsew")
        scrollbar = ttk.Scrollbar(self, orient="vertical", command=self._scroll_by_user)
        scrollbar.grid(row=0, column=1, sticky="ns")
        self._scrollbar = scrollbar
        self.text.configure(yscrollcommand=self._on_view_change)
        # Where the reader scrolled to is looked at right after the Text class binding has
        # scrolled, in the same event (a tag of our own after "Text"): looked at later, a
        # message drawn meanwhile could take the view back down before it was noticed.
        scrolled = f"TranscriptScrolled{id(self)}"      # one per transcript: its own callback
        tags = list(self.text.bindtags())
        self.text.bindtags((*tags[:tags.index("Text") + 1], scrolled, *tags[tags.index("Text") + 1:]))
        for wheel in ("<MouseWheel>", "<Button-4>", "<Button-5>", "<B1-Motion>", "<Prior>", "<Next>"):
            self.text.bind_class(scrolled, wheel, lambda e: self._note_scroll_position())
        # When the view changes height (a banner comes and goes, the window is resized),
        # a view that was following the conversation keeps following it.
        self.text.bind("<Configure>", lambda e: self._pinned and self.text.see("end"))
        self.new_pill = ttk.Button(self, style="Pill.TButton", command=self.scroll_to_end, takefocus=False)

    def _configure_tags(self) -> None:
        p, fonts = self.theme.palette, self.theme.fonts
        text = self.text
        margins = dict(lmargin1=MARGIN, lmargin2=MARGIN, rmargin=MARGIN)
        text.tag_configure("header", spacing1=10, **margins)
        text.tag_configure("time", font=fonts["small"], foreground=p.muted)
        text.tag_configure("body", spacing3=2, **margins)
        text.tag_configure("own", background=p.own_background, lmargincolor=p.own_background,
                           rmargincolor=p.own_background)
        text.tag_configure("own_name", font=fonts["bold"], foreground=p.accent_text)
        text.tag_configure("notice", font=fonts["notice"], foreground=p.muted, justify="center",
                           spacing1=8, spacing3=4, **margins)
        text.tag_configure("warning", font=fonts["small"], foreground=p.warning,
                           background=p.warning_background, lmargincolor=p.warning_background,
                           rmargincolor=p.warning_background, spacing1=8, spacing3=6, **margins)
        text.tag_configure("alert", font=fonts["bold"], foreground=p.on_accent, background=p.alert_background,
                           lmargincolor=p.alert_background, rmargincolor=p.alert_background,
                           spacing1=8, spacing3=6, **margins)
        # A panel of its own: a tester took /who's answer for the end of the message above it.
        text.tag_configure("info", font=fonts["mono_small"], foreground=p.muted, spacing1=1, spacing3=1,
                           background=p.sidebar, lmargincolor=p.sidebar, rmargincolor=p.sidebar,
                           lmargin1=MARGIN + 12, lmargin2=MARGIN + 12, rmargin=MARGIN)
        text.tag_configure("info_first", spacing1=8)
        text.tag_configure("info_last", spacing3=6)
        text.tag_configure("card", spacing1=6, spacing3=6, **margins)
        text.tag_configure("delivery", font=fonts["small"], foreground=p.muted)
        text.tag_configure("delivered", foreground=p.ok)
        text.tag_configure("undelivered", foreground=p.warning)
        text.tag_bind("delivery", "<Enter>", self._show_delivery)
        text.tag_bind("delivery", "<Leave>", lambda e: self.tooltip.hide())
        # Selection drawn above the "own", "warning" and "alert" backgrounds.
        text.tag_raise("sel")

    # -- following the conversation ------------------------------------------------

    def _scroll_by_user(self, *args: str) -> None:
        self.text.yview(*args)
        self._note_scroll_position()

    def _note_scroll_position(self) -> None:
        # Whether the last line is on screen, not yview()'s fraction: in a long transcript
        # a few lines are under a thousandth of it, and just after a burst Tk's fractions
        # are estimates (it measures lines in the background), so a reader who scrolled
        # up could be taken for one still following and snapped back down.
        self._pinned = bool(self.text.dlineinfo("end-1c"))
        if self._pinned:
            self._hide_pill()

    def _on_view_change(self, first: str, last: str) -> None:
        self._scrollbar.set(first, last)
        if self.new_below and float(last) >= 0.999:   # reached the bottom, however it got there
            self._pinned = True
            self._hide_pill()

    @property
    def following(self) -> bool:
        """True while the view shows the newest line as lines arrive."""
        return self._pinned

    def scroll_to_end(self) -> None:
        self._pinned = True
        self.text.see("end")
        self._hide_pill()

    def _hide_pill(self) -> None:
        self.new_below = 0
        self.new_pill.place_forget()

    def _count_new(self) -> None:
        if self._pinned:
            return
        self.new_below += 1
        self.new_pill.configure(text=f"\u2193  {self.new_below} new below")
        self.new_pill.place(relx=0.5, rely=1.0, y=-12, anchor="s")

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group appends: one unlock, one trim, and one scroll for the whole batch. A batch
        inside a batch is part of it (only the outermost locks the view again)."""
        self._depth += 1
        if self._depth == 1:
            self.text.configure(state="normal")
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._trim()
                self.text.configure(state="disabled")
                if self._pinned:
                    self.text.see("end")

    def _trim(self) -> None:
        excess = int(self.text.index("end-1c").split(".")[0]) - MAX_VIEW_LINES
        if excess <= 0:
            return
        cut = self._rtl.clean_cut(f"{excess + 1}.0")
        # Cards in the dropped lines go with them (Tk would only unmap them).
        for _key, name, _index in self.text.dump("1.0", cut, window=True):
            if name:
                self.nametowidget(name).destroy()
        self.text.delete("1.0", cut)
        self._rtl.forget_deleted()

    # -- appending (inside batch()) ---------------------------------------------------

    def add_message(self, sender: str, text: str, *, own: bool, at: datetime, colour: str,
                    late: bool = False, caught_up: bool = False, written: datetime | None = None,
                    delivery: Delivery | None = None, message_id: int = 0) -> None:
        """Append a chat message. ``late``: it arrived after later messages from the same
        sender, so its full time is shown; ``caught_up``: sent while we were away;
        ``written``: when the sender says it was written, well before it arrived.
        ``delivery`` (own messages) adds a mark that ``set_delivery`` updates."""
        insert = self.text.insert
        block = ("own",) if own else ()
        last = self._last_header
        if late or caught_up or written or last is None or last[:2] != (sender, own) or at - last[2] > GROUP_WITHIN:
            name_tag = "own_name" if own else self._colour_tag(colour)
            stamp = at.strftime("%H:%M")
            if late:
                stamp = at.strftime("%d %b %H:%M:%S") + "  \u00b7 arrived late, out of order"
            elif caught_up:
                stamp += "  \u00b7 sent while you were away"
            elif written:
                stamp += f"  \u00b7 written {written:%H:%M}"
            self._rtl.insert("end", sender, ("header", name_tag, *block), align=False)
            insert("end", "  " + stamp, ("header", "time", *block), "\n", ("header", *block))
        self._last_header = None if late or caught_up else (sender, own, at)
        self._rtl.insert("end", text, ("body", *block))
        if delivery is not None and message_id:
            insert("end", "  ", ("body", *block))
            self._marks[message_id] = delivery
            insert("end", delivery.mark, self._mark_tags(message_id, delivery))
            while len(self._marks) > MAX_TRACKED_MARKS:
                del self._marks[next(iter(self._marks))]
        insert("end", "\n", ("body", *block))
        self.message_count += 1
        if own:
            self.scroll_to_end()   # what you send, you see
        else:
            self._count_new()

    def set_delivery(self, message_id: int, delivery: Delivery) -> None:
        """Redraw the mark of one of our messages (inside batch())."""
        if message_id not in self._marks:
            return
        self._marks[message_id] = delivery
        ranges = self.text.tag_ranges(f"d{message_id}")
        if not ranges:   # trimmed away
            del self._marks[message_id]
            return
        start = self.text.index(ranges[0])
        self.text.delete(start, ranges[1])
        self.text.insert(start, delivery.mark, self._mark_tags(message_id, delivery))

    def delivery(self, message_id: int) -> Delivery | None:
        return self._marks.get(message_id)

    def pending_ids(self) -> list[int]:
        return [message_id for message_id, d in self._marks.items() if d.state == "pending"]

    def _mark_tags(self, message_id: int, delivery: Delivery) -> tuple[str, ...]:
        colour = {"delivered": ("delivered",), "incomplete": ("undelivered",), "unsent": ("undelivered",),
                  "pending": ("undelivered",)}.get(delivery.state, ())
        return ("body", "own", "delivery", *colour, f"d{message_id}")

    def add_notice(self, text: str, *, at: datetime, severity: Severity = Severity.INFO) -> None:
        """Append a line of the client's own (joins, leaves, connection news). Its shape
        (centred, or a coloured block with a sign) is one no member's message takes."""
        text = unbroken_codes(text)
        if severity == Severity.ALERT:
            line, tag = f"\u26d4  {text}", "alert"
        elif severity == Severity.WARNING:
            line, tag = f"\u26a0  {text}", "warning"
        else:
            line, tag = f"{text}  \u00b7  {at.strftime('%H:%M')}", "notice"
        self._rtl.insert("end", line, (tag,), align=False)
        self.text.insert("end", "\n", tag)
        self._last_header = None
        self._count_new()

    def add_info(self, text: str) -> None:
        """Append something the user asked for (/who, /help): left-aligned, in a fixed-width
        font so the /help table lines up."""
        start = self.text.index("end-1c")
        self._rtl.insert("end", text, ("info",), align=False)
        self.text.insert("end", "\n", "info")
        self.text.tag_add("info_first", start, f"{start} lineend")
        self.text.tag_add("info_last", "end-2l", "end-1c")
        self._last_header = None
        self._count_new()

    def add_widget(self, widget: tk.Widget) -> None:
        """Append a widget (a file transfer card) on a line of its own."""
        start = self.text.index("end-1c")
        self.text.window_create(start, window=widget, align="top")
        self.text.insert("end", "\n", "card")
        self.text.tag_add("card", start, "end-1c")
        self._last_header = None
        self._count_new()

    def _colour_tag(self, colour: str) -> str:
        tag = "name" + colour
        if tag not in self._colour_tags:
            self.text.tag_configure(tag, font=self.theme.font("bold"), foreground=colour)
            self._colour_tags.add(tag)
        return tag

    def content(self) -> str:
        """Everything in the view as it was typed (cards are not text)."""
        return self._rtl.logical_text("1.0", "end-1c")

    # -- the delivery tooltip ---------------------------------------------------------

    def _show_delivery(self, event: tk.Event) -> None:
        for tag in self.text.tag_names(f"@{event.x},{event.y}"):
            match = _MARK_TAG.match(tag)
            if match and int(match.group(1)) in self._marks:
                self.tooltip.show(self._marks[int(match.group(1))].describe(), event.x_root, event.y_root)
                return
