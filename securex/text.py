"""Text that reaches a screen: names and messages made safe to show. Pure functions.

Every name and message another member chose passes through here before a front
end sees it, and one's own name follows the same rules, so nothing a member
types can pass for something the client itself says.
"""

from __future__ import annotations

import re
import unicodedata

from securex.lookalikes import as_latin

MAX_NAME_CHARS = 32
# The terminal starts the client's own lines with these ("* Carol joined",
# "! 2 messages were not received"); no member's line can, since no name may.
CLIENT_MARKS = "*!"


# Characters that must never reach a one-line display: controls (terminal escapes),
# format characters (bidi overrides, zero-width joiners used to fake names), and
# line or paragraph separators (they split one line into several for scripts).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# A file name gets no unassigned or private-use characters either: what they will
# look like (or mean to a file system) nobody can tell.
_UNSAFE_IN_FILE_NAMES = _UNSAFE_CATEGORIES | {"Cn", "Co"}
_EMOJI_JOINERS = frozenset("\u200d\ufe0f\ufe0e")   # ZWJ and variation selectors keep emoji whole


_SPACE_RUNS = re.compile(r"[ \t]{2,}|\t")


def one_line(text: str) -> str:
    """Message text for a one-line display: newlines shown as a visible mark, and runs
    of spaces or tabs as one space, so padding cannot wrap a line on a terminal into
    what looks like a second line from someone else."""
    return _SPACE_RUNS.sub(" ", text.replace("\n", " \u23ce "))


def display_safe(text: str, *, keep_newlines: bool = True) -> str:
    """Text another member chose, made safe to show: every control, format or
    line/paragraph separator character becomes U+FFFD (newlines and tabs stay when
    ``keep_newlines``; the emoji joiners stay so emoji draw whole)."""
    if text.isprintable():      # nothing of another category (the common case, and fast)
        return text
    allowed = "\n\t" if keep_newlines else ""
    text = text.replace("\r\n", "\n")   # a Windows line end is a newline; a lone CR rewinds a terminal line
    return "".join(
        ch if ch in allowed or ch in _EMOJI_JOINERS or unicodedata.category(ch) not in _UNSAFE_CATEGORIES
        else "\ufffd" for ch in text)


# Code points that draw as nothing (Unicode's Default_Ignorable_Code_Point, plus the
# blank-looking fillers it leaves out): "Bob" + one of these looks like "Bob".
_INVISIBLE_RANGES = ((0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
                     (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x2800, 0x2800),
                     (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8),
                     (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF))
# Alphabets with letters that look alike ("Bоb" with a Cyrillic о): one name keeps to one.
_LOOKALIKE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "LISU", "COPTIC", "CANADIAN", "TIFINAGH",
                      "OSAGE")


def _invisible(ch: str) -> bool:
    code = ord(ch)
    return any(low <= code <= high for low, high in _INVISIBLE_RANGES)


def _lookalike_scripts(name: str) -> set[str]:
    scripts = set()
    for ch in name:
        if ch.isalpha():
            first_word = unicodedata.name(ch, "").split(" ", 1)[0]
            if first_word in _LOOKALIKE_SCRIPTS:
                scripts.add(first_word)
    return scripts


def validate_name(name: str) -> str:
    """The display name to use (NFKC-normalised, spaces collapsed), or ValueError saying
    what is wrong with it. The same rules hold for one's own name and for every name
    received, so two names that look the same are the same name (and get told apart
    by their safety codes), and no name can pass for a line the client writes."""
    if any(unicodedata.category(ch) in _UNSAFE_CATEGORIES for ch in name):   # before anything folds them away
        raise ValueError("The name cannot contain control, formatting, invisible or line-separator characters.")
    name = " ".join(unicodedata.normalize("NFKC", name).split())
    if not name:
        raise ValueError("The name is empty: enter a display name.")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"Keep the name to {MAX_NAME_CHARS} characters.")
    # Stricter than message text: no joiners or invisible characters either.
    if any(unicodedata.category(ch) in _UNSAFE_CATEGORIES or ch == "\ufffd" or _invisible(ch)
           or (ch.isspace() and ch != " ") for ch in name):
        raise ValueError("The name cannot contain control, formatting, invisible or line-separator characters.")
    if unicodedata.category(name[0]).startswith("M"):
        raise ValueError("The name cannot start with a combining mark.")
    if name[0] in CLIENT_MARKS:
        raise ValueError(f"The name cannot start with {name[0]!r}: lines starting with it are the client's own.")
    if len(_lookalike_scripts(name)) > 1:
        raise ValueError("The name mixes letters of alphabets that can look alike (Latin, Cyrillic, Greek and "
                         "others): use one alphabet.")
    if _spells_a_label(name):
        # "Alice (O2GJ)" would spell the label another Alice is shown with (a review finding).
        raise ValueError("The name cannot contain four capital letters or digits in brackets, like \"(K4F2)\": "
                         "that is how two members of one name are told apart.")
    return name


