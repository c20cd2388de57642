"""The benchmark runs end to end with tiny counts and verifies what it measured.
No timing is asserted: the figures are for people (README), not for CI."""

from __future__ import annotations

import re
import subprocess
import sys

from helpers import ROOT, python_env


def test_relay_bench_quick_run_verifies_and_prints_the_ratio_line():
    # Every phase at --quick counts: both servers flooded by raw members, real
    # ChatSession clients, latency, join/memory/idle (1 s idle window).
    result = subprocess.run([sys.executable, "bench/relay_bench.py", "--quick"],
                            cwd=ROOT, env=python_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert "zero loss verified: yes" in lines
    assert "  zero loss under flood: met" in lines
    assert re.fullmatch(r"ratio secure/bare server throughput: \d+\.\d\d", lines[-1])
    assert "Traceback" not in result.stderr
