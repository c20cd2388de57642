"""The benchmark runs every phase end to end with tiny counts, and verifies what it
measured. No timing is asserted: the figures are for people (README), not for CI,
and this machine may be busy."""

from __future__ import annotations

import re
import subprocess
import sys

from helpers import ROOT, python_env

NUMBER = r"[\d,]+(\.\d+)?"
SIZES = ("100 B", "4 KiB")
RELAYS = ("Secure X", "bare")


def figure_patterns() -> dict[str, list[str]]:
    """Per phase, a line every run must print: a figure with its unit."""
    flood = [rf"^  flood {relay} relay, {members} members, {size}, {what}: median {NUMBER} {unit}"
             for relay in RELAYS for members in range(2, 6) for size in SIZES
             for what, unit in (("throughput", "deliveries/s"), ("relay CPU", "us/delivery"))]
    e2e = [rf"^  e2e {relay} relay, 5 ChatSession clients, 100 B, {what}: median {NUMBER} {unit}"
           for relay in RELAYS for what, unit in (("throughput", "deliveries/s"), ("relay CPU", "us/delivery"))]
    return {
        "crypto": [rf"^  crypto AES-256-GCM seal, 100 B: {NUMBER} us/op", rf"^  crypto Ed25519 verify: {NUMBER} us/op"],
        "flood": [*flood, r"^  flood secure/bare, 5 members, 100 B: throughput \d+\.\d\d, relay CPU per delivery",
                  rf"^  flood relay peak memory: Secure X {NUMBER} MiB, bare {NUMBER} MiB"],
        "e2e": e2e,
        "latency": [*(rf"^  latency Secure X relay, .*, {q}: {NUMBER} ms$" for q in ("p50", "p90", "p99", "max")),
                    *(rf"^  latency relay hop alone, {relay} relay, .*, p99: {NUMBER} ms$" for relay in RELAYS)],
        "join": [rf"^  join scrypt alone .*: median {NUMBER} ms",
                 rf"^  join one PAKE \+ identity proof, newcomer's side: median {NUMBER} ms",
                 rf"^  join with 4 members present .*: median {NUMBER} ms .*, max {NUMBER} ms"],
        "overhead": [*(rf"^  overhead 100 B text to {k} recipients?, to one receiver: {NUMBER} B in 1 ROUTED frame"
                       for k in range(1, 5)), r"^  overhead .*, per recipient: frame header .* = \d+ B$"],
        "idle": [rf"^  idle relay memory: {NUMBER} MiB resident with 5 members",
                 rf"^  idle relay CPU: {NUMBER} ms over 1 s", rf"^  idle terminal client CPU: {NUMBER} ms over 1 s"],
    }


def test_quick_run_measures_every_phase_verifies_every_delivery_and_ends_with_the_ratio():
    result = subprocess.run([sys.executable, "bench/relay_bench.py", "--quick"], cwd=ROOT, env=python_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    for phase, patterns in figure_patterns().items():
        assert f"[{phase}]" in " ".join(lines), f"phase {phase} did not run"
        for pattern in patterns:
            assert any(re.search(pattern, line) for line in lines), f"{phase}: no line matches {pattern!r}"
    checks = [line for line in lines if ", check: verified:" in line]
    # floods (2 relays x 2 sizes x 4 rooms), end to end (2 relays), latency (2 relay hops, clients at 2 paces)
    assert len(checks) == 16 + 2 + 2 + 2, checks
    assert all("verified: 0 lost, 0 duplicated, 0 reordered" in line for line in checks), checks
    assert not [line for line in lines if "FAILED" in line]
    assert len([line for line in lines if re.search(r" -> (met|MISSED)$", line)]) == 3   # ratio, latency, join
    assert "every phase ran and every delivery was verified: yes" in lines
    assert re.fullmatch(r"ratio secure/bare server throughput: \d+\.\d\d", lines[-1])
    assert "Traceback" not in result.stderr
