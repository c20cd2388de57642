"""The benchmark runs end to end with tiny counts and verifies what it measured.
No timing is asserted: the figures are for people (README), not for CI."""

from __future__ import annotations

import re
import subprocess
import sys

from helpers import ROOT, python_env


def test_relay_bench_quick_run_verifies_and_prints_the_ratio_line():
    # The raw-socket flood phases are left to on-demand runs: at --quick counts their
    # load generators can stall each other (see the README); the phases here use
    # real client sessions and still exercise both servers.
    result = subprocess.run([sys.executable, "bench/relay_bench.py", "--quick", "--phases", "e2e,latency,idle"],
                            cwd=ROOT, env=python_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert "zero loss verified: yes" in lines
    assert re.fullmatch(r"ratio secure/bare server throughput: (\d+\.\d\d|nan)", lines[-1])
    assert "Traceback" not in result.stderr
