"""What the client's log lines look like to a user: one line on stderr, never a
traceback.

The client logs only what went wrong out of sight (a file job or the network
thread failing, a settings file ignored); the user is told in the conversation
too. Unconfigured, Python would print such a record's whole traceback. With
SECUREX_DEBUG=1 every record, tracebacks included, goes to stderr for a bug report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

DEBUG_ENV = "SECUREX_DEBUG"
HANDLER_NAME = "securex"


class OneLineFormatter(logging.Formatter):
    """The message and the error's name and words, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        error = record.exc_info[1] if record.exc_info else None
        if error is not None:
            text = f"{text} ({type(error).__name__}: {error})"
        return "Secure X: " + " ".join(text.split())


def configure(environ: Mapping[str, str] = os.environ) -> None:
    """Send the client's log records to stderr, as a user or a debugging developer wants them."""
    debug = environ.get(DEBUG_ENV, "") not in ("", "0")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(name)s %(levelname)s: %(message)s")
                         if debug else OneLineFormatter())
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:   # configured before: replaced
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
