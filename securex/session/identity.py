"""This member's identity keys and the safety codes it remembers (trust on first use).

An identity is an Ed25519 key, one per display name used on this computer,
created the first time the name is used and kept in ``identities.json`` (0600).
The safety codes of the members met are kept in ``known.json``, by name, so a
name that comes back with another code is warned about.

While a session runs it holds a lock on its name (``in-use/``), so a second
window or terminal on this computer cannot join as the same member: the room's
members would take it for the first one reconnecting and drop that one.
"""

from __future__ import annotations

import binascii
import os
import secrets
import threading
from pathlib import Path

from crypto_utils import IDENTITY_KEY_BYTES, RandBytes, new_identity_seed, sha256
from securex import storage
from securex.errors import SecureXError
from securex.session.handshake import LocalIdentity
from securex.text import name_key

IDENTITIES_FILE = "identities.json"
KNOWN_FILE = "known.json"
IN_USE_DIR = "in-use"
MAX_KNOWN = 1000      # names remembered; the oldest are forgotten past this


def load_identity(name: str, directory: Path | None = None,
                  randbytes: RandBytes = secrets.token_bytes) -> LocalIdentity:
    """The identity for ``name``, created (and saved, 0600) if this is its first use.
    Raises SecureXError if the key file cannot be written."""
    path = (directory or storage.config_dir()) / IDENTITIES_FILE
    identities = storage.read_json(path)
    entry = identities.get(name)
    seed = _seed_from(entry)
    if seed is None:
        seed = new_identity_seed(randbytes)
        identities[name] = seed.hex()
        try:
            storage.write_json(path, identities)
        except OSError as error:
            raise SecureXError(f"Cannot save your identity key in {path}: {error.strerror or error}. "
                               "Check that the folder is writable.") from None
    return LocalIdentity.from_seed(name, seed)


class IdentityInUse:
    """A session's hold on its name; ``release`` once the session is over."""

    def __init__(self, path: Path | None) -> None:
        self._path = path

    def release(self) -> None:
        if self._path is not None:
            _release(self._path)
            self._path = None


# The locks this process holds, with how many of its sessions use each: within one
# process sessions follow one another (a desktop's "Connect again" may start the next
# before the last has quite ended), so only another process is ever refused.
_held: dict[Path, tuple[int, int]] = {}        # lock file -> (fd, sessions using it)
_held_lock = threading.Lock()


def claim_identity(name: str, directory: Path | None = None) -> IdentityInUse:
    """Hold the name for a session. Raises SecureXError if another process on this
    computer holds it. Where locks cannot be taken (no fcntl, a read-only folder),
    nothing is held and the session goes on."""
    try:
        import fcntl
    except ImportError:
        return IdentityInUse(None)
    folder = (directory or storage.config_dir()) / IN_USE_DIR
    path = folder / f"{sha256(name.encode()).hex()[:32]}.lock"     # any name, as a safe file name
    with _held_lock:
        if path in _held:
            fd, sessions = _held[path]
            _held[path] = (fd, sessions + 1)
            return IdentityInUse(path)
        try:
            storage.ensure_private_dir(folder)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return IdentityInUse(None)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # released by the kernel however the process ends
        except BlockingIOError:
            os.close(fd)
            raise SecureXError(f"Secure X is already running as {name} on this computer (another window or "
                               "terminal). Use that one, or join under another name.") from None
        except OSError:
            os.close(fd)                     # a file system without locks (some network ones)
            return IdentityInUse(None)
        _held[path] = (fd, 1)
        return IdentityInUse(path)


def _release(path: Path) -> None:
    with _held_lock:
        fd, sessions = _held[path]
        if sessions > 1:
            _held[path] = (fd, sessions - 1)
        else:
            del _held[path]
            os.close(fd)


def _seed_from(entry: object) -> bytes | None:
    if not isinstance(entry, str):
        return None
    try:
        seed = bytes.fromhex(entry)
    except (ValueError, binascii.Error):
        return None
    return seed if len(seed) == IDENTITY_KEY_BYTES else None


def load_known_codes(directory: Path | None = None) -> dict[str, str]:
    """The codes remembered, keyed as names compare now: a file written when names
    compared otherwise (before lookalike letters counted as Latin ones) is not orphaned
    (a review finding). Two names that now compare alike keep the code met first: the
    other, if it is the real one, is then told apart with an alert, never quietly trusted."""
    data = storage.read_json((directory or storage.config_dir()) / KNOWN_FILE)
    codes: dict[str, str] = {}
    for name, code in data.items():
        if isinstance(name, str) and isinstance(code, str):
            codes.setdefault(name_key(name), code)
    return codes


def save_known_codes(codes: dict[str, str], directory: Path | None = None) -> None:
    """Remember the codes seen (the most recently added last); failing to write is
    logged, not fatal: it only weakens the next warning."""
    recent = dict(list(codes.items())[-MAX_KNOWN:])
    try:
        storage.write_json((directory or storage.config_dir()) / KNOWN_FILE, recent)
    except OSError as error:
        storage.log.warning("could not remember safety codes: %s", error)
