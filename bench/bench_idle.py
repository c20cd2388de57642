"""Memory and idle cost: the relay's resident memory with a full room, and the CPU
an idle relay and an idle terminal client use.

A fresh Secure X relay (its own process, so earlier floods leave no trace in its
memory) gets four real ``ChatSession`` members (``bench_members``) and a real
terminal client (``client.py --cli``, started by ``helpers.cli_client``): five
members. Once they have settled, the relay's and the terminal client's resident
memory are read, then their CPU time over ``idle_seconds`` in which nobody says
anything (members still send their encrypted keep-alives and pings).
"""

from __future__ import annotations

import time

import bench_proc
import bench_setup  # noqa: F401  (the project on sys.path)
from bench_members import MemberError, chat_room
from bench_relays import SECURE, running_relay
from bench_report import Report
from bench_settings import ROOM, Settings
from helpers import WAIT, cli_client

SETTLE_SECONDS = 0.5     # for the last joins' rosters, statuses and receipts to go through


def run_phase(report: Report, settings: Settings) -> None:
    seconds = settings.idle_seconds
    report.section("idle", f"a room of {ROOM}: memory, and CPU over {seconds:g} s in which nobody writes")
    try:
        with running_relay(SECURE) as relay:
            empty_kib = relay.memory_kib()
            with chat_room(relay.port, ROOM - 1) as (room, _), cli_client(relay.port, "terminal") as cli:
                for member in room:
                    member.call("wait_room", size=ROOM)
                time.sleep(SETTLE_SECONDS)
                relay_kib, cli_kib = relay.memory_kib(), bench_proc.memory_kib(cli.proc.pid)
                relay_before, cli_before = relay.cpu_seconds(), bench_proc.cpu_seconds(cli.proc.pid)
                time.sleep(seconds)
                relay_cpu = relay.cpu_seconds() - relay_before
                cli_cpu = bench_proc.cpu_seconds(cli.proc.pid) - cli_before
                cli.close_stdin()        # end of input: the terminal client leaves
                status = cli.wait(WAIT)
    except (MemberError, RuntimeError, AssertionError) as error:
        report.failure("idle", error)
        return
    report.figure("idle relay memory", f"{relay_kib / 1024:.1f} MiB resident with {ROOM} members "
                                       f"({empty_kib / 1024:.1f} MiB with none)")
    report.figure("idle terminal client memory", f"{cli_kib / 1024:.1f} MiB resident")
    report.figure("idle relay CPU", f"{relay_cpu * 1e3:.1f} ms over {seconds:g} s "
                                    f"({100 * relay_cpu / seconds:.2f}% of one core)")
    report.figure("idle terminal client CPU", f"{cli_cpu * 1e3:.1f} ms over {seconds:g} s "
                                              f"({100 * cli_cpu / seconds:.2f}% of one core)")
    if status != 0:
        report.failure("idle", f"the terminal client exited with status {status} after its input ended")