_BRACKETED_FOUR = re.compile(r"(?=(\S)\s*(\S{4})\s*(\S|$))")
_LABEL_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz234567")
_READ_AS_CAPITAL = frozenset("l1|")       # "(KlM3)" reads as "(KIM3)" (a tester's finding)


def _spells_a_label(name: str) -> bool:
    """Four characters that read as a label's code (capital letters, 2 to 7; lookalikes
    too) after an opening bracket of any kind, closed or not, anywhere in the name, marks
    and format characters aside. "Bob (Home)" or "Иван (Ваня)" read as names; "Alice
    (O2GJ)." or "Alice (KlM3" as a label."""
    bare = "".join(ch for ch in unicodedata.normalize("NFKD", name)
                   if not unicodedata.combining(ch) and unicodedata.category(ch) != "Cf")
    return any(unicodedata.category(opening) == "Ps" and (not closing or unicodedata.category(closing) == "Pe")
               and all((ch in _READ_AS_CAPITAL or not ch.islower()) and as_latin(ch.casefold()) in _LABEL_CHARACTERS
                       for ch in four)
               for opening, four, closing in _BRACKETED_FOUR.findall(bare))


def name_key(name: str) -> str:
    """What two names are compared by: equal keys look the same to a reader (lookalike
    letters of other alphabets count as the Latin ones they pass for: a review found
    "ꓮlice" and an all-Cyrillic "Аӏісе" taken for new names beside a trusted "Alice")."""
    folded = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", name).casefold())
    bare = "".join(ch for ch in folded if not unicodedata.combining(ch))     # "Chloё" reads as "Chloë"
    return unicodedata.normalize("NFKC", as_latin(bare)).casefold()


MAX_FILE_NAME_CHARS = 120
MAX_FILE_NAME_BYTES = 240       # under the usual 255-byte limit, with room for " (999)"
# Names Windows treats as devices whatever the extension: refused everywhere, so a
# room with a Windows member is safe too.
_RESERVED_FILE_NAMES = frozenset({"con", "prn", "aux", "nul", "conin$", "conout$",
                                  *(f"{port}{i}" for port in ("com", "lpt")
                                    for i in ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "\u00b9", "\u00b2",
                                              "\u00b3"))})


def safe_file_name(name: str) -> str:
    """A file name another member offered, made safe to create in a download folder:
    the last path component only, no control, format or invisible characters, no
    leading dots (hidden files, "..") or trailing dots and spaces, no separators or
    characters Windows forbids, no device names, at most MAX_FILE_NAME_CHARS."""
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join("_" if (unicodedata.category(ch) in _UNSAFE_IN_FILE_NAMES or ch in '<>:"|?*'
                              or (ch.isspace() and ch != " ") or _invisible(ch)) else ch for ch in name)
    # One space at a time (a run of them can push ".exe" out of sight), no leading or
    # trailing dots or spaces, no leading dash (an option to a command).
    # Stripped together: "-.bashrc" must not become ".bashrc" once its dash is gone.
    cleaned = " ".join(part for part in cleaned.split(" ") if part).lstrip(" .-").rstrip(" .")
    if len(cleaned) > MAX_FILE_NAME_CHARS:
        stem, dot, extension = cleaned.rpartition(".")
        if dot and 0 < len(extension) <= 16:
            cleaned = stem[:MAX_FILE_NAME_CHARS - len(extension) - 1].rstrip(" .") + "." + extension
        else:
            cleaned = cleaned[:MAX_FILE_NAME_CHARS].rstrip(" .")
    while len(cleaned.encode("utf-8")) > MAX_FILE_NAME_BYTES:     # file systems count bytes
        stem, dot, extension = cleaned.rpartition(".")
        cleaned = (stem[:-1] + dot + extension) if dot and len(stem) > 1 else cleaned[:-1]
    cleaned = cleaned.rstrip(" .")      # what a cut may have left at the end
    if not cleaned or cleaned.split(".", 1)[0].strip().casefold() in _RESERVED_FILE_NAMES:
        cleaned = f"file {cleaned}".strip() if cleaned else "file"
    return cleaned


def shortened_file_name(name: str) -> str | None:
    """``name`` with the part before its extension about half as long, or None once
    that part is one character: for a file system whose names must be shorter than
    usual (eCryptfs allows 143 bytes)."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        stem, extension = name, ""
    if len(stem) <= 1:
        return None
    shorter = stem[:len(stem) // 2].rstrip(" .") or stem[0]
    return f"{shorter}.{extension}" if extension else shorter


def human_size(size: int) -> str:
    """A size as people read it: 393.3 kB, 1.5 GB (powers of 1000, like file managers)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} byte" if size == 1 else f"{size} bytes"
