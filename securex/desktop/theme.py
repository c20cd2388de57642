"""Colours, fonts and ttk styles of the desktop app.

The look is built on ttk's portable 'clam' theme with every colour set
explicitly, so the window reads the same whatever the desktop's own theme is.
Two palettes exist: light (default) and dark. ``SECUREX_THEME=dark`` (or
``light``) chooses one; otherwise a ``GTK_THEME`` naming a dark variant picks
dark. Every text colour is checked against its background by the tests (WCAG
contrast of at least 4.5:1), in both palettes.

Text is shown as it is: Tk 8.6.13 draws characters outside the Basic
Multilingual Plane (emoji) when an installed font has them (``fonts-symbola``
gives colour-less emoji on Linux), and shows its own placeholder box when none
does. Nothing is replaced here. Only the Tk thread may call anything here that
takes a widget.
"""

from __future__ import annotations

import os
import tkinter as tk
import tkinter.font as tkfont
from dataclasses import dataclass, field
from tkinter import ttk

THEME_ENV = "SECUREX_THEME"
SASH_WIDTH = 1      # pixels between the message view and the side panel

_SANS_FAMILIES = ("Inter", "Cantarell", "Noto Sans", "Segoe UI", "SF Pro Text", "Helvetica Neue",
                  "DejaVu Sans", "Helvetica", "Arial")
_MONO_FAMILIES = ("JetBrains Mono", "DejaVu Sans Mono", "Noto Sans Mono", "Consolas", "Menlo", "Courier")


@dataclass(frozen=True)
class Palette:
    name: str
    window: str          # window and dialog background
    surface: str         # message view, entries, cards
    sidebar: str
    text: str
    muted: str
    border: str
    button: str
    button_active: str
    accent: str          # accent backgrounds (buttons, progress bars), with on_accent text
    accent_active: str
    accent_text: str     # accent as a text colour: your own name, links
    on_accent: str
    own_background: str
    selection: str
    warning: str
    warning_background: str
    error: str           # error text on surface/window
    alert_background: str   # loud blocks (a changed safety code), with on_accent text
    ok: str
    disabled: str        # the message box when nothing can be typed
    thumb: str
    sender_colours: tuple[str, ...]


LIGHT = Palette(
    name="light", window="#f3f4f7", surface="#ffffff", sidebar="#eceef2", text="#1d2127",
    muted="#5f6773", border="#d3d7de", button="#ffffff", button_active="#e7eaf0",
    accent="#2a62c9", accent_active="#2152ad", accent_text="#2a62c9", on_accent="#ffffff",
    own_background="#edf3fd", selection="#c9dbfa", warning="#8a5300", warning_background="#fdf2dc",
    error="#b4232a", alert_background="#b4232a", ok="#1b7a40", disabled="#e4e6eb", thumb="#c3c8d0",
    sender_colours=("#b53a0a", "#0b7038", "#7030e0", "#0b6a82", "#b3155a", "#8a5900", "#457010",
                    "#9b2229"))

DARK = Palette(
    name="dark", window="#1c1f24", surface="#24282e", sidebar="#202328", text="#e4e7eb",
    muted="#98a1ac", border="#3d434c", button="#2d3239", button_active="#383e46",
    accent="#3569cf", accent_active="#2b5bb8", accent_text="#6fa8ff", on_accent="#ffffff",
    own_background="#2a3445", selection="#38557f", warning="#f2b552", warning_background="#3a2f1a",
    error="#ff8080", alert_background="#8f1d24", ok="#5fd08a", disabled="#16181c", thumb="#4a5059",
    sender_colours=("#fb923c", "#4ade80", "#b49cff", "#38d3ee", "#f472b6", "#facc15", "#a3e635",
                    "#f87171"))


