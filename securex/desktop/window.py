"""Where the main window sits on the screen: centred at start, and centred on the same
point when it grows from the connect dialog to the chat. Tk thread only.

Positions are read and written through ``wm geometry`` ("WxH+X+Y"), the same
coordinates both ways, so a window manager's frame does not shift the window a
little on every change.
"""

from __future__ import annotations

import re
import tkinter as tk

_GEOMETRY = re.compile(r"(\d+)x(\d+)([+-]-?\d+)([+-]-?\d+)")
SCREEN_MARGIN = 24     # pixels kept free at the screen's edges


def geometry(window: tk.Wm) -> tuple[int, int, int, int]:
    """(width, height, x, y) of ``window`` as the window manager has it."""
    match = _GEOMETRY.fullmatch(window.wm_geometry())
    if match is None:
        raise ValueError(f"unexpected geometry {window.wm_geometry()!r}")
    width, height, x, y = (int(group) for group in match.groups())
    return width, height, x, y


def _clamp(position: int, size: int, screen: int) -> int:
    return max(0, min(position, screen - size))


def centre_on_screen(window: tk.Tk, slack: int = 0) -> None:
    """Put ``window`` in the middle of the screen, at the size its contents ask for (at
    least its minimum size) plus ``slack`` pixels of height. The size is then fixed, so
    the window does not jump when a line of text comes or goes; ``grow_to_fit`` enlarges
    it, around the same centre, when its contents need more."""
    window.update_idletasks()
    min_width, min_height = window.wm_minsize()
    screen_width, screen_height = window.winfo_screenwidth(), window.winfo_screenheight()
    width = min(max(window.winfo_reqwidth(), min_width), screen_width)
    height = min(max(window.winfo_reqheight() + slack, min_height), screen_height)
    x = _clamp((screen_width - width) // 2, width, screen_width)
    y = _clamp((screen_height - height) // 2, height, screen_height)
    window.wm_geometry(f"{width}x{height}+{x}+{y}")


def grow_to_fit(window: tk.Tk, content: tk.Misc) -> None:
    """Enlarge ``window`` around its centre if ``content`` asks for more than it has."""
    width, height, _, _ = before = geometry(window)
    needed_width, needed_height = content.winfo_reqwidth(), content.winfo_reqheight()
    if needed_width > width or needed_height > height:
        resize_keeping_centre(window, max(width, needed_width), max(height, needed_height), before)


def resize_keeping_centre(window: tk.Tk, width: int, height: int, before: tuple[int, int, int, int]) -> None:
    """Give ``window`` this size (at most the screen's, less a margin) around the centre it
    had ``before`` (its ``geometry()`` read before its contents changed: once they have,
    Tk may already be resizing it to fit them)."""
    old_width, old_height, x, y = before
    screen_width, screen_height = window.winfo_screenwidth(), window.winfo_screenheight()
    width = min(width, screen_width - 2 * SCREEN_MARGIN)
    height = min(height, screen_height - 2 * SCREEN_MARGIN)
    new_x = _clamp(x + (old_width - width) // 2, width, screen_width)
    new_y = _clamp(y + (old_height - height) // 2, height, screen_height)
    window.wm_geometry(f"{width}x{height}+{new_x}+{new_y}")
