"""Colours, fonts and ttk styles of the desktop app, and text Tk can draw safely.

The look is built on ttk's portable 'clam' theme with every colour set
explicitly, so the window reads the same whatever the desktop's own theme is.
Two palettes exist: light (default) and dark. ``SECUREX_THEME=dark`` (or
``light``) chooses one; otherwise a ``GTK_THEME`` naming a dark variant picks
dark. Only the Tk thread may call anything here that takes a widget.
"""

from __future__ import annotations

import os
import re
import tkinter as tk
import tkinter.font as tkfont
import zlib
from dataclasses import dataclass, field
from tkinter import ttk

THEME_ENV = "SECUREX_THEME"

# Tk 8.6 stores text as UCS-2: characters outside the Basic Multilingual Plane
# (most emoji) are drawn as garbage or, with a colour emoji font on X11, crash
# the X connection. Lone surrogates cannot be drawn by any version.
_TK_DRAWS_ASTRAL = tk.TkVersion >= 8.7
_UNDRAWABLE = re.compile("[\ud800-\udfff]" if _TK_DRAWS_ASTRAL else "[\ud800-\udfff\U00010000-\U0010ffff]")

_SANS_FAMILIES = ("Inter", "Cantarell", "Noto Sans", "Segoe UI", "SF Pro Text", "Helvetica Neue",
                  "DejaVu Sans", "Helvetica", "Arial")
_MONO_FAMILIES = ("JetBrains Mono", "DejaVu Sans Mono", "Noto Sans Mono", "Consolas", "Menlo", "Courier")


def tk_safe(text: str) -> str:
    """``text`` with every character this Tk cannot draw replaced by U+FFFD.
    Nothing is dropped, so a message never loses its shape."""
    return _UNDRAWABLE.sub("\ufffd", text)


@dataclass(frozen=True)
class Palette:
    name: str
    window: str          # window and dialog background
    surface: str         # message view, entries
    sidebar: str
    text: str
    muted: str
    border: str
    button: str
    button_active: str
    accent: str
    accent_active: str
    on_accent: str
    own_background: str
    selection: str
    warning: str
    warning_background: str
    error: str
    ok: str
    thumb: str
    sender_colours: tuple[str, ...]


LIGHT = Palette(
    name="light", window="#f3f4f7", surface="#ffffff", sidebar="#eceef2", text="#1d2127",
    muted="#6a7280", border="#d3d7de", button="#ffffff", button_active="#e7eaf0",
    accent="#2f6bd8", accent_active="#2559b8", on_accent="#ffffff", own_background="#edf3fd",
    selection="#c9dbfa", warning="#8a5300", warning_background="#fdf2dc", error="#c0262d",
    ok="#1f8a48", thumb="#c3c8d0",
    sender_colours=("#c2410c", "#0f7a3d", "#7c3aed", "#b4232a", "#0e7490", "#986200", "#be185d",
                    "#4d7c0f"))

DARK = Palette(
    name="dark", window="#1c1f24", surface="#24282e", sidebar="#202328", text="#e4e7eb",
    muted="#98a1ac", border="#393e46", button="#2d3239", button_active="#383e46",
    accent="#4d8df6", accent_active="#3b7be4", on_accent="#ffffff", own_background="#2a3445",
    selection="#38557f", warning="#f2b552", warning_background="#3a2f1a", error="#ff7272",
    ok="#5fd08a", thumb="#4a5059",
    sender_colours=("#fb923c", "#4ade80", "#b49cff", "#f87171", "#38d3ee", "#facc15", "#f472b6",
                    "#a3e635"))


def palette_from_env(environ: dict[str, str] | None = None) -> Palette:
    """The palette the user asked for: SECUREX_THEME, else a dark GTK_THEME, else light."""
    environ = os.environ if environ is None else environ
    wanted = environ.get(THEME_ENV, "").strip().lower()
    if wanted in ("dark", "light"):
        return DARK if wanted == "dark" else LIGHT
    return DARK if "dark" in environ.get("GTK_THEME", "").lower() else LIGHT


def sender_colour(palette: Palette, name: str) -> str:
    """A stable colour per display name (crc32, not hash(): the same on every run)."""
    return palette.sender_colours[zlib.crc32(name.encode("utf-8")) % len(palette.sender_colours)]


@dataclass
class Theme:
    """A palette plus the named fonts made from it. Keep this object alive:
    Tk forgets a named font when its Python Font object is collected."""

    palette: Palette
    fonts: dict[str, tkfont.Font] = field(default_factory=dict)

    def font(self, role: str) -> tkfont.Font:
        return self.fonts[role]


def _first_family(root: tk.Misc, candidates: tuple[str, ...]) -> str:
    available = set(tkfont.families(root))
    return next((family for family in candidates if family in available), "TkDefaultFont")


