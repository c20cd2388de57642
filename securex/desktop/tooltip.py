"""A small tooltip: a borderless window beside the pointer with a few lines of text.

One ``Tooltip`` serves a whole widget; callers say what to show (``show``) and when
to hide it (``hide``), for example from the <Enter> and <Leave> bindings of a text
tag. Tk thread only.
"""

from __future__ import annotations

import tkinter as tk

from securex.desktop.theme import Theme

OFFSET = 14     # pixels between the pointer and the tooltip


class Tooltip:
    def __init__(self, master: tk.Misc, theme: Theme) -> None:
        self.master = master
        self.theme = theme
        self._window: tk.Toplevel | None = None
        self.text = ""          # what is shown now ("" when hidden); tests read it

    def show(self, text: str, x_root: int, y_root: int) -> None:
        """Show ``text`` near the screen position (x_root, y_root)."""
        self.hide()
        p = self.theme.palette
        window = tk.Toplevel(self.master, background=p.border)
        window.wm_overrideredirect(True)
        tk.Label(window, text=text, justify="left", background=p.surface, foreground=p.text,
                 font=self.theme.font("small"), padx=8, pady=5).pack(padx=1, pady=1)
        window.update_idletasks()
        # Keep it on screen: to the left of, or above, the pointer when near an edge.
        width, height = window.winfo_reqwidth(), window.winfo_reqheight()
        x = x_root + OFFSET
        y = y_root + OFFSET
        if x + width > window.winfo_screenwidth():
            x = max(0, x_root - OFFSET - width)
        if y + height > window.winfo_screenheight():
            y = max(0, y_root - OFFSET - height)
        window.wm_geometry(f"+{x}+{y}")
        self._window, self.text = window, text

    def hide(self) -> None:
        if self._window is not None:
            self._window.destroy()
        self._window, self.text = None, ""
