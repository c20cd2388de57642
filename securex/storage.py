"""The files the client keeps: where they live and how they are written.

Everything goes in one directory, ``$XDG_CONFIG_HOME/securex`` (``~/.config``
when unset, ``%APPDATA%`` on Windows), created 0700. Every file in it is
written whole to a temporary file created 0600, then renamed over the old one,
so a crash never leaves half a file and nobody else on the machine can read it:

    identities.json   the Ed25519 identity key of each display name used here
    known.json        the safety code trusted for each member's name (first seen, or set by /trust)
    settings.json     the desktop app's last server, port, name and downloads folder (never the passphrase)
    in-use/           a lock file per name a running session uses (empty; see session/identity.py)

Reading never raises for a missing or damaged file: callers get an empty value
and carry on (a damaged identity file is set aside, not overwritten).

``folder_problem`` checks a folder received files are to be saved in.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CONFIG_DIR_ENV = "SECUREX_CONFIG_DIR"   # tests and portable installs point this elsewhere


def config_dir() -> Path:
    explicit = os.environ.get(CONFIG_DIR_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME")
    if not base and sys.platform == "win32":
        base = os.environ.get("APPDATA")
    return Path(base or Path.home() / ".config") / "securex"


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (0700) or tighten it to 0700 if it is ours and looser."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o700)


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with ``data``, readable by this user only."""
    ensure_private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; {} when it is missing or not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        log.warning("ignoring %s: %s", path, error)
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_private(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def is_private(path: Path) -> bool:
    """True if only the owner may read ``path`` (ssh's rule for key files)."""
    try:
        return not stat.S_IMODE(path.stat().st_mode) & 0o077
    except OSError:
        return True


def folder_problem(folder: Path) -> str | None:
    """Why files could not be saved in ``folder``, said before joining rather than at the
    first offer (a folder that does not exist yet is made then)."""
    try:
        if folder.is_symlink() and not folder.exists():
            return "a link to nothing"
        if not folder.exists():
            return None
    except OSError as error:        # a folder on the way that may not be entered, a name too long
        return f"it cannot be reached ({(error.strerror or str(error)).lower()})"
    if not folder.is_dir():
        return "that is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "files cannot be saved there (no permission, or a read-only disk)"
    return None
