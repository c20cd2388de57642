"""Text that reaches a screen: names and messages made safe to show. Pure functions.

Every name and message another member chose passes through here before a front
end sees it, and one's own name follows the same rules, so nothing a member
types can pass for something the client itself says.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_CHARS = 32
# The terminal starts the client's own lines with these ("* Carol joined",
# "! 2 messages were not received"); no member's line can, since no name may.
CLIENT_MARKS = "*!"


# Characters that must never reach a one-line display: controls (terminal escapes),
# format characters (bidi overrides, zero-width joiners used to fake names), and
# line or paragraph separators (they split one line into several for scripts).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_EMOJI_JOINERS = frozenset("\u200d\ufe0f\ufe0e")   # ZWJ and variation selectors keep emoji whole


def one_line(text: str) -> str:
    """Message text for a one-line display: newlines shown as a visible mark."""
    return text.replace("\r\n", "\n").replace("\n", " \u23ce ")


def display_safe(text: str, *, keep_newlines: bool = True) -> str:
    """Text another member chose, made safe to show: every control, format or
    line/paragraph separator character becomes U+FFFD (newlines and tabs stay when
    ``keep_newlines``; the emoji joiners stay so emoji draw whole)."""
    allowed = "\n\t" if keep_newlines else ""
    return "".join(
        ch if ch in allowed or ch in _EMOJI_JOINERS or unicodedata.category(ch) not in _UNSAFE_CATEGORIES
        else "\ufffd" for ch in text)


def validate_name(name: str) -> str:
    """The display name to use, or ValueError saying what is wrong with it. The same
    rules hold for one's own name and for every name received."""
    name = name.strip()
    if not name:
        raise ValueError("The name is empty: enter a display name.")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"Keep the name to {MAX_NAME_CHARS} characters.")
    # Stricter than message text: no joiners either, so "Bob" and "Bob" + an
    # invisible character cannot both exist.
    if any(unicodedata.category(ch) in _UNSAFE_CATEGORIES or ch == "\ufffd" for ch in name):
        raise ValueError("The name cannot contain control, formatting or line-separator characters.")
    if name[0] in CLIENT_MARKS:
        raise ValueError(f"The name cannot start with {name[0]!r}: lines starting with it are the client's own.")
    return name
