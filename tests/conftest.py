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

# Hypothesis times each example against a 200 ms deadline by default; on a loaded CI
# machine that deadline, not the code, would fail. Properties are about behaviour.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("securex", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("securex")
