"""Paths in the desktop app: a file path pasted into the message box, a folder opened
in the file manager, a path shortened for display.

``path_in_draft`` is pure (no disk access) and runs on the Tk thread; ``open_folder``
starts another program and waits a moment for its verdict, so it runs on the errand
thread (``background.py``) and returns a message for the user instead of raising.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

OPEN_WAIT = 5.0    # seconds to wait for the opener's verdict (xdg-open returns once the file manager starts)


def path_in_draft(draft: str) -> Path | None:
    """The file a draft names, if the whole draft is one absolute path (``/home/me/a.pdf``)
    or one ``file://`` URI, as pasting a file from a file manager or a terminal gives;
    None for anything else. Whether the file exists is for the caller to check, off the
    Tk thread. ``/who`` and other commands are not paths: a path has a second slash."""
    text = draft.strip()
    if "\n" in text or len(text) < 3:
        return None
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    if text.lower().startswith("file://"):
        parsed = urllib.parse.urlsplit(text)
        if parsed.netloc not in ("", "localhost"):
            return None
        text = urllib.parse.unquote(parsed.path)
        return Path(text) if text.startswith("/") else None
    if text.startswith("/") and not text.startswith("//") and "/" in text[1:].rstrip("/"):
        return Path(text)
    return None


def display_path(path: Path) -> str:
    """``path`` with the home folder written ``~``, as people recognise it."""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def opener_command(folder: Path) -> list[str]:
    """The program that shows ``folder`` in this desktop's file manager."""
    return ["open", str(folder)] if sys.platform == "darwin" else ["xdg-open", str(folder)]


def open_folder(folder: Path) -> str | None:
    """Show ``folder`` in the file manager; None, or why it could not be done (errand thread)."""
    if not folder.is_dir():
        return f"The folder {folder} is not there any more."
    if sys.platform == "win32":
        try:
            os.startfile(folder)   # type: ignore[attr-defined]  (Windows only)
        except OSError as error:
            return f"Could not open {folder}: {error.strerror or error}."
        return None
    command = opener_command(folder)
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        return (f"No program to open folders was found ({command[0]} is not installed). "
                f"The file is in {folder}.")
    try:
        status = process.wait(OPEN_WAIT)
    except subprocess.TimeoutExpired:
        return None    # still running: it is the file manager itself, showing the folder
    if status != 0:
        return f"Could not open the folder ({command[0]} failed with status {status}). The file is in {folder}."
    return None
