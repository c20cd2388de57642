"""securex.logs as the client sets it up: what goes wrong out of sight (a file job,
the network thread) reaches the user as one line, never a traceback; SECUREX_DEBUG=1
gives a developer the whole story. Real processes: the root logger is per process."""

from __future__ import annotations

import subprocess
import sys

from helpers import ROOT, WAIT, python_env

# The client's own entry point configures logging; then a failure is logged the way
# file_worker and runner log theirs.
SCRIPT = """
import logging
import client
client.main(["--new-passphrase"])
try:
    {}["missing"]
except KeyError:
    logging.getLogger("securex.session.file_worker").exception("file job failed")
logging.getLogger("securex.desktop.app").debug("state DIALOG -> IN_ROOM")
"""


def client_logging(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=python_env(**env), capture_output=True,
                          text=True, timeout=WAIT, check=True)


def test_a_failure_logged_out_of_sight_reaches_the_user_as_one_line_not_a_traceback():
    result = client_logging()
    assert result.stderr == "Secure X: file job failed (KeyError: 'missing')\n"
    assert len(result.stdout.strip().split("-")) >= 5     # the passphrase it was asked for, alone on stdout


def test_securex_debug_gives_the_whole_traceback_and_the_debug_lines():
    result = client_logging(SECUREX_DEBUG="1")
    assert "Traceback (most recent call last)" in result.stderr and "KeyError: 'missing'" in result.stderr
    assert "state DIALOG -> IN_ROOM" in result.stderr
