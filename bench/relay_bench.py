#!/usr/bin/env python3
"""Secure X benchmark: ``python bench/relay_bench.py`` (``--quick`` for a smoke run).

Measures, on loopback, phase by phase (``--phases`` picks some, in this order):

  crypto    pycryptodome primitives, as ``crypto_bench.py`` prints them
  flood     relay throughput for routed frames: the Secure X relay against a bare
            relay with the same framing, rooms of 2 to 5, 100 B and 4 KiB
            (bench_flood, bench_flooder, bench_bare_relay)
  e2e       end-to-end throughput with real ChatSession clients (bench_e2e)
  latency   light-load send-to-screen latency, p50 and p99 (bench_latency)
  join      scrypt, one PAKE, and whole joins with four members present (bench_join)
  overhead  bytes on the wire per text beyond the text itself (bench_overhead)
  idle      relay memory with five members; idle CPU of relay and terminal client (bench_idle)

Every member runs in a process of its own (bench_members, bench_flooder), and so
does each relay (bench_relays), whose CPU time and memory come from /proc
(bench_proc). Counts are in bench_settings, the output format in bench_report.
Members are real clients, built from the test helpers (tests/helpers.py), so the
dev extra (pytest) must be installed.

Output: one line per figure, with its unit, as it is measured; then the targets
and whether each was met; last, ``ratio secure/bare server throughput: X.XX``.
The exit status is 0 when every phase ran and every delivery was verified, and 1
otherwise; a missed performance target does not change it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import traceback
from collections.abc import Callable

import bench_setup  # noqa: F401  (the project on sys.path)
import bench_e2e
import bench_flood
import bench_idle
import bench_join
import bench_latency
import bench_overhead
import crypto_bench
import crypto_utils
import helpers
from bench_proc import machine_summary
from bench_report import Report
from bench_settings import Settings, settings_for

PHASES: dict[str, Callable[[Report, Settings], None]] = {
    "crypto": crypto_bench.run_phase,
    "flood": bench_flood.run_phase,
    "e2e": bench_e2e.run_phase,
    "latency": bench_latency.run_phase,
    "join": bench_join.run_phase,
    "overhead": bench_overhead.run_phase,
    "idle": bench_idle.run_phase,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="every phase with tiny counts: checks the benchmark works, measures nothing")
    parser.add_argument("--phases", default=",".join(PHASES), metavar="LIST",
                        help=f"comma-separated phases to run (default: all of {','.join(PHASES)})")
    parser.add_argument("--idle-seconds", type=float, default=None, metavar="SECONDS",
                        help="how long the idle phase measures CPU (default 5, --quick 1)")
    args = parser.parse_args(argv)
    args.phases = [name.strip() for name in args.phases.split(",") if name.strip()]
    unknown = [name for name in args.phases if name not in PHASES]
    if unknown or not args.phases:
        parser.error(f"--phases: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(PHASES)}")
    if args.idle_seconds is not None and args.idle_seconds <= 0:
        parser.error("--idle-seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_for(args.quick, args.idle_seconds)
    report = Report()
    report.line(f"Secure X benchmark ({'quick' if args.quick else 'default'} run, loopback): "
                f"{', '.join(args.phases)}")
    report.line(f"machine: {machine_summary()}")
    # Member processes are forked from this one and so start with the passphrase's scrypt
    # done, like a client that has been running for a while (the join phase times a cold
    # start on purpose). The two calls are the two ways the client code asks for it.
    crypto_utils.passphrase_to_w(helpers.PASSPHRASE)
    crypto_utils.passphrase_to_w(helpers.PASSPHRASE, n=crypto_utils.SCRYPT_N)
    started = time.monotonic()
    try:
        for name in [name for name in PHASES if name in args.phases]:
            phase_started = time.monotonic()
            try:
                PHASES[name](report, settings)
            except Exception as error:
                traceback.print_exc()
                report.failure(name, error)
            report.note(f"{name} took {time.monotonic() - phase_started:.0f} s")
    finally:
        shutil.rmtree(helpers.CONFIG_BASE, ignore_errors=True)   # the members' identity keys
    report.line()
    report.line(f"took {time.monotonic() - started:.0f} s")
    report.summary()
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