def apply_theme(root: tk.Tk, palette: Palette) -> Theme:
    """Configure fonts and ttk styles for ``root``; returns the Theme to keep."""
    sans = _first_family(root, _SANS_FAMILIES)
    mono = _first_family(root, _MONO_FAMILIES)
    for named in ("TkDefaultFont", "TkTextFont", "TkMenuFont", "TkHeadingFont"):
        tkfont.nametofont(named).configure(family=sans, size=10)
    theme = Theme(palette)
    for role, options in {
        "body": dict(family=sans, size=11),
        "bold": dict(family=sans, size=11, weight="bold"),
        "small": dict(family=sans, size=9),
        "notice": dict(family=sans, size=9, slant="italic"),
        "heading": dict(family=sans, size=9, weight="bold"),
        "title": dict(family=sans, size=18, weight="bold"),
        "mono": dict(family=mono, size=10),
    }.items():
        theme.fonts[role] = tkfont.Font(root, **options)
    root.configure(background=palette.window)
    _style_ttk(ttk.Style(root), palette, theme)
    return theme


def _style_ttk(style: ttk.Style, p: Palette, theme: Theme) -> None:
    style.theme_use("clam")
    # clam draws 3D edges with lightcolor/darkcolor; making them match the face
    # gives the flat, modern look.
    style.configure(".", background=p.window, foreground=p.text, bordercolor=p.border,
                    lightcolor=p.window, darkcolor=p.window, troughcolor=p.window,
                    focuscolor=p.accent, selectbackground=p.selection, selectforeground=p.text,
                    fieldbackground=p.surface, insertcolor=p.text, font="TkDefaultFont")
    style.map(".", foreground=[("disabled", p.muted)])

    style.configure("TButton", padding=(14, 6), background=p.button, bordercolor=p.border,
                    lightcolor=p.button, darkcolor=p.button)
    style.map("TButton", background=[("disabled", p.window), ("pressed", p.button_active),
                                     ("active", p.button_active)],
              lightcolor=[("active", p.button_active)], darkcolor=[("active", p.button_active)],
              bordercolor=[("focus", p.accent)])
    style.configure("Accent.TButton", background=p.accent, foreground=p.on_accent,
                    bordercolor=p.accent, lightcolor=p.accent, darkcolor=p.accent)
    style.map("Accent.TButton",
              background=[("disabled", p.border), ("pressed", p.accent_active), ("active", p.accent_active)],
              foreground=[("disabled", p.muted)],
              lightcolor=[("disabled", p.border), ("active", p.accent_active)],
              darkcolor=[("disabled", p.border), ("active", p.accent_active)],
              bordercolor=[("disabled", p.border), ("focus", p.accent_active)])

    style.configure("TEntry", padding=(8, 6), fieldbackground=p.surface, bordercolor=p.border,
                    lightcolor=p.surface, darkcolor=p.surface, insertcolor=p.text)
    style.map("TEntry", bordercolor=[("invalid", p.error), ("focus", p.accent)],
              lightcolor=[("focus", p.accent)], fieldbackground=[("readonly", p.window)])
    style.configure("TCheckbutton", background=p.window, indicatorbackground=p.surface,
                    indicatorforeground=p.accent, indicatormargin=(0, 0, 6, 0))
    style.map("TCheckbutton", background=[("active", p.window)],
              indicatorbackground=[("pressed", p.button_active), ("selected", p.surface)])

    # A thin scrollbar without arrow buttons, like current desktop toolkits.
    style.layout("Vertical.TScrollbar", [("Vertical.Scrollbar.trough", {"sticky": "ns", "children": [
        ("Vertical.Scrollbar.thumb", {"expand": "1", "sticky": "nswe"})]})])
    style.configure("Vertical.TScrollbar", background=p.thumb, troughcolor=p.surface,
                    bordercolor=p.surface, lightcolor=p.thumb, darkcolor=p.thumb,
                    arrowcolor=p.muted, gripcount=0, arrowsize=10)
    style.map("Vertical.TScrollbar", background=[("active", p.muted)])
    style.configure("TPanedwindow", background=p.border)
    style.configure("Sash", sashthickness=1, gripcount=0, background=p.border)

    # ttk styles inherit only along the dotted suffix ("Card.Muted.TLabel" gets
    # Muted.TLabel's options, not Card.TLabel's), so every area/variant pair is spelled out.
    variants = {"": {}, "Muted.": dict(foreground=p.muted), "Error.": dict(foreground=p.error),
                "Small.": dict(foreground=p.muted, font=theme.font("small")),
                "Heading.": dict(foreground=p.muted, font=theme.font("heading")),
                "Title.": dict(font=theme.font("title")), "Mono.": dict(font=theme.font("mono"))}
    areas = {"": p.window, "Sidebar.": p.sidebar, "Status.": p.sidebar, "Card.": p.surface,
             "Banner.": p.warning_background}
    for area, background in areas.items():
        style.configure(f"{area}TFrame", background=background, bordercolor=p.border)
        for variant, options in variants.items():
            style.configure(f"{area}{variant}TLabel", background=background, **options)
    style.configure("Banner.TLabel", foreground=p.warning)
    style.configure("Card.TCheckbutton", background=p.surface)
    style.map("Card.TCheckbutton", background=[("active", p.surface)])
