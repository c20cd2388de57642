"""This member's identity keys and the safety codes it remembers (trust on first use).

An identity is an Ed25519 key, one per display name used on this computer,
created the first time the name is used and kept in ``identities.json`` (0600).
The safety codes of the members met are kept in ``known.json``, by name, so a
name that comes back with another code is warned about.
"""

from __future__ import annotations

import binascii
import secrets
from pathlib import Path

from crypto_utils import IDENTITY_KEY_BYTES, RandBytes, new_identity_seed
from securex import storage
from securex.errors import SecureXError
from securex.session.handshake import LocalIdentity

IDENTITIES_FILE = "identities.json"
KNOWN_FILE = "known.json"
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


def _seed_from(entry: object) -> bytes | None:
    if not isinstance(entry, str):
        return None
    try:
        seed = bytes.fromhex(entry)
    except (ValueError, binascii.Error):
        return None
    return seed if len(seed) == IDENTITY_KEY_BYTES else None


def load_known_codes(directory: Path | None = None) -> dict[str, str]:
    data = storage.read_json((directory or storage.config_dir()) / KNOWN_FILE)
    return {name: code for name, code in data.items() if isinstance(name, str) and isinstance(code, str)}


def save_known_codes(codes: dict[str, str], directory: Path | None = None) -> None:
    """Remember the codes seen (the most recently added last); failing to write is
    logged, not fatal: it only weakens the next warning."""
    recent = dict(list(codes.items())[-MAX_KNOWN:])
    try:
        storage.write_json((directory or storage.config_dir()) / KNOWN_FILE, recent)
    except OSError as error:
        storage.log.warning("could not remember safety codes: %s", error)