def palette_from_env(environ: dict[str, str] | None = None) -> Palette:
    """The palette the user asked for: SECUREX_THEME, else a dark GTK_THEME, else light."""
    environ = os.environ if environ is None else environ
    wanted = environ.get(THEME_ENV, "").strip().lower()
    if wanted in ("dark", "light"):
        return DARK if wanted == "dark" else LIGHT
    return DARK if "dark" in environ.get("GTK_THEME", "").lower() else LIGHT


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two ``#rrggbb`` colours (1 to 21; 4.5 is readable text)."""
    def luminance(colour: str) -> float:
        channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    high, low = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


class ColourAssigner:
    """A distinct colour for each member present (by safety code: a namesake, or a new
    label, changes nobody's colour), kept while they stay, and kept for them while they
    are away (a reconnect lists everyone again, in another order) as
    long as nobody present needs it. (A hash of the name gave two of five members the
    same colour more often than not.)"""

    def __init__(self, palette: Palette) -> None:
        self._palette = palette
        self._assigned: dict[str, str] = {}      # oldest first
        self._present: list[str] = []

    def colour(self, key: str) -> str:
        taken = [self._assigned[other] for other in self._present if other != key and other in self._assigned]
        colour = self._assigned.get(key)
        if colour is None or colour in taken:
            # The first colour nobody present has, and nobody away remembers; with more
            # members than colours, the least used.
            away = [c for other, c in self._assigned.items() if other not in self._present and other != key]
            colour = min(self._palette.sender_colours, key=lambda c: (taken.count(c), away.count(c)))
            self._assigned.pop(key, None)
        self._assigned[key] = colour            # the most recently seen last
        return colour

    def keep_only(self, keys: list[str]) -> None:
        """Those present now; the others keep their colours until someone needs them (at
        most as many remembered as there are colours, the longest unseen forgotten first)."""
        self._present = list(keys)
        for key in keys:
            self.colour(key)
        away = [key for key in self._assigned if key not in self._present]
        for key in away[:max(0, len(away) - len(self._palette.sender_colours))]:
            del self._assigned[key]


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
        "small_bold": dict(family=sans, size=9, weight="bold"),
        "notice": dict(family=sans, size=9, slant="italic"),
        "heading": dict(family=sans, size=9, weight="bold"),
        "title": dict(family=sans, size=18, weight="bold"),
        "mono": dict(family=mono, size=10),
        "mono_small": dict(family=mono, size=9),
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
    style.configure("Small.TButton", padding=(8, 2), font=theme.font("small"))
    style.configure("Accent.TButton", background=p.accent, foreground=p.on_accent,
                    bordercolor=p.accent, lightcolor=p.accent, darkcolor=p.accent)
    style.map("Accent.TButton",
              background=[("disabled", p.border), ("pressed", p.accent_active), ("active", p.accent_active)],
              foreground=[("disabled", p.muted)],
              lightcolor=[("disabled", p.border), ("active", p.accent_active)],
              darkcolor=[("disabled", p.border), ("active", p.accent_active)],
              bordercolor=[("disabled", p.border), ("focus", p.accent_active)])
    style.configure("SmallAccent.TButton", padding=(8, 2), font=theme.font("small"), background=p.accent,
                    foreground=p.on_accent, bordercolor=p.accent, lightcolor=p.accent, darkcolor=p.accent)
    style.map("SmallAccent.TButton", background=[("pressed", p.accent_active), ("active", p.accent_active)],
              lightcolor=[("active", p.accent_active)], darkcolor=[("active", p.accent_active)])
    # A Cancel clicked once, waiting for the second click that stops the transfer.
    style.configure("SmallWarning.TButton", padding=(8, 2), font=theme.font("small"), background=p.warning_background,
                    foreground=p.warning, bordercolor=p.warning, lightcolor=p.warning_background,
                    darkcolor=p.warning_background)
    style.map("SmallWarning.TButton", background=[("pressed", p.warning_background), ("active", p.warning_background)])
    # The "new messages below" pill floating over the message view.
    style.configure("Pill.TButton", padding=(12, 3), background=p.accent, foreground=p.on_accent,
                    bordercolor=p.accent, lightcolor=p.accent, darkcolor=p.accent, font=theme.font("small_bold"))
    style.map("Pill.TButton", background=[("active", p.accent_active)],
              lightcolor=[("active", p.accent_active)], darkcolor=[("active", p.accent_active)])

    style.configure("TEntry", padding=(8, 6), fieldbackground=p.surface, bordercolor=p.border,
                    lightcolor=p.surface, darkcolor=p.surface, insertcolor=p.text)
    # "invalid" is listed first so a field with an error keeps its red border while focused.
    style.map("TEntry", bordercolor=[("invalid", p.error), ("focus", p.accent)],
              lightcolor=[("invalid", p.error), ("focus", p.accent)], fieldbackground=[("readonly", p.window)])
    style.configure("TCheckbutton", background=p.window, indicatorbackground=p.surface,
                    indicatorforeground=p.accent, indicatormargin=(0, 0, 6, 0))
    style.map("TCheckbutton", background=[("active", p.window)],
              indicatorbackground=[("pressed", p.button_active), ("selected", p.surface)])

    style.configure("Horizontal.TProgressbar", background=p.accent, troughcolor=p.window, bordercolor=p.border,
                    lightcolor=p.accent, darkcolor=p.accent, thickness=8)

    # A thin scrollbar without arrow buttons, like current desktop toolkits.
    style.layout("Vertical.TScrollbar", [("Vertical.Scrollbar.trough", {"sticky": "ns", "children": [
        ("Vertical.Scrollbar.thumb", {"expand": "1", "sticky": "nswe"})]})])
    style.configure("Vertical.TScrollbar", background=p.thumb, troughcolor=p.surface,
                    bordercolor=p.surface, lightcolor=p.thumb, darkcolor=p.thumb,
                    arrowcolor=p.muted, gripcount=0, arrowsize=10)
    style.map("Vertical.TScrollbar", background=[("active", p.muted)])
    style.configure("TPanedwindow", background=p.border)
    style.configure("Sash", sashthickness=SASH_WIDTH, gripcount=0, background=p.border)

    # ttk styles inherit only along the dotted suffix ("Card.Muted.TLabel" gets
    # Muted.TLabel's options, not Card.TLabel's), so every area/variant pair is spelled out.
    variants = {"": {}, "Muted.": dict(foreground=p.muted), "Error.": dict(foreground=p.error),
                "Warning.": dict(foreground=p.warning), "Ok.": dict(foreground=p.ok),
                "Small.": dict(foreground=p.muted, font=theme.font("small")),
                "Bold.": dict(font=theme.font("bold")),
                "Heading.": dict(foreground=p.muted, font=theme.font("heading")),
                "Title.": dict(font=theme.font("title")), "Mono.": dict(font=theme.font("mono"))}
    areas = {"": p.window, "Sidebar.": p.sidebar, "Status.": p.sidebar, "Card.": p.surface,
             "Banner.": p.warning_background, "Alert.": p.alert_background}
    for area, background in areas.items():
        style.configure(f"{area}TFrame", background=background, bordercolor=p.border)
        for variant, options in variants.items():
            style.configure(f"{area}{variant}TLabel", background=background, **options)
    style.configure("Banner.TLabel", foreground=p.warning)
    style.configure("Alert.TLabel", foreground=p.on_accent, font=theme.font("body"))
    style.configure("Card.Warning.TLabel", foreground=p.warning)
    style.configure("Sidebar.Member.TLabel", background=p.sidebar, font=theme.font("bold"))
    style.configure("Sidebar.Code.TLabel", background=p.sidebar, foreground=p.muted, font=theme.font("mono_small"))
    style.configure("Card.TCheckbutton", background=p.surface)
    style.map("Card.TCheckbutton", background=[("active", p.surface)])
    # A transfer in the message view: a card with a thin border on the view's own background.
    style.configure("Transfer.TFrame", background=p.surface, bordercolor=p.border, relief="solid", borderwidth=1)
