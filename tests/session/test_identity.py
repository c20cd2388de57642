"""securex.session.identity: the hold a running session keeps on its name. Within
one process sessions may overlap (the next starts before the last has ended);
another process is refused until every session holding the name has let go."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import ROOT, WAIT
from securex.session.identity import claim_identity

CLAIM_IN_ANOTHER_PROCESS = """
import sys
from pathlib import Path
from securex.errors import SecureXError
from securex.session.identity import claim_identity
try:
    claim_identity(sys.argv[1], Path(sys.argv[2]))
except SecureXError as error:
    print(error)
else:
    print("claimed")
"""


def claim_elsewhere(name: str, directory) -> str:
    return subprocess.run([sys.executable, "-c", CLAIM_IN_ANOTHER_PROCESS, name, str(directory)], cwd=ROOT,
                          capture_output=True, text=True, timeout=WAIT, check=True).stdout.strip()


def test_a_name_is_held_until_every_session_of_this_process_lets_go(tmp_path):
    first = claim_identity("Bob", tmp_path)
    second = claim_identity("Bob", tmp_path)          # "Connect again" before the last session ended
    assert claim_elsewhere("Bob", tmp_path).startswith("Secure X is already running as Bob on this computer")
    assert claim_elsewhere("Alice", tmp_path) == "claimed"      # other names are free
    first.release()
    assert claim_elsewhere("Bob", tmp_path).startswith("Secure X is already running as Bob")
    second.release()
    second.release()                                   # twice is harmless
    assert claim_elsewhere("Bob", tmp_path) == "claimed"


@pytest.mark.parametrize("name", ["Zoë", "../../etc", "a" * 200, "名前"])
def test_any_name_gets_a_lock_file_inside_the_folder(tmp_path, name):
    held = claim_identity(name, tmp_path)
    try:
        [lock] = (tmp_path / "in-use").iterdir()
        assert lock.parent == tmp_path / "in-use" and "/" not in lock.name
        assert claim_elsewhere(name, tmp_path).startswith("Secure X is already running as ")
    finally:
        held.release()


def test_two_long_names_alike_but_for_their_end_are_two_names(tmp_path):
    """Review finding: the lock file took the first 100 bytes of the name, so two
    26-emoji names that differed only at the end were refused as one."""
    first, second = "\U0001F600" * 25 + "a", "\U0001F600" * 25 + "b"
    held = claim_identity(first, tmp_path)
    try:
        assert claim_elsewhere(second, tmp_path) == "claimed"
    finally:
        held.release()
