"""What the desktop app remembers between runs: ``settings.json`` in the config directory.

    {"host": "192.168.1.23", "port": 5050, "name": "Alice", "downloads": "/home/alice/Downloads/Secure X"}

Host, port and name are the last ones that got into a room; ``downloads`` is the
folder accepted files go to, once the user has changed it (the default is
``~/Downloads/Secure X``). The passphrase is never written anywhere. The file is
private to the user and replaced whole (``securex/storage.py``).

``load`` reads it once, at start-up, before the window appears; ``save`` is
meant to run on the errand thread (``background.py``), never on the Tk thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from securex import storage
from securex.protocol import DEFAULT_PORT

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"


@dataclass(frozen=True)
class Settings:
    host: str = ""
    port: int = DEFAULT_PORT
    name: str = ""
    downloads: Path | None = None     # None: the session's default folder

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"host": self.host, "port": self.port, "name": self.name}
        if self.downloads is not None:
            data["downloads"] = str(self.downloads)
        return data


def settings_path() -> Path:
    return storage.config_dir() / SETTINGS_FILE


def load() -> Settings:
    """The remembered settings; defaults for anything missing or unusable."""
    data = storage.read_json(settings_path())
    try:
        port = int(data.get("port", DEFAULT_PORT))
    except (TypeError, ValueError):
        port = DEFAULT_PORT
    downloads = data.get("downloads")
    return Settings(str(data.get("host", "")), port if 1 <= port <= 65535 else DEFAULT_PORT,
                    str(data.get("name", "")),
                    Path(downloads) if isinstance(downloads, str) and downloads.strip() else None)


def save(settings: Settings) -> str | None:
    """Write ``settings``; returns a message if that failed (a chat is not interrupted for it)."""
    path = settings_path()
    try:
        storage.write_json(path, settings.to_json())
    except OSError as error:
        log.info("could not write %s: %s", path, error)
        return f"Could not save the settings in {path}: {error.strerror or error}."
    return None
