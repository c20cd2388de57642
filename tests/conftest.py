"""pytest setup: the project root and this folder on sys.path, so tests import the
project's modules and the shared ``helpers`` directly; and no test ever writes to
the real ~/.config."""

import os
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS.parent), str(TESTS)]

import helpers  # noqa: E402  (after the path is set)

os.environ["SECUREX_CONFIG_DIR"] = str(helpers.CONFIG_BASE / "default")
